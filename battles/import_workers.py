"""Batches prepared ahead of the merge: by a reading thread, or by worker processes.

Most of an import's time is the Python that checks and prepares each row
(battles/import_batches.py), not the database. So the next batch is read and prepared in a
thread while the database merges this one (prefetched); with workers, processes prepare a
bounded number of batches ahead (prepared_by_workers). Either way the batches, and a
reading error, come in the file's order, so the outcome is the same as one process's.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from battles import importing
from battles.import_batches import Batch, judge_keyer, keyed_batch
from battles.importing import ImportFormatError

_DONE = object()


def prefetched(batches: Iterator[Batch], depth: int = 1) -> Iterator[Batch]:
    """The batches, read and prepared in a thread one batch ahead, so parsing the file runs
    while the database merges the previous batch. Only pure Python runs in the thread (no
    database: the transaction is this thread's connection). An error in the thread is
    raised here, at the batch where it happened, so earlier batches are written first as
    they would be without the thread."""
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not put(batch):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it
            put(exc)

    worker = threading.Thread(target=produce, name="import-reader", daemon=True)
    worker.start()
    try:
        while True:
            item = handoff.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


@contextlib.contextmanager
def prepared_by_workers(path: Path, fmt: str, *, batch_size: int, workers: int) -> Iterator[Iterator[Batch]]:
    """The batches of `path`, checked, keyed and turned into COPY text by `workers` processes,
    in the file's order; the pool is shut down when the block ends, also on an error."""
    objects = importing.read_objects(path, fmt, batch_size=batch_size)
    # fork: the workers start with this process's settings (the salts) and modules, and touch
    # no connection. A worker that dies breaks the pool, which raises instead of waiting.
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker) as pool:
        # Started now, from this thread, before the reading thread exists to be forked with them.
        pool.submit(int).result()
        try:
            yield _batches_from_workers(objects, batch_size, pool, window=workers + 1)
        finally:
            pool.shutdown(cancel_futures=True)


_worker_key_judge = None


def _start_worker() -> None:
    global _worker_key_judge
    _worker_key_judge = judge_keyer()


def _prepare_in_worker(objects: list[tuple]) -> Batch:
    return keyed_batch([importing.normalise(obj, where, _worker_key_judge) for obj, where in objects])


def _batches_from_workers(objects: Iterator[tuple], size: int, pool, window: int) -> Iterator[Batch]:
    """The file's batches, prepared by the pool's workers, in order; at most `window` batches
    are out at once, so memory stays bounded whatever the file's size. A reading error comes
    after the batches read before it, as it would in one process."""
    pending: deque = deque()
    while True:
        chunk, error = [], None
        try:
            for item in objects:
                chunk.append(item)
                if len(chunk) == size:
                    break
        except ImportFormatError as exc:
            error = exc
        if chunk:
            pending.append(pool.submit(_prepare_in_worker, chunk))
        done = error is not None or len(chunk) < size
        while pending and (done or len(pending) > window):
            yield pending.popleft().result()
        if done:
            if error is not None:
                raise error
            return

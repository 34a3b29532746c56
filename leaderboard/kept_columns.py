"""The counted votes' columns, kept between rating runs so a run re-reads only what changed.

A run's one pass over the counted votes (services.vote_columns) is most of its time at
millions of votes, and almost all of it returns what the run before read already: votes are
appended, and old ones change only when they are excluded or restored, or when their battle
is edited. So each run (on PostgreSQL) keeps what it read in a file, and the next one starts
from that file and re-reads from the database only

- the votes after the last one the file holds, and
- the battles that PostgreSQL triggers (migration 0004) noted as written since: any insert,
  update or delete of a vote, and any write to a voted battle or its style.

Which notes are "since" is decided by transaction ids, not by time or note order, which can
both disagree with the order of commits: before reading, a run takes the oldest transaction
still in progress (the snapshot's xmin). Every transaction older than that has committed, so
what it wrote is in this run's read; notes of that transaction or newer are read again by
the next run. Re-reading a battle twice is harmless, so this errs only towards re-reading.

The file goes unused, and every vote is read, when there is none, when it was taken more
than MAX_AGE ago (notes are pruned after NOTES_KEPT), when the categories' query changed, or
when the changes are a large share of it (a bulk import, say).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import connection
from django.db.models import QuerySet

from arenasite import clock

from .models import CountedVoteChange

logger = logging.getLogger(__name__)

FORMAT = 1
MAX_AGE = timedelta(days=1)
NOTES_KEPT = timedelta(days=2)
# Re-read every vote instead when more than this share of the kept ones changed.
LARGE_CHANGE = 0.25
# Files kept in the directory: the newest few, so a run still reading an older one finds it.
FILES_KEPT = 3
# Narrower types on disk for the columns whose range is known (services.vote_columns).
NARROW = {"rc_code": np.int16, "rc_judge": np.int32}


def enabled() -> bool:
    return connection.vendor == "postgresql" and bool(settings.RATING_COLUMNS_DIR)


def definition(parts: list[object]) -> str:
    """A fingerprint of what the columns are: a file made for other columns is not used."""
    return hashlib.sha256(json.dumps([FORMAT, *parts], default=repr).encode()).hexdigest()[:32]


def oldest_running_transaction() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
        return int(cursor.fetchone()[0])


class KeptColumns:
    """One run's use of the kept columns: `read` returns the columns, `pointer` what the
    run records (in its parameters) for the next one to find them."""

    def __init__(self, previous: dict | None, *, full_read: bool = False):
        self.previous = None if full_read else previous
        self.pointer: dict | None = None
        self.reread = 0  # votes read from the database by the last read()
        self._writer: threading.Thread | None = None
        self._write_error: BaseException | None = None

    def read(
        self,
        query: QuerySet,
        names: list[str],
        fingerprint: str,
        *,
        read_all: Callable[[QuerySet], dict[str, np.ndarray]],
        read_some: Callable[[QuerySet], dict[str, np.ndarray]],
        last_vote_id: int,
    ) -> dict[str, np.ndarray]:
        """The columns `names` (which include id and battle_id) of `query`, the counted votes
        up to `last_vote_id`: from the previous run's file and the votes written since (read
        with `read_some`), or all with `read_all` when the file cannot be used."""
        taken = clock.now()
        xmin = oldest_running_transaction()
        kept = self._usable(fingerprint, names)
        if kept is not None:
            columns = self._update(kept, query, read_some, names)
        if kept is None or columns is None:
            columns = in_battle_order(read_all(query))
            self.reread = len(columns["id"])
            file = self._write_beside(columns)
        else:
            columns, changed = columns
            file = self._write_beside(columns) if changed else self.previous["file"]
        self.pointer = {
            "file": file,
            "definition": fingerprint,
            "xmin": xmin,
            "taken_at": taken.isoformat(),
            "last_vote_id": last_vote_id,
            "rows": len(columns["id"]),
            "read": self.reread,
        }
        prune_notes(taken)
        return columns

    def _usable(self, fingerprint: str, names: list[str]) -> dict[str, np.ndarray] | None:
        previous = self.previous
        if not previous or previous.get("definition") != fingerprint:
            return None
        if clock.now() - datetime.fromisoformat(previous["taken_at"]) > MAX_AGE:
            return None
        try:
            with np.load(directory() / previous["file"]) as stored:
                kept = {name: stored[name].astype(np.int64, copy=False) for name in names}
        except (OSError, KeyError, ValueError) as exc:
            logger.info("ratings: kept columns %s not used: %s", previous.get("file"), exc)
            return None
        if len(kept["id"]) != previous["rows"]:
            return None
        return kept

    def _update(self, kept, query, read, names):
        """(columns, whether anything changed), or None when the change is too large to patch."""
        since = self.previous["xmin"]
        changed = np.fromiter(
            CountedVoteChange.objects.filter(xid__gte=since).values_list("battle_id", flat=True).distinct().iterator(),
            dtype=np.int64,
        )
        if len(changed) > LARGE_CHANGE * max(len(kept["id"]), 1):
            return None
        votes = connection.ops.quote_name(query.model._meta.db_table)
        where, params = f"{votes}.id > %s", [self.previous["last_vote_id"]]
        if len(changed):
            where, params = f"({where} OR {votes}.battle_id = ANY(%s))", [*params, changed.tolist()]
        fresh = read(query.extra(where=[where], params=params))
        self.reread = len(fresh["id"])
        stale = np.isin(kept["battle_id"], changed) if len(changed) else np.zeros(len(kept["id"]), dtype=bool)
        if not len(fresh["id"]) and not stale.any():
            return kept, False
        if stale.any():
            kept = {name: values[~stale] for name, values in kept.items()}
        # Both are in battle order: the fresh rows are slotted in, which costs a copy rather
        # than a sort of every row.
        fresh = in_battle_order(fresh)
        at = np.searchsorted(kept["battle_id"], fresh["battle_id"])
        columns = {name: np.insert(kept[name], at, fresh[name]) for name in names}
        return in_battle_order(columns), True  # (a check only: sorted already)

    def _write_beside(self, columns: dict[str, np.ndarray]) -> str:
        """Starts writing the columns to a new file on a thread of its own, so the fits need
        not wait for the disk; finish() waits for it. Returns the file's name."""
        name = f"{uuid.uuid4().hex}.npz"
        arrays = dict(columns)  # the caller adds columns to its dict meanwhile; the arrays stay as they are

        def write() -> None:
            try:
                folder = directory()
                folder.mkdir(parents=True, exist_ok=True)
                partial = folder / f".{name}.partial"
                with open(partial, "wb") as out:
                    np.savez(out, **{key: value.astype(NARROW.get(key, np.int64)) for key, value in arrays.items()})
                os.replace(partial, folder / name)  # readers only ever see a whole file
                remove_old_files(folder, keep=name)
            except BaseException as exc:  # reported by finish()
                self._write_error = exc

        self._writer = threading.Thread(target=write, name="kept-columns-writer")
        self._writer.start()
        return name

    def finish(self) -> dict | None:
        """Waits for the file to be written; returns the pointer for the run's parameters, or
        None when the file could not be written (the next run then reads every vote)."""
        if self._writer is not None:
            self._writer.join()
            self._writer = None
        if self._write_error is not None:
            logger.warning("ratings: the columns could not be kept for the next run: %s", self._write_error)
            self.pointer = None
        return self.pointer


def in_battle_order(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The rows sorted by battle, the order of a full read: a run on kept columns then fits
    the same rows in the same order as one that read everything, to the last bit."""
    battle = columns["battle_id"]
    if len(battle) < 2 or bool((battle[1:] > battle[:-1]).all()):
        return columns
    order = np.argsort(battle, kind="stable")
    return {name: values[order] for name, values in columns.items()}


def directory() -> Path:
    return Path(settings.RATING_COLUMNS_DIR)


def remove_old_files(folder: Path, *, keep: str) -> None:
    def age(path: Path) -> float:
        try:
            return -path.stat().st_mtime
        except FileNotFoundError:  # removed by another run meanwhile
            return 0.0

    for path in sorted(folder.glob("*.npz"), key=age)[FILES_KEPT:]:
        if path.name != keep:
            path.unlink(missing_ok=True)


def prune_notes(now) -> int:
    """Notes older than any usable file could need."""
    deleted, _ = CountedVoteChange.objects.filter(noted_at__lt=now - NOTES_KEPT).delete()
    return deleted

"""The counted votes' columns, kept in PostgreSQL between rating runs so a run re-reads only what changed.

A run's one pass over the counted votes (leaderboard/votes.py) is most of its time at
millions of votes, and almost all of it returns what the run before read already: votes are
appended, and old ones change only when they are excluded or restored, or when their battle
is edited. So each run keeps what it read in the database, in parts of PART_BATTLES battle ids
(KeptColumnsPart), and the next one, on whatever worker machine, starts from those parts and
re-reads from the votes only

- the votes after the last one the parts hold, and
- the battles that PostgreSQL triggers (migration 0004) noted as written since: any insert,
  update or delete of a vote, and any write to a voted battle or its style.

It then writes new parts only for the ranges that changed (the newest, mostly) and refers to
the others as they are. Parts are never changed, so a run still reading them is never
disturbed by the next one; parts no recent run refers to are deleted.

Which notes are "since" is decided by transactions, not by time or note order, which can
both disagree with the order of commits: before reading, a run takes PostgreSQL's snapshot
(which transactions have committed). What a committed one wrote is in this run's read, since
the read starts after; the next run re-reads the battles noted by every transaction that
snapshot did not see (in progress then, or begun after). Re-reading a battle twice is
harmless, so this errs only towards re-reading, and a long transaction elsewhere on the
server makes no run re-read more.

The parts go unused, and every vote is read, when there are none, when they were taken more
than MAX_AGE ago (notes are pruned after NOTES_KEPT), when a part is missing, when what the
columns are changed, or when the changes are a large share of them (a bulk import, say). The
result is the same to the bit either way: the columns are in battle order whichever way they
were read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.db import connection

from arenasite import clock

from . import postgres_votes, votes
from .models import CountedVoteChange, KeptColumnsPart, RatingRun

logger = logging.getLogger(__name__)

FORMAT = 2
MAX_AGE = timedelta(days=1)
NOTES_KEPT = timedelta(days=2)
# Re-read every vote instead when more than this share of the kept ones changed.
LARGE_CHANGE = 0.25
# Battle ids per part: about 10-15 MB of columns when every battle has a vote.
PART_BATTLES = 1 << 18
# The parts of this many of the latest runs are kept (a run still reading an older one finds it).
RUNS_KEPT = 3


def enabled() -> bool:
    return connection.vendor == "postgresql"


def definition(languages: tuple[str, ...]) -> str:
    """A fingerprint of what the columns are: parts made for other columns are not used."""
    parts = [FORMAT, votes.VOTE_COLUMNS, votes.WINNER_CODES, list(languages), PART_BATTLES]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


class KeptColumns:
    """One run's use of the kept columns: `read` returns the columns, `finish` what the run
    records (in its parameters) for the next one to find them."""

    def __init__(self, previous: dict | None, *, full_read: bool = False):
        self.previous = None if full_read else previous
        self.pointer: dict | None = None
        self.reread = 0  # votes read from the database by read()
        self._parts: dict[int, int] = {}  # first battle id -> part id, of the parts kept as they are
        self._writer: threading.Thread | None = None
        self._written: dict[int, int] = {}
        self._write_error: BaseException | None = None

    def read(self, *, last_vote_id: int, languages: tuple[str, ...]) -> dict[str, np.ndarray]:
        """The counted votes' columns up to `last_vote_id`: from the previous run's parts and
        the votes written since, or every vote when the parts cannot be used."""
        taken = clock.now()
        snapshot, xmin, own_xid = postgres_votes.current_snapshot()
        fingerprint = definition(languages)
        kept = self._usable(fingerprint)
        patched = self._patched(kept, last_vote_id, languages) if kept is not None else None
        if patched is None:
            columns = votes.read_columns(votes.Selection(last_vote_id, languages))
            self.reread = len(columns["id"])
            self._parts, changed = {}, split(columns)
        else:
            columns, changed = patched
        self._write_beside(changed, fingerprint, taken)
        self.pointer = {
            "definition": fingerprint,
            "snapshot": snapshot,
            "xmin": xmin,
            "own_xid": own_xid,
            "taken_at": taken.isoformat(),
            "last_vote_id": last_vote_id,
            "rows": len(columns["id"]),
            "read": self.reread,
        }
        prune_notes(taken)
        return columns

    def _usable(self, fingerprint: str) -> dict[int, tuple[int, list, bytes]] | None:
        """The previous run's parts by first battle id, as stored (rows, layout, data), or None
        when they cannot be used."""
        previous = self.previous
        if not previous or previous.get("definition") != fingerprint or not previous.get("parts"):
            return None
        if clock.now() - datetime.fromisoformat(previous["taken_at"]) > MAX_AGE:
            return None
        ids = [part_id for _, part_id in previous["parts"]]
        stored = postgres_votes.read_parts(ids)
        if len(stored) != len(ids):
            logger.info("ratings: kept columns not used: %d of %d parts missing", len(ids) - len(stored), len(ids))
            return None
        self._parts = {first: part_id for first, part_id in previous["parts"]}
        kept = {first: stored[part_id] for first, part_id in previous["parts"]}
        if sum(rows for rows, _, _ in kept.values()) != previous["rows"]:
            return None
        return kept

    def _patched(self, kept, last_vote_id, languages):
        """(columns, the parts that changed), or None when the change is too large to patch."""
        previous = self.previous
        changed = postgres_votes.battles_changed_since(previous["snapshot"], previous["xmin"], previous.get("own_xid"))
        if len(changed) > LARGE_CHANGE * max(self.previous["rows"], 1):
            return None
        after = self.previous["last_vote_id"]
        fresh = votes.read_columns(votes.Selection(last_vote_id, languages, after=after, battles=tuple(changed)))
        self.reread = len(fresh["id"])
        touched = set((changed // PART_BATTLES * PART_BATTLES).tolist())
        touched |= set((fresh["battle_id"] // PART_BATTLES * PART_BATTLES).tolist())
        renewed = {}
        for first, part in split(fresh).items():
            touched.discard(first)
            renewed[first] = merged(decoded(kept.pop(first)) if first in kept else None, part, changed)
        for first in touched & set(kept):  # only taken out of, nothing re-read
            renewed[first] = merged(decoded(kept.pop(first)), None, changed)
        for first in renewed:
            self._parts.pop(first, None)
        renewed = {first: part for first, part in renewed.items() if len(part["id"])}
        return assembled({**kept, **renewed}), renewed

    def _write_beside(self, changed: dict[int, dict[str, np.ndarray]], fingerprint: str, taken) -> None:
        """Starts writing the changed parts, on a thread of its own when the run is not in a
        transaction (the fits need not wait); finish() waits for it."""

        def write(own_connection: bool) -> None:
            try:
                self._written = write_parts(changed, fingerprint, taken)
            except BaseException as exc:  # reported by finish()
                self._write_error = exc
            finally:
                if own_connection:
                    connection.close()  # the thread's, opened for this write

        if not changed:
            return
        if connection.in_atomic_block:  # a second connection would write outside the transaction
            write(own_connection=False)
            return
        self._writer = threading.Thread(target=write, args=(True,), name="kept-columns-writer")
        self._writer.start()

    def finish(self) -> dict | None:
        """Waits for the parts to be written; returns the pointer for the run's parameters, or
        None when they could not be written (the next run then reads every vote)."""
        if self._writer is not None:
            self._writer.join()
            self._writer = None
        if self._write_error is not None or self.pointer is None:
            if self._write_error is not None:
                logger.warning("ratings: the columns could not be kept for the next run: %s", self._write_error)
            return None
        parts = {**self._parts, **self._written}
        self.pointer["parts"] = [[first, parts[first]] for first in sorted(parts)]
        return self.pointer


def split(columns: dict[str, np.ndarray]) -> dict[int, dict[str, np.ndarray]]:
    """Columns in battle order, by part (first battle id of its range)."""
    first = columns["battle_id"] // PART_BATTLES * PART_BATTLES
    if not len(first):
        return {}
    starts, begin = np.unique(first, return_index=True)
    ends = [*begin[1:].tolist(), len(first)]
    return {
        int(start): {name: values[b:e] for name, values in columns.items()}
        for start, b, e in zip(starts.tolist(), begin.tolist(), ends, strict=True)
    }


def merged(kept: dict | None, fresh: dict | None, changed: np.ndarray) -> dict[str, np.ndarray]:
    """A part's kept rows less those of changed battles, with the fresh rows slotted in."""
    if kept is not None and len(changed):
        stale = np.isin(kept["battle_id"], changed)
        kept = {name: values[~stale] for name, values in kept.items()} if stale.any() else kept
    if kept is None or fresh is None:
        return kept if fresh is None else fresh
    # Both are in battle order: the fresh rows are slotted in, which costs a copy rather than
    # a sort of every row.
    at = np.searchsorted(kept["battle_id"], fresh["battle_id"])
    return {name: np.insert(kept[name], at, fresh[name]) for name in kept}


def encoded(part: dict[str, np.ndarray]) -> tuple[list, bytes]:
    """(layout, data): each column in the narrowest integer type that holds it."""
    layout, chunks = [], []
    for name, values in part.items():
        low, high = (int(values.min()), int(values.max())) if len(values) else (0, 0)
        kind = next(t for t in ("<i1", "<i2", "<i4", "<i8") if np.iinfo(t).min <= low and high <= np.iinfo(t).max)
        layout.append([name, kind])
        chunks.append(values.astype(kind).tobytes())
    return layout, b"".join(chunks)


def stored_views(stored: tuple[int, list, bytes]) -> dict[str, np.ndarray]:
    """A stored part's columns as views of its data, in their stored types."""
    rows, layout, data = stored
    columns, offset = {}, 0
    for name, kind in layout:
        columns[name] = np.frombuffer(data, kind, rows, offset)
        offset += columns[name].nbytes
    return columns


def decoded(stored: tuple[int, list, bytes]) -> dict[str, np.ndarray]:
    return votes.typed({name: values.copy() for name, values in stored_views(stored).items()})


def assembled(parts: dict[int, tuple | dict]) -> dict[str, np.ndarray]:
    """The parts' columns end to end in battle order, each stored part decoded straight into
    its place (one copy of millions of values, not two)."""
    ordered = [parts[first] for first in sorted(parts)]
    sizes = [part[0] if isinstance(part, tuple) else len(part["id"]) for part in ordered]
    columns = {name: np.empty(sum(sizes), dtype=votes.COLUMN_TYPES[name]) for name in votes.VOTE_COLUMNS}
    at = 0
    for part, size in zip(ordered, sizes, strict=True):
        arrays = stored_views(part) if isinstance(part, tuple) else part
        for name, values in columns.items():
            values[at : at + size] = arrays[name]
        at += size
    return columns


def write_parts(parts: dict[int, dict[str, np.ndarray]], fingerprint: str, taken) -> dict[int, int]:
    """Stores the parts; returns their ids by first battle id."""
    written = {}
    for first, part in parts.items():
        layout, data = encoded(part)
        row = KeptColumnsPart.objects.create(
            definition=fingerprint,
            first_battle_id=first,
            rows=len(part["id"]),
            layout=layout,
            data=data,
            written_at=taken,
        )
        written[first] = row.pk
    return written


def prune_parts(now) -> int:
    """Parts the latest RUNS_KEPT runs with kept columns do not refer to, once a run that
    refers to its own is saved. A part written lately may be a running run's, not referred to
    yet: it stays until no run can be alive."""
    recent = RatingRun.objects.filter(parameters__kept_columns__parts__isnull=False).order_by("-id")[:RUNS_KEPT]
    used = {part_id for run in recent for _, part_id in run.parameters["kept_columns"]["parts"]}
    stale = now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT * 2)
    deleted, _ = KeptColumnsPart.objects.filter(written_at__lt=stale).exclude(id__in=used).delete()
    return deleted


def prune_notes(now) -> int:
    """Notes older than any usable parts could need."""
    deleted, _ = CountedVoteChange.objects.filter(noted_at__lt=now - NOTES_KEPT).delete()
    return deleted

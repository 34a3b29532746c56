"""Write imported battles (battles/importing.py reads them) at the speed of COPY.

All or nothing: call inside one transaction (the `import_battles` command does), so a
malformed row anywhere refuses the file and leaves no battle, vote, model or provider
behind. Idempotent: a battle is keyed by its question_id (or a content hash stored as one),
and keys already present are skipped, and so is a battle already present under another
key: the same models, winner, judge and time (FastChat writes one dump in two modes, one
with question ids and one without, so the second would otherwise count every vote twice).

How: rows are read in batches, each turned into the rows of a staging table as COPY text
(battles/import_batches.py); each batch is copied into a temporary staging table, the rows
to skip are found by index lookups into the real tables, and the rest are merged with
INSERT ... SELECT ... ON CONFLICT DO NOTHING into battles, votes and style rows
(battles/import_staging.py). The checks and inserts are a handful of statements per batch,
whatever its size, and memory holds a few batches (the next one is read and prepared in a
thread while the database merges this one; with `workers`, worker processes prepare a
bounded number ahead: battles/import_workers.py), so it does not grow with the file. Most
of an import's time is the Python that checks and prepares each row, not the database. On
another database (SQLite, for development) the staging table is filled with executemany
instead of COPY; the rest is the same SQL.

Judges are stored keyed, as live voters are: battles.voters.judge_id("import:<judge>")
(HMAC with JUDGE_SALT), so an address in an unsanitised FastChat dump is never stored, and
the same judge in two files is the same voter. A judge longer than the column is first cut
to its sha256 (importing.normalise), as imports always did.

A model labelled `anonymous` (as releases and shares label models they do not name) is
not a model of its own: such a row is stored against a stand-in of the "imported"
provider (one for each side, never in battles; battles/import_models.py) and its vote is
excluded as `unnamed_model`, so it is kept and never rated. Message keys other than role and content
(FastChat's `num_tokens`) are dropped (battles/importing.py).
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connection, reset_queries
from django.db.models import Max

from battles import importing
from battles.import_batches import Batch, imported_judge, judge_keyer, prepared_batches
from battles.import_models import IMPORTED_PROVIDER, ModelResolver
from battles.import_staging import ALREADY_IMPORTED, SKIP_REASONS, Staging
from battles.import_workers import prefetched, prepared_by_workers
from battles.importing import ImportRow
from battles.models import Battle, ExclusionReason

# What the command and readers of imported data use; imported_judge is defined with the
# rest of a row's preparation.
__all__ = [
    "DEFAULT_BATCH_SIZE",
    "MAX_WORKERS",
    "PARALLEL_FROM_BYTES",
    "ImportResult",
    "default_workers",
    "import_file",
    "import_rows",
    "imported_judge",
]

DEFAULT_BATCH_SIZE = 5000
# Worker processes prepare the rows of files from this size, up to this many.
PARALLEL_FROM_BYTES = 16 << 20
MAX_WORKERS = 4


@dataclass
class ImportResult:
    read: int = 0
    added: int = 0
    skipped: Counter = field(default_factory=Counter)
    models_created: list[str] = field(default_factory=list)
    batches: int = 0
    unnamed: int = 0  # rows added with a model labelled anonymous: kept, never rated
    tested: int = 0  # votes added that the anomalous-voter test reads: anonymous ones that count

    def summary(self, source: str, fmt: str) -> list[str]:
        lines = [f"{source} ({fmt}): {self.read} rows read, {self.added} added, {sum(self.skipped.values())} skipped."]
        lines += [f"  skipped: {reason}: {count}" for reason, count in sorted(self.skipped.items())]
        if self.unnamed:
            lines.append(
                f"  kept but never rated: {self.unnamed} battle(s) with a model labelled {importing.ANONYMOUS!r} "
                f"(vote excluded as {ExclusionReason.UNNAMED_MODEL.value})"
            )
        if self.models_created:
            lines.append(
                f'  created {len(self.models_created)} listed model(s) under provider "{IMPORTED_PROVIDER}": '
                + ", ".join(self.models_created)
            )
        if self.tested:
            lines.append(self._anomaly_line())
        return lines

    def _anomaly_line(self) -> str:
        if not getattr(settings, "ARENA_ANOMALY_DETECTION", True):
            return (
                f"  anomalous-voter test: off (ARENA_ANOMALY_DETECTION), so the {self.tested} counted "
                "anonymous vote(s) added are not tested"
            )
        if getattr(settings, "ARENA_ANOMALY_TEST_SCOPE", "all") == "arena":
            return (
                f'  anomalous-voter test: ARENA_ANOMALY_TEST_SCOPE is "arena", so the {self.tested} counted '
                "anonymous vote(s) added are not tested (only votes cast on this site are)"
            )
        return (
            f"  anomalous-voter test: the {self.tested} counted anonymous vote(s) added are tested with the "
            "arena's own at the next rating run; a judge it flags has all of its votes excluded "
            '(ARENA_ANOMALY_TEST_SCOPE "arena" tests only votes cast on this site)'
        )


def default_workers(path: Path) -> int:
    """Processes that check and prepare rows: one (this one) for a small file, where starting
    others costs more than it saves, or on a machine of fewer than four cores, where this
    process and PostgreSQL already keep two busy; else the cores past those two, up to four."""
    spare = (os.cpu_count() or 1) - 2
    if path.stat().st_size < PARALLEL_FROM_BYTES or spare < 2:
        return 1
    return min(MAX_WORKERS, spare)


def import_file(
    path: Path, fmt: str, *, batch_size: int = DEFAULT_BATCH_SIZE, workers: int | None = None
) -> ImportResult:
    """Read `path` in the detected format `fmt` and write its battles. Call inside
    transaction.atomic(): a failure part-way leaves earlier batches written until the
    transaction rolls back. Raises ImportFormatError (with where) for a row that does not fit.

    With `workers` above 1 (PostgreSQL only), the rows are checked, keyed and turned into
    COPY text by that many worker processes, batch by batch, in the file's order: the
    per-row Python (checks, hashes, answer style) is most of an import's work, and a
    batch's result, or its error, is taken in order, so the outcome is the same as one
    process's."""
    workers = default_workers(path) if workers is None else workers
    if workers <= 1 or connection.vendor != "postgresql":
        rows = importing.read_rows(path, fmt, batch_size=batch_size, key_judge=judge_keyer())
        return import_rows(rows, source_name=path.name, batch_size=batch_size)
    with prepared_by_workers(path, fmt, batch_size=batch_size, workers=workers) as batches:
        return _import_batches(batches, source_name=path.name)


def import_rows(rows: Iterable[ImportRow], *, source_name: str, batch_size: int = DEFAULT_BATCH_SIZE) -> ImportResult:
    """Write normalised rows (their judges already keyed) batch by batch; see import_file."""
    batches = prepared_batches(rows, batch_size, copy=connection.vendor == "postgresql")
    return _import_batches(batches, source_name=source_name)


def _import_batches(batches: Iterator[Batch], *, source_name: str) -> ImportResult:
    result = ImportResult()
    models = ModelResolver(source_name=source_name)
    # Battles above this id were added by this import, so finding a key among them means
    # the file holds it twice; this keeps the in-file check in the database, not in memory.
    first_new_id = (Battle.objects.aggregate(last=Max("id"))["last"] or 0) + 1
    with connection.cursor() as cursor:
        staging = Staging(cursor)
        staging.create()
        # closing(): the reading thread stops here, also when a batch fails, not when the
        # generator is collected (the error's traceback keeps it alive).
        with contextlib.closing(prefetched(batches)) as ahead:
            for batch in ahead:
                result.read += len(batch.rows)
                result.batches += 1
                _write_batch(staging, batch, models, first_new_id, result)
                # DEBUG keeps every query's SQL; over a long import that adds up.
                reset_queries()
        staging.drop()
    result.models_created = models.finish()
    return result


def _write_batch(
    staging: Staging, batch: Batch, models: ModelResolver, first_new_id: int, result: ImportResult
) -> None:
    staging.load(batch)
    skipped = staging.skips(first_new_id)
    for code in skipped.values():
        result.skipped[SKIP_REASONS[code]] += 1
    fresh = [row for seq, row in enumerate(batch.rows) if seq not in skipped]
    if not fresh:
        return
    models.resolve(fresh)
    staging.map_models(models, fresh)
    added, unnamed, tested = staging.merge()
    # Another import may have added some of these keys since the check (ON CONFLICT kept its rows).
    if added < len(fresh):
        result.skipped[ALREADY_IMPORTED] += len(fresh) - added
    result.added += added
    result.unnamed += unnamed
    result.tested += tested

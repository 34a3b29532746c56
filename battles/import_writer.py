"""Write imported battles (battles/importing.py reads them) at the speed of COPY.

All or nothing: call inside one transaction (the `import_battles` command does), so a
malformed row anywhere refuses the file and leaves no battle, vote, model or provider
behind. Idempotent: a battle is keyed by its question_id (or a content hash stored as one),
and keys already present are skipped, and so is a battle already present under another
key: the same models, winner, judge and time (FastChat writes one dump in two modes, one
with question ids and one without, so the second would otherwise count every vote twice).

How: rows are read in batches; each batch is copied (PostgreSQL COPY, through psycopg's
`cursor.copy()`) into a temporary staging table, the rows to skip are found by index
lookups into the real tables, and the rest are merged with INSERT ... SELECT ... ON CONFLICT
DO NOTHING into battles, votes and style rows. The checks and inserts are a handful of
statements per batch, whatever its size, and memory holds a few batches (the next one is
read and prepared in a thread while the database merges this one; with `workers`, worker
processes prepare a bounded number ahead), so it does not grow with the file. Most of an
import's time is the Python that checks and prepares each row, not the database. On
another database (SQLite, for development) the staging table is filled with executemany
instead of COPY; the rest is the same SQL.

Judges are stored keyed, as live voters are: battles.voters.judge_id("import:<judge>")
(HMAC with JUDGE_SALT), so an address in an unsanitised FastChat dump is never stored, and
the same judge in two files is the same voter. A judge longer than the column is first cut
to its sha256 (importing.normalise), as imports always did.

A model labelled `anonymous` (as releases and shares label models they do not name) is
not a model of its own: such a row is stored against a stand-in of the "imported"
provider (one for each side, never in battles) and its vote is excluded as
`unnamed_model`, so it is kept and never rated. Message keys other than role and content
(FastChat's `num_tokens`) are dropped (battles/importing.py).
"""

from __future__ import annotations

import contextlib
import functools
import json
import multiprocessing
import os
import queue
import threading
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import NamedTuple

from django.conf import settings
from django.db import connection, reset_queries
from django.db.models import NOT_PROVIDED, F, Max

from battles import importing, voters
from battles.importing import ImportFormatError, ImportRow
from battles.models import Battle, BattleStyle, ExclusionReason, Vote
from battles.style import conversation_prompt_hash, style_columns
from providers import lifecycle
from providers.models import ArenaModel, Provider

DEFAULT_BATCH_SIZE = 5000
IMPORTED_PROVIDER = "imported"
ALREADY_IMPORTED = "already imported"
DUPLICATE_IN_FILE = "duplicate in file"
SAME_VOTE = "already imported under another key (same models, winner, judge and time)"
# The stand-ins for a model labelled anonymous, one for each side (a battle's two models differ).
UNNAMED_NAMES = {"a": "anonymous (model A)", "b": "anonymous (model B)"}
# Distinct judges keyed per import are cached up to this many, so memory stays bounded.
JUDGE_CACHE = 1 << 16
# Worker processes prepare the rows of files from this size, up to this many.
PARALLEL_FROM_BYTES = 16 << 20
MAX_WORKERS = 4

_SKIP_CODES = {"A": ALREADY_IMPORTED, "D": DUPLICATE_IN_FILE, "S": SAME_VOTE}
STYLE_FIELDS = ("tokens_a", "tokens_b", "headers_a", "headers_b", "list_items_a", "list_items_b", "bold_a", "bold_b")


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


def imported_judge(judge: str) -> str:
    """The stored form of a judge named in imported data: keyed like a live voter (battles/voters.py)."""
    return voters.judge_id(f"import:{judge}")


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
        key_judge = functools.lru_cache(maxsize=JUDGE_CACHE)(imported_judge)
        rows = importing.read_rows(path, fmt, batch_size=batch_size, key_judge=key_judge)
        return import_rows(rows, source_name=path.name, batch_size=batch_size)
    objects = importing.read_objects(path, fmt, batch_size=batch_size)
    # fork: the workers start with this process's settings (the salts) and modules, and touch
    # no connection. A worker that dies breaks the pool, which raises instead of waiting.
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker) as pool:
        # Started now, from this thread, before the reading thread exists to be forked with them.
        pool.submit(int).result()
        try:
            batches = _batches_from_workers(objects, batch_size, pool, window=workers + 1)
            return _import_batches(batches, source_name=path.name)
        finally:
            pool.shutdown(cancel_futures=True)


def import_rows(rows: Iterable[ImportRow], *, source_name: str, batch_size: int = DEFAULT_BATCH_SIZE) -> ImportResult:
    """Write normalised rows (their judges already keyed) batch by batch; see import_file."""
    batches = _prepared_batches(rows, batch_size, copy=connection.vendor == "postgresql")
    return _import_batches(batches, source_name=source_name)


def _import_batches(batches: Iterator[_Batch], *, source_name: str) -> ImportResult:
    result = ImportResult()
    models = _ModelResolver(source_name=source_name)
    # Battles above this id were added by this import, so finding a key among them means
    # the file holds it twice; this keeps the in-file check in the database, not in memory.
    first_new_id = (Battle.objects.aggregate(last=Max("id"))["last"] or 0) + 1
    with connection.cursor() as cursor:
        staging = _Staging(cursor)
        staging.create()
        # closing(): the reading thread stops here, also when a batch fails, not when the
        # generator is collected (the error's traceback keeps it alive).
        with contextlib.closing(_prefetched(batches)) as prefetched:
            for batch in prefetched:
                result.read += len(batch.rows)
                result.batches += 1
                _write_batch(staging, batch, models, first_new_id, result)
                # DEBUG keeps every query's SQL; over a long import that adds up.
                reset_queries()
        staging.drop()
    result.models_created = models.finish()
    return result


class _RowKey(NamedTuple):
    """What the writer needs of a row beyond its staged columns: its models (to find or
    create them), time (a created model's listing) and where (for a refused model name)."""

    model_a: str
    model_b: str
    created_at: datetime
    where: str


@dataclass(slots=True)
class _Batch:
    rows: list[ImportRow] | list[_RowKey]
    copy: str | None = None  # the batch as COPY text (PostgreSQL)
    staged: list[tuple] | None = None  # or one tuple of staging columns per row, in STAGE_COLUMNS order


def _prepared_batches(rows: Iterable[ImportRow], size: int, copy: bool) -> Iterator[_Batch]:
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        staged = [_stage_values(seq, row) for seq, row in enumerate(batch)]
        yield _Batch(batch, "".join(map(_copy_line, staged))) if copy else _Batch(batch, staged=staged)


_worker_key_judge = None


def _start_worker() -> None:
    global _worker_key_judge
    _worker_key_judge = functools.lru_cache(maxsize=JUDGE_CACHE)(imported_judge)


def _prepare_in_worker(objects: list[tuple]) -> _Batch:
    rows = [importing.normalise(obj, where, _worker_key_judge) for obj, where in objects]
    copy = "".join(_copy_line(_stage_values(seq, row)) for seq, row in enumerate(rows))
    return _Batch([_RowKey(row.model_a, row.model_b, row.created_at, row.where) for row in rows], copy)


def _batches_from_workers(objects: Iterator[tuple], size: int, pool, window: int) -> Iterator[_Batch]:
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


def _stage_values(seq: int, row: ImportRow) -> tuple:
    """The staging columns of one row: everything the merge needs that Python computes
    (the style of the answers, the prompt hash, the release pool, JSON text)."""
    style = style_columns(row.conversation_a, row.conversation_b)
    return (
        seq,
        row.question_id,
        row.model_a,
        row.model_b,
        row.winner,
        row.judge,
        row.anony,
        row.language,
        row.turn,
        row.prompt_chars,
        conversation_prompt_hash(row.conversation_a),
        # bulk inserts skip save(), which assigns the pool for single battles.
        Battle.pool_for(row.question_id),
        _json(row.conversation_a),
        _json(row.conversation_b),
        None if row.openai_moderation is None else _json(row.openai_moderation),
        None if row.toxic_chat_tag is None else _json(row.toxic_chat_tag),
        row.created_at,
        # No style row for a battle missing an answer.
        *((None,) * len(STYLE_FIELDS) if style is None else (style[name] for name in STYLE_FIELDS)),
    )


_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


_DONE = object()


def _prefetched(batches: Iterator[_Batch], depth: int = 1) -> Iterator[_Batch]:
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


def _write_batch(
    staging: _Staging, batch: _Batch, models: _ModelResolver, first_new_id: int, result: ImportResult
) -> None:
    staging.load(batch)
    skipped = staging.skips(first_new_id)
    for code in skipped.values():
        result.skipped[_SKIP_CODES[code]] += 1
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


# The staging table's columns: (name, PostgreSQL type, SQLite type).
STAGE_COLUMNS = (
    ("seq", "integer", "integer"),
    ("question_id", "text", "text"),
    ("model_a", "text", "text"),
    ("model_b", "text", "text"),
    ("winner", "text", "text"),
    ("judge", "text", "text"),
    ("anony", "boolean", "integer"),
    ("language", "text", "text"),
    ("turn", "integer", "integer"),
    ("prompt_chars", "integer", "integer"),
    ("prompt_hash", "text", "text"),
    ("in_release_pool", "boolean", "integer"),
    # JSON as text: only rows that are merged are parsed into jsonb, so a re-import is cheap.
    ("conversation_a", "text", "text"),
    ("conversation_b", "text", "text"),
    ("openai_moderation", "text", "text"),
    ("toxic_chat_tag", "text", "text"),
    ("created_at", "timestamptz", "text"),
    *((name, "integer", "integer") for name in STYLE_FIELDS),
)


class _Staging:
    """The temporary tables of one import and the SQL that merges them into the real tables.

    import_stage holds one batch; import_skip the rows of the batch not to merge, with why;
    import_models the ids model names map to on each side (the side matters for
    `anonymous`, which has a stand-in per side); import_added the battles the batch added.
    """

    STAGE, SKIP, MODELS, ADDED = "import_stage", "import_skip", "import_models", "import_added"

    def __init__(self, cursor):
        self.cursor = cursor
        self.postgresql = connection.vendor == "postgresql"
        self.mapped: set[tuple[str, str]] = set()
        q = connection.ops.quote_name
        self.battles = q(Battle._meta.db_table)
        self.votes = q(Vote._meta.db_table)
        self.styles = q(BattleStyle._meta.db_table)
        self.arena_models = q(ArenaModel._meta.db_table)

    def create(self) -> None:
        column = 1 if self.postgresql else 2
        columns = ", ".join(f"{spec[0]} {spec[column]}" for spec in STAGE_COLUMNS)
        # Dropped at the end of the import; ON COMMIT DROP is the backstop on PostgreSQL. They
        # are made in the import's transaction, so a refused file rolls them back with the rest.
        on_commit = " ON COMMIT DROP" if self.postgresql else ""
        if self.postgresql:
            # The per-batch statements are costed high enough for JIT compilation, which takes
            # longer than running them; for the rest of the import's transaction only.
            self.cursor.execute("SET LOCAL jit = off")
        self.cursor.execute(f"CREATE TEMPORARY TABLE {self.STAGE} ({columns}){on_commit}")
        self.cursor.execute(
            f"CREATE TEMPORARY TABLE {self.SKIP} (seq integer PRIMARY KEY, reason char(1) NOT NULL){on_commit}"
        )
        self.cursor.execute(
            f"CREATE TEMPORARY TABLE {self.MODELS} (side char(1) NOT NULL, name text NOT NULL, "
            f"id bigint NOT NULL, PRIMARY KEY (side, name)){on_commit}"
        )
        self.cursor.execute(
            f"CREATE TEMPORARY TABLE {self.ADDED} (battle_id bigint NOT NULL, question_id text NOT NULL){on_commit}"
        )

    def drop(self) -> None:
        self.cursor.execute(f"DROP TABLE {self.STAGE}")
        self.cursor.execute(f"DROP TABLE {self.SKIP}")
        self.cursor.execute(f"DROP TABLE {self.MODELS}")
        self.cursor.execute(f"DROP TABLE {self.ADDED}")

    def load(self, batch: _Batch) -> None:
        """Empty the staging tables and load one batch."""
        self.cursor.execute(f"DELETE FROM {self.SKIP}")
        self.cursor.execute(f"DELETE FROM {self.ADDED}")
        names = ", ".join(spec[0] for spec in STAGE_COLUMNS)
        if self.postgresql:
            # TRUNCATE, not DELETE: the table is rewritten empty rather than left with dead rows to scan.
            self.cursor.execute(f"TRUNCATE {self.STAGE}")
            with self.cursor.cursor.copy(f"COPY {self.STAGE} ({names}) FROM STDIN") as copy:
                copy.write(batch.copy)
        else:
            self.cursor.execute(f"DELETE FROM {self.STAGE}")
            adapt = connection.ops.adapt_datetimefield_value
            at = [spec[0] for spec in STAGE_COLUMNS].index("created_at")
            self.cursor.executemany(
                f"INSERT INTO {self.STAGE} ({names}) VALUES ({', '.join(['%s'] * len(STAGE_COLUMNS))})",
                [(*values[:at], adapt(values[at]), *values[at + 1 :]) for values in batch.staged],
            )

    def skips(self, first_new_id: int) -> dict[int, str]:
        """Find the staged rows not to merge; {seq: code} (_SKIP_CODES)."""
        # A key already stored: in this import's battles, the file holds it twice; else it was
        # imported before. A key not stored: every occurrence after the first is in the file twice.
        # The lookups into the real tables are scalar subqueries with LIMIT, looked up row by row
        # through an index: as a join or EXISTS, PostgreSQL may hash the whole table instead
        # (it did, on statistics from before the import), which grows with every batch.
        # OFFSET 0 keeps PostgreSQL from inlining the lookup into each use of it (twice per row).
        fence = "OFFSET 0" if self.postgresql else ""
        self.cursor.execute(
            f"""
            INSERT INTO {self.SKIP} (seq, reason)
            SELECT seq, reason FROM (
                SELECT seq,
                    CASE
                        WHEN known IS NULL THEN
                            CASE WHEN row_number() OVER (PARTITION BY question_id ORDER BY seq) > 1 THEN 'D' END
                        WHEN known >= %s THEN 'D'
                        ELSE 'A'
                    END AS reason
                FROM (
                    SELECT s.seq, s.question_id,
                        (SELECT b.id FROM {self.battles} b WHERE b.question_id = s.question_id LIMIT 1) AS known
                    FROM {self.STAGE} s {fence}
                ) looked_up
            ) keyed
            WHERE reason IS NOT NULL
            """,
            [first_new_id],
        )
        # Of the rest, a vote already stored under another key, or earlier in the batch: the
        # same models (by name; a stand-in is `anonymous`), winner, judge (both keyed) and time.
        stand_ins = ", ".join(["%s"] * len(UNNAMED_NAMES))
        self.cursor.execute(
            f"""
            INSERT INTO {self.SKIP} (seq, reason)
            SELECT seq, 'S' FROM (
                SELECT s.seq, s.model_a, s.model_b, s.winner, s.judge, s.created_at,
                    row_number() OVER (
                        PARTITION BY s.model_a, s.model_b, s.winner, s.judge, s.created_at ORDER BY s.seq
                    ) AS nth
                FROM {self.STAGE} s
                WHERE NOT EXISTS (SELECT 1 FROM {self.SKIP} k WHERE k.seq = s.seq)
            ) fresh
            WHERE nth > 1 OR (
                SELECT 1 FROM {self.votes} v
                JOIN {self.arena_models} ma ON ma.id = v.model_a_id
                JOIN {self.arena_models} mb ON mb.id = v.model_b_id
                WHERE v.judge = fresh.judge AND v.created_at = fresh.created_at AND v.winner = fresh.winner
                    AND CASE WHEN ma.name IN ({stand_ins}) THEN %s ELSE ma.name END = fresh.model_a
                    AND CASE WHEN mb.name IN ({stand_ins}) THEN %s ELSE mb.name END = fresh.model_b
                LIMIT 1
            ) IS NOT NULL
            """,
            [*UNNAMED_NAMES.values(), importing.ANONYMOUS, *UNNAMED_NAMES.values(), importing.ANONYMOUS],
        )
        self.cursor.execute(f"SELECT seq, reason FROM {self.SKIP}")
        return dict(self.cursor.fetchall())

    def map_models(self, models: _ModelResolver, rows: list[ImportRow]) -> None:
        """Add the model ids of the rows' names to import_models (once per name and side)."""
        needed = {("a", row.model_a) for row in rows} | {("b", row.model_b) for row in rows}
        new = sorted(needed - self.mapped)
        if new:
            self.cursor.executemany(
                f"INSERT INTO {self.MODELS} (side, name, id) VALUES (%s, %s, %s)",
                [(side, name, models.id_of(name, side)) for side, name in new],
            )
            self.mapped.update(new)

    def merge(self) -> tuple[int, int, int]:
        """Insert the staged rows not skipped as battles, votes and style rows; return the
        battles added, the unnamed votes added, and the votes added that the anomalous-voter
        test reads (anonymous and counting)."""
        not_skipped = f"NOT EXISTS (SELECT 1 FROM {self.SKIP} k WHERE k.seq = s.seq)"
        unnamed = "CASE WHEN s.model_a = %s OR s.model_b = %s THEN %s ELSE '' END"
        jsonb = "::jsonb" if self.postgresql else ""
        battle_columns = {
            "question_id": "s.question_id",
            "model_a": "ma.id",
            "model_b": "mb.id",
            "anony": "s.anony",
            "source": "%s",
            "language": "s.language",
            "turn": "s.turn",
            "prompt_chars": "s.prompt_chars",
            "prompt_hash": "s.prompt_hash",
            "conversation_a": f"s.conversation_a{jsonb}",
            "conversation_b": f"s.conversation_b{jsonb}",
            "openai_moderation": f"s.openai_moderation{jsonb}",
            "toxic_chat_tag": f"s.toxic_chat_tag{jsonb}",
            "in_release_pool": "s.in_release_pool",
            "created_at": "s.created_at",
        }
        columns, values, params = self._columns(Battle, battle_columns, {"source": Battle.Source.IMPORTED})
        by_name = f"""
            JOIN {self.MODELS} ma ON ma.side = 'a' AND ma.name = s.model_a
            JOIN {self.MODELS} mb ON mb.side = 'b' AND mb.name = s.model_b
        """
        # ORDER BY: ids in the order of the file, as one insert after another would give. The
        # ids the insert returns go to import_added: what follows joins this batch's battles
        # alone, not the battles table (a key another import added meanwhile is not returned:
        # ON CONFLICT kept that import's battle, which has its own vote).
        insert = f"""
            INSERT INTO {self.battles} ({columns})
            SELECT {values} FROM {self.STAGE} s {by_name}
            WHERE {not_skipped}
            ORDER BY s.seq
            ON CONFLICT (question_id) DO NOTHING
            RETURNING id, question_id
        """
        if self.postgresql:
            self.cursor.execute(
                f"WITH added AS ({insert}) INSERT INTO {self.ADDED} (battle_id, question_id) SELECT * FROM added",
                params,
            )
            added = self.cursor.rowcount
        else:
            self.cursor.execute(insert, params)
            returned = self.cursor.fetchall()
            self.cursor.executemany(f"INSERT INTO {self.ADDED} (battle_id, question_id) VALUES (%s, %s)", returned)
            added = len(returned)
        added_here = f"FROM {self.ADDED} a JOIN {self.STAGE} s ON s.question_id = a.question_id"
        vote_columns = {
            "battle": "a.battle_id",
            "model_a": "ma.id",
            "model_b": "mb.id",
            "anony": "s.anony",
            "winner": "s.winner",
            "judge": "s.judge",
            "excluded_reason": unnamed,
            "created_at": "s.created_at",
        }
        columns, values, params = self._columns(
            Vote,
            vote_columns,
            {"excluded_reason": (importing.ANONYMOUS, importing.ANONYMOUS, ExclusionReason.UNNAMED_MODEL)},
        )
        self.cursor.execute(
            f"""
            INSERT INTO {self.votes} ({columns})
            SELECT {values} {added_here} {by_name}
            WHERE true
            ON CONFLICT (battle_id) DO NOTHING
            """,
            params,
        )
        style_columns_sql = {"battle": "a.battle_id", **{name: f"s.{name}" for name in STYLE_FIELDS}}
        columns, values, params = self._columns(BattleStyle, style_columns_sql, {})
        self.cursor.execute(
            f"""
            INSERT INTO {self.styles} ({columns})
            SELECT {values} {added_here} WHERE s.tokens_a IS NOT NULL
            ON CONFLICT (battle_id) DO NOTHING
            """,
            params,
        )
        self.cursor.execute(
            f"""
            SELECT count(*) FILTER (WHERE s.model_a = %s OR s.model_b = %s),
                count(*) FILTER (WHERE s.anony AND s.model_a <> %s AND s.model_b <> %s)
            {added_here}
            """,
            [importing.ANONYMOUS] * 4,
        )
        unnamed, tested = self.cursor.fetchone()
        return added, unnamed, tested

    def _columns(self, model, expressions: dict[str, str], expression_params: dict) -> tuple[str, str, list]:
        """The INSERT column list, SELECT list and parameters for `model`: `expressions` by
        field name; other fields take their database default, or their model default as a
        parameter. Spelled out from the model, so a column added later with a default needs
        nothing here."""
        columns, values, params = [], [], []
        for model_field in model._meta.concrete_fields:
            name = model_field.name
            if name in expressions:
                values.append(expressions[name])
                param = expression_params.get(name)
                params.extend(param if isinstance(param, tuple) else [] if param is None else [param])
            elif model_field.primary_key or model_field.db_default is not NOT_PROVIDED:
                continue
            elif model_field.has_default() or model_field.null:
                # A parameter in a SELECT list is text to PostgreSQL unless cast (SQLite has no such types).
                values.append(f"CAST(%s AS {model_field.db_type(connection)})" if self.postgresql else "%s")
                params.append(model_field.get_db_prep_save(model_field.get_default(), connection))
            else:
                raise RuntimeError(f"the importer does not know what to write in {model.__name__}.{name}")
            columns.append(connection.ops.quote_name(model_field.column))
        return ", ".join(columns), ", ".join(values), params


def _copy_text(value: str) -> str:
    """A text value as COPY's text format spells it: backslash, tab, newline and carriage
    return escaped."""
    if "\\" in value:
        value = value.replace("\\", "\\\\")
    if "\t" in value or "\n" in value or "\r" in value:
        value = value.replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return value


def _copy_value(value) -> str:
    if value is None:
        return "\\N"
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, str):
        return _copy_text(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _copy_line(values: tuple) -> str:
    return "\t".join(map(_copy_value, values)) + "\n"


class _ModelResolver:
    """Model names to ids. Names not in the arena become listed models of the "imported"
    provider, through the lifecycle (providers.lifecycle.import_listed), which checks each name
    like any other public name; a refused name refuses the file at its first row."""

    def __init__(self, *, source_name: str):
        self.source_name = source_name
        self.ids: dict[str, int] = {}
        self.unnamed_ids: dict[str, int] = {}  # side ("a", "b") -> the stand-in for `anonymous`
        self.provider: Provider | None = None
        # Models created by this import, and the earliest tstamp seen of each.
        self.created: dict[str, ArenaModel] = {}
        self.earliest: dict[str, datetime] = {}

    def resolve(self, rows: list[ImportRow]) -> dict[str, int]:
        unknown = {row.model_a for row in rows} | {row.model_b for row in rows}
        unknown.difference_update(self.ids)
        unknown.discard(importing.ANONYMOUS)
        if unknown:
            # Names are unique among public models, not among hidden ones of different providers;
            # a public model wins, then the oldest, so the same file always lands on the same model.
            found = ArenaModel.objects.filter(name__in=unknown).order_by(F("listed_at").asc(nulls_last=True), "pk")
            for name, pk in found.values_list("name", "id"):
                self.ids.setdefault(name, pk)
            for name in sorted(unknown.difference(self.ids)):
                self.earliest[name] = min(row.created_at for row in rows if name in (row.model_a, row.model_b))
                self._create(name, first=next(row for row in rows if name in (row.model_a, row.model_b)))
        if self.earliest:
            for row in rows:
                for name in (row.model_a, row.model_b):
                    if name in self.earliest and row.created_at < self.earliest[name]:
                        self.earliest[name] = row.created_at
        return self.ids

    def id_of(self, name: str, side: str) -> int:
        """The model id for `name` on `side` ("a" or "b"): `anonymous` is the side's stand-in."""
        if name != importing.ANONYMOUS:
            return self.ids[name]
        if side not in self.unnamed_ids:
            provider = self._provider()
            name = UNNAMED_NAMES[side]
            model = ArenaModel.objects.filter(provider=provider, name=name).first()
            if model is None:
                # Not a model that enters the arena (no lifecycle, never in battles): a draft
                # that holds the imported battles whose model the data does not name.
                model = ArenaModel.objects.create(
                    provider=provider,
                    name=name,
                    access_kind=ArenaModel.AccessKind.PUBLIC_API,
                    status=ArenaModel.Status.DRAFT,
                    description=(
                        "Stands for the models imported data labels anonymous. Never in battles; "
                        "its votes are excluded as unnamed_model and never rated."
                    ),
                )
            self.unnamed_ids[side] = model.pk
        return self.unnamed_ids[side]

    def finish(self) -> list[str]:
        """Move listed_at back where a later batch held an earlier battle; return the created names."""
        for name, model in self.created.items():
            lifecycle.backdate_import(model, self.earliest[name])
        return sorted(self.created)

    def _provider(self) -> Provider:
        if self.provider is None:
            self.provider = (
                Provider.objects.filter(slug=IMPORTED_PROVIDER).first()
                or Provider.objects.filter(name=IMPORTED_PROVIDER).first()
                or Provider.objects.create(name=IMPORTED_PROVIDER, slug=IMPORTED_PROVIDER)
            )
        return self.provider

    def _create(self, name: str, *, first: ImportRow) -> None:
        try:
            model = lifecycle.import_listed(
                provider=self._provider(),
                name=name,
                listed_at=self.earliest[name],
                reason=f"Imported with arena data from {self.source_name}",
            )
        except lifecycle.TransitionRefused as exc:
            field_name = "model_a" if first.model_a == name else "model_b"
            raise ImportFormatError(
                f"{field_name} {name!r} cannot be a model's name: {exc.detail}", first.where
            ) from None
        self.ids[name] = model.pk
        self.created[name] = model

"""Imported rows as the import's batches: one row of the staging table per battle, as COPY text.

Pure Python, no database: what a batch carries to the merge (battles/import_staging.py) is
computed here, in this process or in a worker process (battles/import_workers.py). The
columns of a staged row and the values that fill them stand side by side (STAGE_COLUMNS and
stage_values), so they cannot drift apart.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import NamedTuple

from battles import voters
from battles.importing import ImportRow
from battles.models import Battle
from battles.style import conversation_prompt_hash, style_columns

# Distinct judges keyed per import are cached up to this many, so memory stays bounded.
JUDGE_CACHE = 1 << 16

STYLE_FIELDS = ("tokens_a", "tokens_b", "headers_a", "headers_b", "list_items_a", "list_items_b", "bold_a", "bold_b")

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


def imported_judge(judge: str) -> str:
    """The stored form of a judge named in imported data: keyed like a live voter (battles/voters.py)."""
    return voters.judge_id(f"import:{judge}")


def judge_keyer() -> Callable[[str], str]:
    """imported_judge with a bounded cache: a file names the same judges over and over."""
    return functools.lru_cache(maxsize=JUDGE_CACHE)(imported_judge)


class RowKey(NamedTuple):
    """What the writer needs of a row beyond its staged columns: its models (to find or
    create them), time (a created model's listing) and where (for a refused model name)."""

    model_a: str
    model_b: str
    created_at: datetime
    where: str


@dataclass(slots=True)
class Batch:
    rows: list[ImportRow] | list[RowKey]
    copy: str | None = None  # the batch as COPY text (PostgreSQL)
    staged: list[tuple] | None = None  # or one tuple of staging columns per row, in STAGE_COLUMNS order


def prepared_batches(rows: Iterable[ImportRow], size: int, copy: bool) -> Iterator[Batch]:
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        staged = [stage_values(seq, row) for seq, row in enumerate(batch)]
        yield Batch(batch, "".join(map(copy_line, staged))) if copy else Batch(batch, staged=staged)


def keyed_batch(rows: list[ImportRow]) -> Batch:
    """A batch as COPY text with the rows' keys alone: what a worker process hands back
    (the rows themselves would cost their pickling and are not needed after staging)."""
    copy = "".join(copy_line(stage_values(seq, row)) for seq, row in enumerate(rows))
    return Batch([RowKey(row.model_a, row.model_b, row.created_at, row.where) for row in rows], copy)


def stage_values(seq: int, row: ImportRow) -> tuple:
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


def copy_line(values: tuple) -> str:
    return "\t".join(map(_copy_value, values)) + "\n"

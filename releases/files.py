"""Release files in the schema of the public `chatbot_arena_conversations` dataset.

Pure: rows in, files out. `ReleaseWriter` writes `battles.jsonl` and `battles.parquet`
batch by batch into a directory, so memory stays one batch whatever the release's size,
and keeps the SHA-256 of each file for the manifest. The Parquet schema is the dataset's,
field by field, so the `datasets` library and pandas load the files as they load the
public one, followed by one field of Arenasite's own (`voted_attempt`, docs/data.md).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from battles import moderation

JSONL_NAME = "battles.jsonl"
PARQUET_NAME = "battles.parquet"
MANIFEST_NAME = "manifest.json"
CARD_NAME = "README.md"
FILE_NAMES = (JSONL_NAME, PARQUET_NAME, MANIFEST_NAME, CARD_NAME)
# The `format` of a download (releases.models.Download.Format) -> the file it serves.
FORMAT_FILES = {"jsonl": JSONL_NAME, "parquet": PARQUET_NAME, "manifest": MANIFEST_NAME, "card": CARD_NAME}

# The public dataset's moderation categories, in its order.
MODERATION_CATEGORIES = moderation.CATEGORIES

_MESSAGE = pa.struct([("content", pa.string()), ("role", pa.string())])
# A message's keys in the files: the dataset's, whatever a stored conversation carries
# (imports used to keep FastChat's `num_tokens`; the arena may keep more of its own).
MESSAGE_KEYS = ("role", "content")
CONVERSATIONS = ("conversation_a", "conversation_b")
_MODERATION = pa.struct(
    [
        ("categories", pa.struct([(name, pa.bool_()) for name in MODERATION_CATEGORIES])),
        ("category_scores", pa.struct([(name, pa.float64()) for name in MODERATION_CATEGORIES])),
        ("flagged", pa.bool_()),
    ]
)
_TOXIC_CHAT = pa.struct(
    [
        ("roberta-large", pa.struct([("flagged", pa.bool_()), ("probability", pa.float64())])),
        ("t5-large", pa.struct([("flagged", pa.bool_()), ("score", pa.float64())])),
    ]
)

# Field names, order and types of the public dataset.
SCHEMA = pa.schema(
    [
        ("question_id", pa.string()),
        ("model_a", pa.string()),
        ("model_b", pa.string()),
        ("winner", pa.string()),
        ("judge", pa.string()),
        ("conversation_a", pa.list_(_MESSAGE)),
        ("conversation_b", pa.list_(_MESSAGE)),
        ("turn", pa.int64()),
        ("anony", pa.bool_()),
        ("language", pa.string()),
        ("tstamp", pa.float64()),
        ("openai_moderation", _MODERATION),
        ("toxic_chat_tag", _TOXIC_CHAT),
        # Arenasite's own, after the dataset's: for each user turn, which answers the
        # conversations hold and the vote judged (1: the first; n: after n-1 regenerates).
        ("voted_attempt", pa.list_(pa.int64())),
    ]
)
COLUMNS = tuple(SCHEMA.names)


def moderation_in_schema(result: Any) -> dict | None:
    """A stored moderation result with exactly the dataset's categories (None stays None)."""
    if not isinstance(result, dict):
        return None
    categories = result.get("categories") or {}
    scores = result.get("category_scores") or {}
    return {
        "categories": {name: bool(categories.get(name, False)) for name in MODERATION_CATEGORIES},
        "category_scores": {name: float(scores.get(name, 0.0) or 0.0) for name in MODERATION_CATEGORIES},
        "flagged": bool(result.get("flagged", False)),
    }


def conversation_in_schema(messages: Any) -> list[dict]:
    """A stored conversation with exactly the dataset's message keys, role and content."""
    return [{key: message.get(key) for key in MESSAGE_KEYS} for message in messages or []]


class ReleaseFileError(Exception):
    """Rows that do not fit the dataset's schema; the message says which and why."""


def toxic_chat_in_schema(tag: Any) -> dict | None:
    if not isinstance(tag, dict):
        return None
    roberta, t5 = tag.get("roberta-large") or {}, tag.get("t5-large") or {}
    return {
        "roberta-large": {
            "flagged": bool(roberta.get("flagged", False)),
            "probability": float(roberta.get("probability", 0.0)),
        },
        "t5-large": {"flagged": bool(t5.get("flagged", False)), "score": float(t5.get("score", 0.0))},
    }


class ReleaseWriter:
    """Writes rows (dicts with COLUMNS) to JSONL and Parquet in `directory`, batch by batch."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.rows = 0
        self._jsonl = open(self.directory / JSONL_NAME, "wb")  # noqa: SIM115 - closed in close()
        self._jsonl_hash = hashlib.sha256()
        self._parquet = pq.ParquetWriter(self.directory / PARQUET_NAME, SCHEMA, compression="zstd")

    def write(self, rows: Sequence[dict]) -> None:
        if not rows:
            return
        rows = [
            {**row, **{name: conversation_in_schema(row[name]) for name in CONVERSATIONS if name in row}}
            for row in rows
        ]
        text = "".join(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n" for row in rows).encode()
        self._jsonl.write(text)
        self._jsonl_hash.update(text)
        # The Parquet rows are parsed back from the JSONL text by Arrow's C++ reader: several
        # times faster than building nested columns from Python objects, and the two files
        # then hold the same values by construction.
        try:
            table = pa_json.read_json(
                pa.BufferReader(text),
                read_options=pa_json.ReadOptions(block_size=len(text) + 1),
                parse_options=pa_json.ParseOptions(explicit_schema=SCHEMA, unexpected_field_behavior="error"),
            )
        except pa.ArrowException as exc:
            first = rows[0].get("question_id")
            raise ReleaseFileError(
                f"rows {self.rows + 1} to {self.rows + len(rows)} (from question_id {first!r}) do not fit the "
                f"dataset's Parquet schema: {exc}"
            ) from exc
        self._parquet.write_table(table.select(COLUMNS))
        self.rows += len(rows)

    def close(self) -> dict[str, dict]:
        """Finish both files and return {name: {"bytes", "sha256"}} for the manifest."""
        self._parquet.close()
        self._jsonl.flush()
        _sync(self._jsonl)
        self._jsonl.close()
        return {
            JSONL_NAME: {"bytes": (self.directory / JSONL_NAME).stat().st_size, "sha256": self._jsonl_hash.hexdigest()},
            PARQUET_NAME: file_summary(self.directory / PARQUET_NAME),
        }

    def abort(self) -> None:
        try:
            self._parquet.close()
        finally:
            self._jsonl.close()


def file_summary(path: Path) -> dict:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def _sync(f) -> None:
    os.fsync(f.fileno())

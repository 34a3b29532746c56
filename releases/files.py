"""Release files in the schema of the public `chatbot_arena_conversations` dataset.

Pure: rows in, files out. `ReleaseWriter` writes `battles.jsonl`, `battles.parquet` and
`clean_battle.json` batch by batch into a directory, so memory stays one batch whatever
the release's size, and keeps the SHA-256 of each file for the manifest. The Parquet schema
is the dataset's, field by field, so the `datasets` library and pandas load the files as
they load the public one, followed by one field of Arenasite's own (`voted_attempt`,
docs/data.md).

`clean_battle.json` is the same battles in the shape of FastChat's clean battle file (one
JSON array, `clean_battle_row`), which FastChat's `elo_analysis.py` and the notebooks built
on it read with `pd.read_json` and nothing else: the JSON Lines file is not what they expect.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from battles import moderation

JSONL_NAME = "battles.jsonl"
PARQUET_NAME = "battles.parquet"
CLEAN_BATTLE_NAME = "clean_battle.json"
MANIFEST_NAME = "manifest.json"
CARD_NAME = "README.md"
FILE_NAMES = (JSONL_NAME, PARQUET_NAME, CLEAN_BATTLE_NAME, MANIFEST_NAME, CARD_NAME)
# The `format` of a download (releases.models.Download.Format) -> the file it serves.
FORMAT_FILES = {
    "jsonl": JSONL_NAME,
    "parquet": PARQUET_NAME,
    "fastchat": CLEAN_BATTLE_NAME,
    "manifest": MANIFEST_NAME,
    "card": CARD_NAME,
}

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


# --- FastChat's clean battle file ------------------------------------------------------------

# The keys of a row of FastChat's clean battle file, in its order: those its
# clean_battle_data.py writes (less the conversations, which the public file leaves out and
# battles.jsonl carries), then the tags its later steps add (add_markdown_info.py,
# deduplication.py, classify/label.py). elo_analysis.py reads model_a, model_b, winner,
# anony, language and tstamp, and conv_metadata for style control.
CLEAN_BATTLE_KEYS = (
    "question_id",
    "model_a",
    "model_b",
    "winner",
    "judge",
    "turn",
    "anony",
    "language",
    "tstamp",
    "conv_metadata",
    "dedup_tag",
    "category_tag",
)
# What the clean battle file takes from a row besides COLUMNS, when given (clean_battle_row).
_CLEAN_BATTLE_EXTRAS = ("dedup_tag", "category_tag", "answer_tokens")
# What a row's prompt is when nothing says it is a flooded duplicate (deduplication.py's default).
NOT_DUPLICATE = {"high_freq": False, "sampled": True}

# Tokens as the leaderboard's style control counts them (battles/style.py): words and
# punctuation marks. FastChat counts with tiktoken's gpt-3.5-turbo encoding, which this
# follows closely enough for a covariate, without a tokenizer's vocabulary.
_TOKEN = re.compile(r"\w+|[^\w\s]")
# FastChat's add_markdown_info.py, pattern for pattern, on the answers with code blocks removed.
_CODE_BLOCK = re.compile(r"```[^`]*```")
_HEADER = re.compile(r"^(#{1,6})\s", re.MULTILINE)  # its ^#{n}\s for n = 1..6, in one pass
_ORDERED = re.compile(r"^\s*\d+\.\s", re.MULTILINE)
_UNORDERED = re.compile(r"^\s*[-*+]\s", re.MULTILINE)
_BOLD_STARS = re.compile(r"\*\*[^*\n]+\*\*")
_BOLD_UNDERSCORES = re.compile(r"__[^_\n]+__")


def _tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def _markdown_counts(conversation: list[dict], side: str) -> dict:
    answers = "\n".join(m["content"] or "" for m in conversation if m["role"] == "assistant")
    # Each pattern is searched only where its mark is in the text at all: most answers have
    # no code block, header or bold span, and the export runs this on every battle.
    if "```" in answers:
        answers = _CODE_BLOCK.sub("", answers)
    headed = answers.startswith("#") or "\n#" in answers  # a header's # starts its line
    levels = [len(hashes) for hashes in _HEADER.findall(answers)] if headed else []
    return {
        f"header_count_{side}": {f"h{n}": levels.count(n) for n in range(1, 7)},
        f"list_count_{side}": {
            "ordered": len(_ORDERED.findall(answers)),
            "unordered": len(_UNORDERED.findall(answers)),
        },
        f"bold_count_{side}": {
            "**": len(_BOLD_STARS.findall(answers)) if "**" in answers else 0,
            "__": len(_BOLD_UNDERSCORES.findall(answers)) if "__" in answers else 0,
        },
    }


def conv_metadata(
    conversation_a: list[dict], conversation_b: list[dict], turn: int, answer_tokens: tuple[int, int] | None = None
) -> dict:
    """FastChat's `conv_metadata` of a battle: token counts of the prompts and of each side's
    answers, each side's context (its conversation before its last answer), and the markdown
    elements of each side's answers, the style features its style control fits.

    The conversations are in the dataset's shape (conversation_in_schema). `answer_tokens`:
    the two sides' answer tokens when they are counted already (a battle's BattleStyle, by
    the same rule), so the longest texts are not counted a second time."""
    # Both sides have the same prompts: each is counted once.
    prompts = {m["content"]: _tokens(m["content"] or "") for m in conversation_a if m["role"] == "user"}
    found = {"sum_user_tokens": sum(prompts[m["content"]] for m in conversation_a if m["role"] == "user")}

    def tokens(message: dict) -> int:
        if message["role"] == "user" and message["content"] in prompts:
            return prompts[message["content"]]
        return _tokens(message["content"] or "")

    for index, (side, conversation) in enumerate((("a", conversation_a), ("b", conversation_b))):
        last = max((i for i, m in enumerate(conversation) if m["role"] == "assistant"), default=len(conversation))
        context = sum(tokens(m) for m in conversation[:last])
        if answer_tokens is not None:
            answers = answer_tokens[index]
        else:
            earlier = sum(_tokens(m["content"] or "") for m in conversation[:last] if m["role"] == "assistant")
            answers = earlier + (_tokens(conversation[last]["content"] or "") if last < len(conversation) else 0)
        found[f"sum_assistant_{side}_tokens"] = answers
        found[f"context_{side}_tokens"] = context
    # In FastChat's order: the token counts, then the turns, then the markdown.
    found = {key: found[key] for key in _TOKEN_KEYS}
    found["turns"] = turn
    return found | _markdown_counts(conversation_a, "a") | _markdown_counts(conversation_b, "b")


_TOKEN_KEYS = (
    "sum_user_tokens",
    "sum_assistant_a_tokens",
    "sum_assistant_b_tokens",
    "context_a_tokens",
    "context_b_tokens",
)


def clean_battle_row(row: dict) -> dict:
    """A release row (COLUMNS, conversations in the dataset's shape) as a row of FastChat's
    clean battle file. `dedup_tag`, `category_tag` and `answer_tokens` come with the row when
    the caller has them: the prompt's down-sampling as the leaderboard does it, Arenasite's
    categories, and the answers' tokens as counted when the battle was stored."""
    found = {key: row[key] for key in CLEAN_BATTLE_KEYS[:9]}
    found["conv_metadata"] = conv_metadata(
        row["conversation_a"], row["conversation_b"], row["turn"], row.get("answer_tokens")
    )
    found["dedup_tag"] = row.get("dedup_tag") or NOT_DUPLICATE
    found["category_tag"] = row.get("category_tag") or {}
    return found


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
    """Writes rows (dicts with COLUMNS, and optionally what clean_battle_row takes besides) to
    JSONL, Parquet and FastChat's clean battle JSON in `directory`, batch by batch."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.rows = 0
        self._jsonl = open(self.directory / JSONL_NAME, "wb")  # noqa: SIM115 - closed in close()
        self._jsonl_hash = hashlib.sha256()
        self._parquet = pq.ParquetWriter(self.directory / PARQUET_NAME, SCHEMA, compression="zstd")
        # One JSON array, written a row per line as the rows come: "[", then the rows
        # separated by ",\n", then "]" in close(). Nothing is held but the current batch.
        self._clean = open(self.directory / CLEAN_BATTLE_NAME, "wb")  # noqa: SIM115 - closed in close()
        self._clean_hash = hashlib.sha256()
        self._write_clean(b"[")

    def _write_clean(self, data: bytes) -> None:
        self._clean.write(data)
        self._clean_hash.update(data)

    def write(self, rows: Sequence[dict]) -> None:
        if not rows:
            return
        rows = [
            {
                **{name: row[name] for name in COLUMNS},
                **{name: conversation_in_schema(row[name]) for name in CONVERSATIONS},
                **{key: row[key] for key in _CLEAN_BATTLE_EXTRAS if key in row},
            }
            for row in rows
        ]
        text = "".join(
            json.dumps({name: row[name] for name in COLUMNS}, ensure_ascii=False, separators=(",", ":")) + "\n"
            for row in rows
        ).encode()
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
        separator = ",\n" if self.rows else "\n"
        self._write_clean(
            (
                separator
                + ",\n".join(
                    json.dumps(clean_battle_row(row), ensure_ascii=False, separators=(",", ":")) for row in rows
                )
            ).encode()
        )
        self.rows += len(rows)

    def close(self) -> dict[str, dict]:
        """Finish the files and return {name: {"bytes", "sha256", "rows"}} for the manifest."""
        self._parquet.close()
        self._jsonl.flush()
        _sync(self._jsonl)
        self._jsonl.close()
        self._write_clean(b"\n]\n")
        self._clean.flush()
        _sync(self._clean)
        self._clean.close()
        return {
            JSONL_NAME: {
                "bytes": (self.directory / JSONL_NAME).stat().st_size,
                "sha256": self._jsonl_hash.hexdigest(),
                "rows": self.rows,
            },
            PARQUET_NAME: {**file_summary(self.directory / PARQUET_NAME), "rows": self.rows},
            CLEAN_BATTLE_NAME: {
                "bytes": (self.directory / CLEAN_BATTLE_NAME).stat().st_size,
                "sha256": self._clean_hash.hexdigest(),
                "rows": self.rows,
            },
        }

    def abort(self) -> None:
        try:
            self._parquet.close()
        finally:
            self._jsonl.close()
            self._clean.close()


def file_summary(path: Path) -> dict:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def _sync(f) -> None:
    os.fsync(f.fileno())


def finish_directory(partial: Path, final: Path, *, card: str, manifest: dict[str, Any]) -> None:
    """Complete a release's or a share's files being written in `partial`: the data card, then
    the manifest with the card's checksum, each synced to disk; then `partial` becomes `final`
    in one rename, so a reader finds the whole directory or none of it. The caller syncs
    `final`'s parent once it has noted that the directory is in place."""
    (partial / CARD_NAME).write_text(card, encoding="utf-8")
    manifest["files"][CARD_NAME] = file_summary(partial / CARD_NAME)
    (partial / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    sync_directory(partial)
    os.replace(partial, final)


def sync_directory(path: Path) -> None:
    """fsync a directory, so the names in it (a rename, a new file) survive a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

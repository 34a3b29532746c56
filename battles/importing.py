"""Readers for public arena battle files, yielding one normalised ImportRow per battle.

Two shapes are read:

- FastChat's clean battle data: ONE JSON array of objects (streamed with ijson);
- the `chatbot_arena_conversations` dataset schema, as JSON Lines or Parquet (Parquet is
  read by record batches, so a file larger than memory is fine).

Plain Python on purpose: no Django here, so the readers can be tested and reused without
a database. battles/import_writer.py does the writing. A row that does not fit raises
ImportFormatError naming where it is (line, item or row number); the writer then refuses
the whole file.

Judges: a file's `judge` may be an address (FastChat's unsanitised dumps write
`arena_user_10.209.216.199`). The writer passes `key_judge`, the keyed hash live voters
are stored under, and normalise() applies it before anything else sees the judge, so the
row, and the content hash that stands in for a missing question_id, never hold it raw.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FASTCHAT = "fastchat"
HF_JSONL = "hf-jsonl"
HF_PARQUET = "hf-parquet"
FORMAT_CHOICES = ("auto", "fastchat", "hf")

# The values of battles.models.Winner and the sizes of the columns rows land in; a test
# keeps them in step with the models.
WINNERS = frozenset({"model_a", "model_b", "tie", "tie (bothbad)"})
MODEL_NAME_MAX = 100
QUESTION_ID_MAX = 64
JUDGE_MAX = 64
LANGUAGE_MAX = 32
TURN_MAX = 32767

REQUIRED = ("model_a", "model_b", "winner", "judge", "tstamp")

# How releases and shares label a model they do not name (releases.building.ANONYMOUS). A row
# may pair it with itself (two never-listed models, or a share's two hidden sides); such
# rows are kept and never rated, since which models they were is unknown.
ANONYMOUS = "anonymous"

# The keys of a message in the public dataset. Others (FastChat's `num_tokens`, say) are dropped.
MESSAGE_KEYS = ("role", "content")

# How deeply a row may nest, the row object being level 1: a conversation's messages are at
# level 3, moderation tags at 3 or 4. Without a bound, a file of nested brackets exhausts
# Python's recursion (JSON Lines) or the JSON array reader's memory, which grows with the
# square of the depth, and PostgreSQL's jsonb has a limit of its own.
MAX_DEPTH = 32

# What PostgreSQL text and jsonb cannot hold: NUL, and lone UTF-16 surrogates (JSON can spell
# both as \u escapes; neither is a character UTF-8 can encode).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

_PARQUET_MAGIC = b"PAR1"


class ImportFormatError(ValueError):
    """A file or row that cannot be imported; `where` says which ("line 3", "item 7", "row 12")."""

    def __init__(self, message: str, where: str = ""):
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.message = message

    def __reduce__(self):
        # Rows may be checked in worker processes, which hand the error back pickled.
        return type(self), (self.message, self.where)


@dataclass(slots=True)
class ImportRow:
    question_id: str  # as given, or a content hash when the row has none
    model_a: str
    model_b: str
    winner: str
    judge: str
    anony: bool
    language: str
    turn: int
    prompt_chars: int
    conversation_a: list
    conversation_b: list
    openai_moderation: Any
    toxic_chat_tag: Any
    tstamp: float
    created_at: datetime  # tstamp in UTC
    where: str = ""  # "line 3", "item 7", "row 12": for refusals found after reading


def detect_format(path: Path, requested: str = "auto") -> str:
    """The reader for `path`: from --format, else from the extension, else from the first bytes."""
    if requested not in FORMAT_CHOICES:
        raise ImportFormatError(f"unknown format {requested!r}; choose one of {', '.join(FORMAT_CHOICES)}")
    head = _first_bytes(path)
    is_parquet = head.startswith(_PARQUET_MAGIC)
    first = head.lstrip()[:1]
    if requested == "fastchat":
        if first != b"[":
            raise ImportFormatError(
                "--format fastchat expects one JSON array of battles, but the file does not start with '['"
            )
        return FASTCHAT
    if requested == "hf":
        return HF_PARQUET if is_parquet or path.suffix.lower() == ".parquet" else HF_JSONL
    suffix = path.suffix.lower()
    if suffix == ".parquet" or is_parquet:
        return HF_PARQUET
    if suffix in (".jsonl", ".ndjson"):
        return HF_JSONL
    if first == b"[":
        return FASTCHAT
    if first == b"{":
        # The datasets library writes JSON Lines under a .json name, too.
        return HF_JSONL
    raise ImportFormatError("cannot tell the format (not Parquet, a JSON array or JSON Lines); pass --format")


KeyJudge = Callable[[str], str]


def read_rows(
    path: Path, fmt: str, *, batch_size: int = 5000, key_judge: KeyJudge | None = None
) -> Iterator[ImportRow]:
    """Stream normalised rows from `path` in the detected format `fmt`; `key_judge` (see the
    module docstring) replaces each judge as it is read."""
    return (normalise(obj, where, key_judge) for obj, where in read_objects(path, fmt, batch_size=batch_size))


def read_objects(path: Path, fmt: str, *, batch_size: int = 5000) -> Iterator[tuple[Any, str]]:
    """Stream the battle objects of `path` as read, not yet checked, each with where it is:
    normalise() them (the writer may do so in other processes)."""
    if fmt == FASTCHAT:
        return _fastchat_objects(path)
    if fmt == HF_JSONL:
        return _jsonl_objects(path)
    if fmt == HF_PARQUET:
        return _parquet_objects(path, batch_size=batch_size)
    raise ImportFormatError(f"unknown format {fmt!r}")


def read_fastchat(path: Path, *, key_judge: KeyJudge | None = None) -> Iterator[ImportRow]:
    return (normalise(obj, where, key_judge) for obj, where in _fastchat_objects(path))


def read_jsonl(path: Path, *, key_judge: KeyJudge | None = None) -> Iterator[ImportRow]:
    return (normalise(obj, where, key_judge) for obj, where in _jsonl_objects(path))


def read_parquet(path: Path, *, batch_size: int = 5000, key_judge: KeyJudge | None = None) -> Iterator[ImportRow]:
    return (normalise(obj, where, key_judge) for obj, where in _parquet_objects(path, batch_size=batch_size))


def _fastchat_objects(path: Path) -> Iterator[tuple[Any, str]]:
    import ijson

    number = 0
    with open(path, "rb") as f:
        if _first_bytes(path).lstrip()[:1] != b"[":
            raise ImportFormatError("expected one JSON array of battles (the file does not start with '[')")
        # use_float: numbers as float, not Decimal, so they compare and serialise like json.loads output.
        items = _array_items(ijson.basic_parse(f, use_float=True))
        while True:
            try:
                obj = next(items)
            except StopIteration:
                return
            except ijson.JSONError as exc:
                raise ImportFormatError(f"invalid JSON ({_short(exc)})", f"item {number + 1}") from exc
            except _TooDeep as exc:
                raise ImportFormatError(str(exc), f"item {number + 1}") from None
            number += 1
            yield obj, f"item {number}"


class _TooDeep(Exception):
    pass


def _array_items(events: Iterator[tuple[str, Any]]) -> Iterator[Any]:
    """The items of a top-level JSON array, built from ijson's parser events with a depth bound.

    ijson's own items() builds the whole path of every value as text, so a few hundred kB of
    nested brackets take gigabytes before the first item is complete; here the depth is
    counted as the events arrive and an item deeper than MAX_DEPTH is refused at once.
    """
    from ijson.common import ObjectBuilder

    opening, closing = {"start_map", "start_array"}, {"end_map", "end_array"}
    next(events, None)  # the array's start_array: the caller checked the file starts with '['
    builder, depth = None, 0
    for event, value in events:
        if builder is None:
            if event == "end_array":
                break
            builder = ObjectBuilder()
        builder.event(event, value)
        if event in opening:
            depth += 1
            if depth > MAX_DEPTH:
                raise _TooDeep(f"nested more than {MAX_DEPTH} levels deep")
        elif event in closing:
            depth -= 1
        if depth == 0:
            yield builder.value
            builder = None
    for _ in events:  # anything after the array is an error the parser reports
        pass


def _jsonl_objects(path: Path) -> Iterator[tuple[Any, str]]:
    with open(path, encoding="utf-8") as f:
        number = 0
        while True:
            where = f"line {number + 1}"
            try:
                line = f.readline()
            except UnicodeDecodeError as exc:
                raise ImportFormatError(f"not UTF-8 text ({exc.reason})", where) from exc
            if not line:
                return
            number += 1
            if not line.strip():
                continue
            try:
                obj = json.loads(line, parse_constant=_refuse_constant)
            except json.JSONDecodeError as exc:
                raise ImportFormatError(f"invalid JSON ({exc.msg} at column {exc.pos + 1})", where) from exc
            except ValueError as exc:
                raise ImportFormatError(f"invalid JSON ({exc})", where) from exc
            except RecursionError:
                # Deeper than the interpreter's recursion limit, far past MAX_DEPTH.
                raise ImportFormatError(f"nested more than {MAX_DEPTH} levels deep", where) from None
            if isinstance(obj, list):
                raise ImportFormatError(
                    "expected one JSON object per line, got an array (try --format fastchat)", where
                )
            yield obj, where


def _parquet_objects(path: Path, *, batch_size: int = 5000) -> Iterator[tuple[Any, str]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise ImportFormatError(f"not a readable Parquet file ({_short(exc)})") from exc
    number = 0
    batches = parquet.iter_batches(batch_size=batch_size)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as exc:
            raise ImportFormatError(f"unreadable Parquet data ({_short(exc)})", f"row {number + 1}") from exc
        for obj in batch.to_pylist():
            number += 1
            yield obj, f"row {number}"


def normalise(obj: Any, where: str, key_judge: KeyJudge | None = None) -> ImportRow:
    """Check one battle object and bring it to the stored shape; raise ImportFormatError if it
    does not fit. With `key_judge`, the row's judge is its keyed form (module docstring).

    Fields are checked in a fixed order, so a row with several faults always reports the
    same one first."""
    if not isinstance(obj, dict):
        raise ImportFormatError(f"expected an object, got {_type_name(obj)}", where)
    for name in REQUIRED:
        if obj.get(name) is None:
            raise ImportFormatError(f"missing required field {name!r}", where)

    model_a = _model_name(obj, "model_a", where)
    model_b = _model_name(obj, "model_b", where)
    if model_a == model_b and model_a != ANONYMOUS:
        raise ImportFormatError(f"model_a and model_b are the same model ({model_a!r})", where)
    winner = _winner(obj, where)
    judge = _judge(obj, where, key_judge)
    tstamp, created_at = _tstamp(obj, where)
    anony = _anony(obj, where)
    language = _language(obj, where)
    conversation_a = _conversation(obj, "conversation_a", where)
    conversation_b = _conversation(obj, "conversation_b", where)
    user_turns = [m["content"] for m in conversation_a if m["role"] == "user"]
    turn = _turn(obj, len(user_turns), where)
    question_id = _question_id(obj, where) or content_key(
        model_a=model_a,
        model_b=model_b,
        winner=winner,
        judge=judge,
        tstamp=tstamp,
        conversation_a=conversation_a,
        conversation_b=conversation_b,
    )
    openai_moderation = obj.get("openai_moderation")
    toxic_chat_tag = obj.get("toxic_chat_tag")
    _check_json(openai_moderation, "openai_moderation", where)
    _check_json(toxic_chat_tag, "toxic_chat_tag", where)

    return ImportRow(
        question_id=question_id,
        model_a=model_a,
        model_b=model_b,
        winner=winner,
        judge=judge,
        anony=anony,
        language=language[:LANGUAGE_MAX],
        turn=turn,
        prompt_chars=len(user_turns[0]) if user_turns else 0,
        conversation_a=conversation_a,
        conversation_b=conversation_b,
        openai_moderation=openai_moderation,
        toxic_chat_tag=toxic_chat_tag,
        tstamp=tstamp,
        created_at=created_at,
        where=where,
    )


def _winner(obj: dict[str, Any], where: str) -> str:
    winner = obj["winner"]
    if winner not in WINNERS:
        allowed = ", ".join(sorted(WINNERS))
        raise ImportFormatError(f"winner must be one of {allowed}; got {_shorten(winner)}", where)
    return winner


def _judge(obj: dict[str, Any], where: str, key_judge: KeyJudge | None) -> str:
    judge = obj["judge"]
    if not isinstance(judge, str) or not judge:
        raise ImportFormatError(f"judge must be a non-empty string, got {_type_name(judge)}", where)
    _check_text(judge, "judge", where)
    if len(judge) > JUDGE_MAX:
        judge = hashlib.sha256(judge.encode()).hexdigest()  # 64 characters, and stable across imports
    if key_judge is not None:
        judge = key_judge(judge)
    return judge


def _tstamp(obj: dict[str, Any], where: str) -> tuple[float, datetime]:
    """Unix seconds as a float, and the moment they name."""
    tstamp = obj["tstamp"]
    if isinstance(tstamp, bool) or not isinstance(tstamp, int | float) or not math.isfinite(tstamp):
        raise ImportFormatError(f"tstamp must be unix seconds (a number), got {_shorten(tstamp)}", where)
    tstamp = float(tstamp)
    try:
        return tstamp, datetime.fromtimestamp(tstamp, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise ImportFormatError(f"tstamp {tstamp!r} is out of range", where) from exc


def _anony(obj: dict[str, Any], where: str) -> bool:
    anony = obj.get("anony")
    if anony is None:
        return True
    if not isinstance(anony, bool):
        raise ImportFormatError(f"anony must be true or false, got {_shorten(anony)}", where)
    return anony


def _language(obj: dict[str, Any], where: str) -> str:
    language = obj.get("language") or ""
    if not isinstance(language, str):
        raise ImportFormatError(f"language must be a string, got {_type_name(language)}", where)
    _check_text(language, "language", where)
    return language


def _turn(obj: dict[str, Any], user_turns: int, where: str) -> int:
    """The row's turn count, or, when it has none, the count of the user's turns (at least 1)."""
    turn = obj.get("turn")
    if turn is None:
        return user_turns or 1
    if isinstance(turn, bool) or not isinstance(turn, int) or not 0 <= turn <= TURN_MAX:
        raise ImportFormatError(f"turn must be a whole number from 0 to {TURN_MAX}, got {_shorten(turn)}", where)
    return turn


def _question_id(obj: dict[str, Any], where: str) -> str | None:
    """The row's own question_id, checked; None or "" when it has none (normalise then keys
    the row by its content)."""
    question_id = obj.get("question_id")
    if question_id is not None and not isinstance(question_id, str):
        raise ImportFormatError(f"question_id must be a string, got {_type_name(question_id)}", where)
    if question_id and len(question_id) > QUESTION_ID_MAX:
        raise ImportFormatError(f"question_id is longer than {QUESTION_ID_MAX} characters", where)
    if question_id:
        _check_text(question_id, "question_id", where)
    return question_id


def content_key(
    *, model_a: str, model_b: str, winner: str, judge: str, tstamp: float, conversation_a: list, conversation_b: list
) -> str:
    """The idempotency key of a row without a question_id: sha256 of a canonical JSON (64 hex characters)."""
    canonical = json.dumps(
        {
            "model_a": model_a,
            "model_b": model_b,
            "winner": winner,
            "judge": judge,
            "tstamp": tstamp,
            "conversation_a": conversation_a,
            "conversation_b": conversation_b,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _model_name(obj: dict, field: str, where: str) -> str:
    value = obj[field]
    if not isinstance(value, str) or not value.strip():
        raise ImportFormatError(f"{field} must be a non-empty string, got {_shorten(value)}", where)
    if len(value) > MODEL_NAME_MAX:
        raise ImportFormatError(f"{field} is longer than {MODEL_NAME_MAX} characters", where)
    _check_text(value, field, where)
    return value


def _conversation(obj: dict, field: str, where: str) -> list:
    value = obj.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ImportFormatError(f"{field} must be a list of messages, got {_type_name(value)}", where)
    # Stored as the dataset has them: role and content, whatever else the file carries.
    messages = []
    for index, message in enumerate(value):
        role = message.get("role") if isinstance(message, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(role, str) or not isinstance(content, str):
            raise ImportFormatError(f"{field}[{index}] must be an object with string 'role' and 'content'", where)
        messages.append({"role": role, "content": content})
    # One search over all of the text (this runs for every row of a million-row file); the
    # search field by field only runs to say where the character is.
    if _UNSTORABLE.search("".join(text for message in messages for text in (message["role"], message["content"]))):
        for index, message in enumerate(messages):
            _check_text(message["role"], f"{field}[{index}].role", where)
            _check_text(message["content"], f"{field}[{index}].content", where)
    return messages


def _check_text(text: str, field: str, where: str) -> None:
    found = _UNSTORABLE.search(text)
    if found is None:
        return
    if found.group() == "\x00":
        raise ImportFormatError(f"{field} contains a NUL character, which cannot be stored", where)
    raise ImportFormatError(
        f"{field} contains a lone surrogate ({found.group().encode('unicode_escape').decode()}), "
        "which is not a character and cannot be stored",
        where,
    )


def _check_json(value: Any, field: str, where: str, depth: int = 2) -> None:
    """Refuse a stored JSON value nested past MAX_DEPTH (counting the row as level 1, so
    `depth` is the level of `value`) or with text PostgreSQL cannot hold, keys included.
    A loop over a stack, not recursion: the value may be nested too deeply to recurse."""
    stack = [(value, depth)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, str):
            _check_text(item, field, where)
        elif isinstance(item, dict | list):
            if level > MAX_DEPTH:
                raise ImportFormatError(f"{field} is nested more than {MAX_DEPTH} levels deep", where)
            if isinstance(item, dict):
                for key, inner in item.items():
                    if isinstance(key, str):
                        _check_text(key, field, where)
                    stack.append((inner, level + 1))
            else:
                stack.extend((inner, level + 1) for inner in item)


def _refuse_constant(name: str):
    # json.loads accepts NaN and Infinity, which are not JSON and which PostgreSQL's jsonb refuses.
    raise ValueError(f"{name} is not valid JSON")


def _first_bytes(path: Path, size: int = 4096) -> bytes:
    with open(path, "rb") as f:
        head = f.read(size)
    return head.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )


def _shorten(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]

"""Reading the counted votes: one pass, as columns, whatever the database.

A run reads every counted vote once, as one array per column (VOTE_COLUMNS), and counts every
category from those arrays in memory (leaderboard/counting.py): a pass over millions of votes
costs the same whether it returns counts or columns, and only one is made. The columns are
the same whichever categories are on: a category is a condition over them
(leaderboard/categories.py).

Two back ends read them, behind `read_columns` and `read_in_vote_order`: PostgreSQL's fast
path (leaderboard/postgres_votes.py, one statement that returns each column as one value), and
the ORM's rows for any other database (SQLite in development).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from django.db import connection
from django.db.models import Q, QuerySet

from battles.models import Vote
from ratings_engine import style_control

# The columns of a counted vote. winner: WINNER_CODES. language: 1 + the index of the battle's
# language among the languages asked for, 0 for any other. has_style: the battle has its
# answers' style counts (style_control's FEATURES, 0 where it has none). judge_key: equal for
# the same voter (on PostgreSQL a 32-bit hash, which two voters may share: see
# counting.over_daily_cap_mask). day: the vote's UTC day, counted from 2000-01-01.
VOTE_COLUMNS = (
    "id",
    "battle_id",
    "model_a",
    "model_b",
    "winner",
    "turn",
    "prompt_chars",
    "language",
    "has_style",
    "judge_key",
    "day",
    *style_control.STYLE_COLUMNS,
)
# Each column in memory in the narrowest type its values allow (the database's own column
# types bound them) and its uses need: ids, and the voter key and day (combined into one
# 64-bit key by the per-voter cap), stay 64-bit. The rest are compared, counted or converted
# to floats, so a run holds about half the bytes it would with 64-bit columns throughout.
COLUMN_TYPES = {
    "id": np.int64,
    "battle_id": np.int64,
    "model_a": np.int32,
    "model_b": np.int32,
    "winner": np.int8,
    "turn": np.int16,
    "prompt_chars": np.int32,
    "language": np.int16,
    "has_style": np.int8,
    "judge_key": np.int64,
    "day": np.int64,
    **{column: np.int32 for column in style_control.STYLE_COLUMNS},
}
WINNER_CODES = {"model_a": 0, "model_b": 1, "tie": 2, "tie (bothbad)": 3}
WINNER_NAMES = np.array(list(WINNER_CODES), dtype=object)
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass
class VoteColumns:
    """The counted votes as one array per column (VOTE_COLUMNS), in battle order, and the
    languages their `language` codes refer to."""

    arrays: dict[str, np.ndarray]
    languages: tuple[str, ...]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def __len__(self) -> int:
        return len(self.arrays["id"])

    def language_is(self, language: str) -> np.ndarray:
        code = self.languages.index(language) + 1 if language in self.languages else -1
        return self.arrays["language"] == code


@dataclass(frozen=True)
class Selection:
    """Which counted votes to read: those up to `last_vote_id`, and of them, when `after` is
    set, only those after it or in the `battles` named (the votes a run has not kept)."""

    last_vote_id: int
    languages: tuple[str, ...]
    after: int | None = None
    battles: tuple[int, ...] = ()


def counted_votes(*, last_vote_id: int) -> QuerySet:
    """Anonymous votes that are not excluded, up to a fixed vote id so a run sees a stable set."""
    return Vote.objects.filter(anony=True, excluded_reason="", id__lte=last_vote_id)


def postgres() -> bool:
    return connection.vendor == "postgresql"


def read_columns(selection: Selection) -> dict[str, np.ndarray]:
    """The VOTE_COLUMNS of the selected votes, in battle order."""
    if postgres():
        from . import postgres_votes

        columns = postgres_votes.read_columns(selection)
    else:
        columns = _columns_from_rows(selection)
    return in_battle_order(typed(columns))


def read_in_vote_order(*, after: int, last_vote_id: int) -> pd.DataFrame:
    """The counted votes after `after`, in the order they were cast: model_a, model_b (ids as
    strings, as the engine names models) and winner, for the online Elo."""
    if postgres():
        from . import postgres_votes

        a, b, winner = postgres_votes.read_in_vote_order(after=after, last_vote_id=last_vote_id)
    else:
        rows = (
            counted_votes(last_vote_id=last_vote_id)
            .filter(id__gt=after)
            .order_by("created_at", "id")
            .values_list("model_a_id", "model_b_id", "winner")
        )
        a, b, names = (np.array(values, dtype=object) for values in zip(*rows, strict=True)) if rows else ([], [], [])
        winner = np.array([WINNER_CODES[name] for name in names], dtype=np.int64)
    return pd.DataFrame(
        {
            "model_a": np.asarray(a, dtype=np.int64).astype(str),
            "model_b": np.asarray(b, dtype=np.int64).astype(str),
            "winner": WINNER_NAMES[np.asarray(winner, dtype=np.int64)],
        }
    )


def typed(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The columns in their COLUMN_TYPES."""
    return {name: values.astype(COLUMN_TYPES[name], copy=False) for name, values in columns.items()}


def in_battle_order(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The rows sorted by battle (one vote per battle), the order every read returns: a run
    that patches kept columns then fits the same rows in the same order as a full read, to
    the last bit."""
    battle = columns["battle_id"]
    if len(battle) < 2 or bool((battle[1:] > battle[:-1]).all()):
        return columns
    order = np.argsort(battle, kind="stable")
    return {name: values[order] for name, values in columns.items()}


def _columns_from_rows(selection: Selection) -> dict[str, np.ndarray]:
    """The columns from the ORM's rows: for databases without the fast path (few votes)."""
    votes = counted_votes(last_vote_id=selection.last_vote_id)
    if selection.after is not None:
        votes = votes.filter(Q(id__gt=selection.after) | Q(battle_id__in=selection.battles))
    fields = ["id", "battle_id", "model_a_id", "model_b_id", "winner", "battle__turn", "battle__prompt_chars"]
    fields += ["battle__language", "battle__style", "judge", "created_at"]
    fields += [f"battle__style__{column}" for column in style_control.STYLE_COLUMNS]
    rows = list(votes.order_by("battle_id").values_list(*fields))
    values = dict(zip(fields, (list(column) for column in zip(*rows, strict=True)), strict=True)) if rows else {}

    def integers(field: str) -> np.ndarray:
        return np.array([0 if v is None else v for v in values.get(field, [])], dtype=np.int64)

    codes = {language: k + 1 for k, language in enumerate(selection.languages)}
    stamps = values.get("created_at", [])
    columns = {
        "id": integers("id"),
        "battle_id": integers("battle_id"),
        "model_a": integers("model_a_id"),
        "model_b": integers("model_b_id"),
        "winner": np.array([WINNER_CODES[w] for w in values.get("winner", [])], dtype=np.int64),
        "turn": integers("battle__turn"),
        "prompt_chars": integers("battle__prompt_chars"),
        "language": np.array([codes.get(x, 0) for x in values.get("battle__language", [])], dtype=np.int64),
        "has_style": np.array([x is not None for x in values.get("battle__style", [])], dtype=np.int64),
        "judge_key": pd.factorize(pd.Series(values.get("judge", []), dtype=object))[0].astype(np.int64),
        "day": np.array([(stamp - EPOCH).days for stamp in stamps], dtype=np.int64),
    }
    for column in style_control.STYLE_COLUMNS:
        columns[column] = integers(f"battle__style__{column}")
    return columns

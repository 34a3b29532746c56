"""From the counted votes' columns to what each category fits: pair counts, or per-vote rows
for style control. In memory, with numpy: every category is counted from the one read."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property

import numpy as np
import pandas as pd
from django.db.models import QuerySet

from battles.models import Vote
from ratings_engine import style_control
from ratings_engine.counts import DENSE_COUNT_LIMIT

from .categories import Category
from .votes import WINNER_NAMES, VoteColumns

# The per-voter cap's first, coarse count folds (voter, day) keys into this many buckets.
CAP_BUCKET_BITS = 22
CAP_BUCKETS = 1 << CAP_BUCKET_BITS


class Counter:
    """Counts categories of one set of columns; what every category shares is computed once."""

    def __init__(self, columns: VoteColumns):
        self.columns = columns

    @cached_property
    def models(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(model ids in order, code of model_a, code of model_b). Model ids are small
        integers, so a lookup table replaces a sort of millions of values."""
        a, b = self.columns["model_a"], self.columns["model_b"]
        present = np.zeros(int(max(a.max(initial=0), b.max(initial=0))) + 1, dtype=bool)
        present[a] = True
        present[b] = True
        code = np.cumsum(present) - 1
        return np.flatnonzero(present), code[a], code[b]

    @cached_property
    def cells(self) -> np.ndarray:
        """(model A, model B, outcome) of each vote as one number."""
        ids, a, b = self.models
        return (a * len(ids) + b) * 4 + self.columns["winner"]

    def pair_counts(self, mask: np.ndarray) -> pd.DataFrame:
        """Votes under the mask per (model_a, model_b, winner): the engine's input."""
        ids = self.models[0]
        m = len(ids)
        key = self.cells[mask]
        if m * m * 4 <= DENSE_COUNT_LIMIT:
            n = np.bincount(key, minlength=m * m * 4)
            key = np.flatnonzero(n)
            n = n[key]
        else:
            key, n = np.unique(key, return_counts=True)
        names = ids.astype(str).astype(object)
        return pd.DataFrame(
            {
                "model_a": names[key // (4 * m)],
                "model_b": names[(key // 4) % m],
                "winner": WINNER_NAMES[key % 4],
                "n": n.astype(np.int64),
            }
        )

    def style_votes(self, mask: np.ndarray) -> style_control.StyleVotes:
        """The style-controlled fit's votes (those under the mask), as coded arrays."""
        ids, a, b = self.models
        return style_control.StyleVotes(
            models=[str(i) for i in ids],
            a=a[mask],
            b=b[mask],
            winner=self.columns["winner"][mask],
            style={column: self.columns[column][mask] for column in style_control.STYLE_COLUMNS},
        )


def category_data(
    chosen: list[Category], columns: VoteColumns, votes: QuerySet, *, duplicates: list[int] | None = None
) -> Iterator[tuple[Category, object, pd.DataFrame]]:
    """(category, data to fit, its pair counts) for each category with votes.

    `duplicates`: votes to leave out of every category (the high-frequency prompts' votes over
    the limit, categories.over_prompt_limit). They are few, so they are matched by id. The
    per-voter cap ranks a voter's votes of the day before that, so a vote is never taken out
    twice. `votes`: the counted votes the columns hold, for the rules that query them."""
    counter = Counter(columns)
    kept = np.ones(len(columns), dtype=bool)
    if duplicates:
        kept &= ~np.isin(columns["id"], duplicates)
    for category in chosen:
        mask = kept.copy()
        if category.condition is not None:
            mask &= category.condition(columns)
        if category.daily_cap:
            mask &= ~over_daily_cap_mask(columns, cap=category.daily_cap)
        if category.excess is not None:
            mask &= ~np.isin(columns["id"], category.excess(votes))
        counts = counter.pair_counts(mask)
        data = counter.style_votes(mask) if category.style_control else counts
        if not counts.empty and counts["n"].sum() > 0:
            yield category, data, counts


def over_daily_cap_mask(columns: VoteColumns, *, cap: int) -> np.ndarray:
    """The votes beyond the first `cap` of each voter and UTC day, in id order, as a mask over
    the columns: a few heavy voters cannot outweigh everyone else.

    The columns' judge_key may join two voters whose hashes collide (PostgreSQL), so groups
    over the cap by key are only candidates: their votes' voters are read by id and ranked
    exactly."""
    key = columns["judge_key"] * (1 << 40) + (columns["day"] - columns["day"].min(initial=0))
    # First a dense count of the keys folded into CAP_BUCKETS buckets: folding only merges
    # groups, so a group over the cap is in a bucket over it, and the few votes of such buckets
    # are grouped exactly next (a hash table over millions of keys would cost far more).
    # Fibonacci hashing: the top bits of key times 2^64 / golden ratio spread any keys evenly.
    spread = key.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    bucket = (spread >> np.uint64(64 - CAP_BUCKET_BITS)).astype(np.int64)
    crowded = np.flatnonzero(np.bincount(bucket, minlength=CAP_BUCKETS)[bucket] > cap)
    group = pd.factorize(key[crowded])[0]
    candidates = crowded[np.bincount(group)[group] > cap]
    over = np.zeros(len(key), dtype=bool)
    if not len(candidates):
        return over
    ids = columns["id"][candidates]
    judges = dict(Vote.objects.filter(id__in=ids.tolist()).values_list("id", "judge").iterator(5000))
    frame = pd.DataFrame(
        {"row": candidates, "id": ids, "judge": [judges[i] for i in ids.tolist()], "day": columns["day"][candidates]}
    ).sort_values("id", kind="stable")
    rank = frame.groupby(["judge", "day"], sort=False).cumcount()
    over[frame["row"].to_numpy()[rank.to_numpy() >= cap]] = True
    return over


def pair_outcomes(counts: pd.DataFrame) -> list[list[int]]:
    """[low id, high id, low's wins, high's wins, ties] per compared pair, for the plots."""
    a = counts["model_a"].astype(int).to_numpy()
    b = counts["model_b"].astype(int).to_numpy()
    n = counts["n"].to_numpy(dtype=np.int64)
    winner = counts["winner"].to_numpy()
    low, high = np.minimum(a, b), np.maximum(a, b)
    low_won = ((winner == "model_a") & (a == low)) | ((winner == "model_b") & (b == low))
    high_won = ((winner == "model_a") & (a == high)) | ((winner == "model_b") & (b == high))
    frame = pd.DataFrame(
        {
            "low": low,
            "high": high,
            "low_wins": n * low_won,
            "high_wins": n * high_won,
            "ties": n * ~(low_won | high_won),
        }
    )
    summed = frame.groupby(["low", "high"], sort=True).sum().reset_index()
    return summed.to_numpy(dtype=np.int64).tolist()

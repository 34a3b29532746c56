"""The leaderboard's categories: which counted votes each one rates, and the down-sampling rules.

A category is the same fit on part of the counted votes. Which part is said here once, as a
condition over the votes' columns (leaderboard/votes.py reads them, whatever the database),
so a category never needs SQL of its own and a change of categories never invalidates the
columns a run keeps for the next (leaderboard/kept_columns.py).

The page views import this module for the categories' labels: it imports neither numpy nor
pandas at module level, so a page view never loads them.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import Count, QuerySet

if TYPE_CHECKING:
    import numpy as np

    from .votes import VoteColumns


@dataclass(frozen=True)
class Category:
    """One leaderboard, chosen from the counted votes in one of three ways.

    `condition`: which votes, as a function of their columns returning a boolean mask (None:
    every vote). `daily_cap`: the votes less those beyond the first `daily_cap` of each voter
    and UTC day (leaderboard/counting.py). `excess`: a function of the counted votes giving
    the ids of the (few) votes to take out. `style_control`: fitted per vote with the
    answers' style features, over the battles that have them (its condition)."""

    name: str
    label: str
    condition: Callable[[VoteColumns], np.ndarray] | None = None
    excess: Callable[[QuerySet], list[int]] | None = None
    style_control: bool = False
    daily_cap: int = 0


def multi_turn(votes: VoteColumns) -> np.ndarray:
    return votes["turn"] > 1


def long_prompt(votes: VoteColumns, *, chars: int) -> np.ndarray:
    return votes["prompt_chars"] >= chars


def in_language(votes: VoteColumns, *, language: str) -> np.ndarray:
    return votes.language_is(language)


def with_style(votes: VoteColumns) -> np.ndarray:
    return votes["has_style"] != 0


def categories(*, dedup: bool | None = None) -> list[Category]:
    """The published categories, from the settings."""
    found = [
        Category("overall", "Overall"),
        Category("multi_turn", "Multi-turn", multi_turn),
        Category("long_prompt", "Long prompts", partial(long_prompt, chars=settings.ARENA_LONG_PROMPT_CHARS)),
    ]
    for language in settings.ARENA_LANGUAGE_CATEGORIES:
        found.append(Category(f"lang_{language.lower()}", language, partial(in_language, language=language)))
    cap = settings.ARENA_JUDGE_DAILY_CAP
    if cap > 0:
        found.append(Category("per_voter_cap", f"At most {cap} votes per voter a day", daily_cap=cap))
    if settings.ARENA_STYLE_CONTROL:
        found.append(Category("style_control", "Style control", with_style, style_control=True))
    # When every category is down-sampled already, the separate category would equal the
    # overall one: it is added only on an explicit request.
    if settings.ARENA_DEDUP_PROMPTS and not settings.ARENA_DEDUP_EVERY_CATEGORY if dedup is None else dedup:
        found.append(
            Category(
                "deduplicated",
                "Duplicate prompts down-sampled",
                excess=partial(over_prompt_limit, percentile=settings.ARENA_DEDUP_PERCENTILE),
            )
        )
    return found


def category_labels() -> dict[str, str]:
    return {category.name: category.label for category in categories(dedup=True)}


def duplicate_prompts(votes: QuerySet) -> list[int] | None:
    """The votes left out of every category, when duplicate prompts are down-sampled in all."""
    if not settings.ARENA_DEDUP_EVERY_CATEGORY:
        return None
    return over_prompt_limit(votes, percentile=settings.ARENA_DEDUP_PERCENTILE)


def over_prompt_limit(votes: QuerySet, *, percentile: float) -> list[int]:
    """High-frequency duplicate prompts down-sampled, as the arena does: a prompt asked more
    often than the `percentile` of prompt counts keeps only that many of its votes, and the
    ids of the rest are returned. Which are kept follows the order of the question ids, which
    are random, so no period of time is favoured. Votes without prompt text are never returned."""
    return flooded_prompts(votes, percentile=percentile)[1]


def flooded_prompts(votes: QuerySet, *, percentile: float) -> tuple[list[str], list[int]]:
    """(the hashes of the prompts over the limit, the ids of their votes not kept): the rule of
    over_prompt_limit, with the flooded prompts, which a release marks too.

    Three plain queries rather than one with a window over a subquery: the planner can get
    that one badly wrong on tables it has no statistics for yet (minutes instead of
    milliseconds), while these cannot go wrong. The flooded prompts are few by definition."""
    import numpy as np  # here, not at the top: the page views import this module for the labels

    per_prompt = votes.exclude(battle__prompt_hash="").values("battle__prompt_hash").annotate(n=Count("id")).order_by()
    counts = np.fromiter(per_prompt.values_list("n", flat=True), dtype=np.int64)
    limit = max(1, int(np.percentile(counts, percentile))) if counts.size else 0
    if not (counts > limit).any():
        return [], []
    flooded = list(per_prompt.filter(n__gt=limit).values_list("battle__prompt_hash", flat=True))
    rows = (
        votes.filter(battle__prompt_hash__in=flooded)
        .order_by("battle__prompt_hash", "battle__question_id")
        .values_list("id", "battle__prompt_hash")
    )
    dropped = [
        vote_id
        for _, group in itertools.groupby(rows.iterator(), key=operator.itemgetter(1))
        for vote_id, _ in itertools.islice(group, limit, None)
    ]
    return flooded, dropped

"""High-frequency duplicate prompts down-sampled in every category (ARENA_DEDUP_EVERY_CATEGORY)."""

from datetime import timedelta

import pytest

from battles.models import Winner
from leaderboard import services

from ..conftest import make_model
from .test_categories import DAY, add_vote, votes_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def flooded(settings, provider_a):
    """A prompt asked twelve times, six asked twice, one once; the median count (2) is the limit."""
    settings.ARENA_DEDUP_PERCENTILE = 50
    a, b, c = (make_model(provider_a, name=name) for name in "abc")
    answers = ("An answer with **bold**.", "Another answer.")
    minute = iter(range(100))

    def cast(x, y, winner, prompt):
        add_vote(x, y, winner, prompt=prompt, answers=answers, at=DAY + timedelta(minutes=next(minute)))

    for i in range(12):
        cast(a, b, Winner.MODEL_A, "What is  the answer?" if i % 2 else "what is the answer?")
    for i in range(6):
        cast(b, c, Winner.MODEL_A, f"unique {i}")
        cast(a, c, Winner.MODEL_B, f"unique {i}")
    cast(a, c, Winner.TIE, "")
    return a, b, c


def test_every_category_is_down_sampled(settings, flooded):
    settings.ARENA_DEDUP_EVERY_CATEGORY = True
    run = services.recompute(bootstrap_rounds=0)
    # The flooded prompt keeps 2 of its 12 votes everywhere, the style-controlled fit included.
    assert votes_in(run, "overall") == {"a": 2 + 6 + 1, "b": 2 + 6, "c": 13}
    assert votes_in(run, "style_control") == {"a": 2 + 6 + 1, "b": 2 + 6, "c": 13}
    assert "deduplicated" not in set(run.ratings.values_list("category", flat=True))
    assert run.parameters["dedup_every_category"] is True and run.vote_count == 15


def test_the_per_voter_cap_does_not_take_out_a_duplicate_twice(settings, flooded):
    settings.ARENA_DEDUP_EVERY_CATEGORY = True
    settings.ARENA_JUDGE_DAILY_CAP = 5
    run = services.recompute(bootstrap_rounds=0)
    # One voter, one day: the first five votes by id are kept by the cap, and three of them
    # are duplicates down-sampled away, so two votes (a against b) are left.
    assert votes_in(run, "per_voter_cap") == {"a": 2, "b": 2}


def test_off_the_counts_are_whole(settings, flooded):
    settings.ARENA_DEDUP_EVERY_CATEGORY = False
    run = services.recompute(bootstrap_rounds=0)
    assert votes_in(run, "overall") == {"a": 12 + 6 + 1, "b": 12 + 6, "c": 13}
    assert run.parameters["dedup_every_category"] is False

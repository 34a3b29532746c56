"""A category, and a model in it, is shown as rated only from a minimum of votes
(ARENA_LEADERBOARD_MIN_CATEGORY_VOTES, ARENA_LEADERBOARD_MIN_MODEL_VOTES); below it the page
says how many more are needed, and the header gives the category's own count of votes."""

from __future__ import annotations

import pytest

from leaderboard.models import ModelRating
from providers.models import ArenaModel

from ..conftest import make_model
from ..support.runs import publish_ratings

S = ArenaModel.Status


@pytest.fixture(autouse=True)
def minimums(settings):
    settings.ARENA_LEADERBOARD_MIN_MODEL_VOTES = 300
    settings.ARENA_LEADERBOARD_MIN_CATEGORY_VOTES = 1000


@pytest.fixture
def run(provider_a):
    strong = make_model(provider_a, S.LISTED, name="strong-model", is_demo=True)
    solid = make_model(provider_a, S.LISTED, name="solid-model", is_demo=True)
    newcomer = make_model(provider_a, S.LISTED, name="newcomer-model", is_demo=True)
    run = publish_ratings({strong: (1300.0, 1500), solid: (1250.0, 1400), newcomer: (1400.0, 120)})
    run.vote_count = 1510
    run.save(update_fields=["vote_count"])
    # Multi-turn: a category with a single vote.
    ModelRating.objects.bulk_create(
        ModelRating(
            run=run,
            category="multi_turn",
            arena_model=model,
            model_status=model.status,
            rating=1095.0,
            ci_lower=1095.0,
            ci_upper=1095.0,
            sandwich_lower=1095.0,
            sandwich_upper=1095.0,
            rank=1,
            votes=1,
        )
        for model in (strong, solid)
    )
    return run


def test_a_model_under_the_minimum_is_not_shown_as_rated(client, run):
    page = client.get("/leaderboard/")
    rated = [row["model"] for row in page.context["rows"]]
    assert rated == ["strong-model", "solid-model"]  # the newcomer's 1400 is not on the board
    assert [row["rank"] for row in page.context["rows"]] == [1, 2]
    html = page.content.decode()
    assert "Not rated yet" in html and "newcomer-model" in html
    assert "120 votes, 180 more needed" in html
    assert "from 1510 votes in this category" in html


def test_a_category_under_the_minimum_is_not_shown_as_rated(client, run):
    page = client.get("/leaderboard/?category=multi_turn")
    assert page.context["rows"] == [] and page.context["unrated"] == []
    html = page.content.decode()
    assert "1095" not in html
    assert "this category has 1 counted vote and is shown from 1000, so 999 more are needed" in html
    assert "from 1 vote in this category" in html  # the category's own count, not the run's 1510


def test_the_plots_show_rated_models_only(client, run):
    page = client.get("/leaderboard/plots/")
    assert [row["model"] for row in page.context["rows"]] == ["strong-model", "solid-model"]

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


def test_the_api_rates_the_models_the_page_rates_and_lists_the_others_without_a_rating(client, run):
    data = client.get("/api/v1/leaderboard/").json()
    page = client.get("/leaderboard/").context
    assert [(row["model"], row["rank"]) for row in data["results"]] == [
        (row["model"], row["rank"]) for row in page["rows"]
    ]
    assert [(row["model"], row["rank"]) for row in data["results"]] == [("strong-model", 1), ("solid-model", 2)]
    assert data["unrated"] == [
        {
            "model": "newcomer-model",
            "votes": 120,
            "votes_needed": 180,
            "state": "listed",
            "provider": "Provider A",
            "licence": "Apache-2.0",
        }
    ]
    assert (data["category_votes"], data["category_votes_needed"]) == (1510, 0)
    assert (data["min_category_votes"], data["min_model_votes"]) == (1000, 300)


def test_the_api_rates_nothing_in_a_category_under_the_minimum(client, run):
    data = client.get("/api/v1/leaderboard/", {"category": "multi_turn"}).json()
    assert data["results"] == [] and data["unrated"] == []
    assert (data["category_votes"], data["category_votes_needed"]) == (1, 999)


def test_the_csv_holds_the_rated_models_only(client, run):
    csv = client.get("/api/v1/leaderboard/", {"format": "csv"}).content.decode()
    assert "strong-model" in csv and "solid-model" in csv and "newcomer-model" not in csv
    assert ",1400.0," not in csv  # the newcomer's rating
    header, *rows = csv.strip().splitlines()
    assert header.startswith("rank,model,rating") and len(rows) == 2
    empty = client.get("/api/v1/leaderboard/", {"format": "csv", "category": "multi_turn"}).content.decode()
    assert empty.strip() == header


def test_the_minimums_are_read_per_request_not_from_a_cached_answer(client, run, settings):
    assert len(client.get("/api/v1/leaderboard/").json()["results"]) == 2
    settings.ARENA_LEADERBOARD_MIN_MODEL_VOTES = 100
    assert len(client.get("/api/v1/leaderboard/").json()["results"]) == 3


def test_the_schema_says_how_the_api_applies_the_minimums(client):
    operation = client.get("/api/schema/", {"format": "json"}).json()["paths"]["/api/v1/leaderboard/"]["get"]
    assert "ARENA_LEADERBOARD_MIN_MODEL_VOTES" in operation["description"]
    assert "unrated" in operation["description"] and "rated models only" in operation["description"]

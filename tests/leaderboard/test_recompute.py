"""From stored votes to a published run, and what the public may see of it."""

import json
from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError

from battles.models import Battle, ExclusionReason, Vote, Winner
from leaderboard import services
from leaderboard.models import RatingRun
from providers.models import ArenaModel

from ..conftest import make_model

pytestmark = pytest.mark.django_db
S = ArenaModel.Status


def vote(a, b, winner, *, n=1, anony=True, excluded="", turn=1, language="English", prompt_chars=10):
    for _ in range(n):
        battle = Battle.objects.create(
            question_id=f"q{Battle.objects.count()}-{a.pk}-{b.pk}",
            model_a=a,
            model_b=b,
            anony=anony,
            turn=turn,
            language=language,
            prompt_chars=prompt_chars,
        )
        Vote.objects.create(
            battle=battle, model_a=a, model_b=b, anony=anony, winner=winner, judge="j", excluded_reason=excluded
        )


@pytest.fixture
def arena(provider_a, provider_b):
    strong = make_model(provider_a, S.LISTED, name="strong")
    middle = make_model(provider_b, S.LISTED, name="middle", licence="MIT")
    weak = make_model(provider_a, S.LISTED, name="weak")
    secret = make_model(provider_b, S.INITIAL_RATING, name="secret-model")
    vote(strong, middle, Winner.MODEL_A, n=30)
    vote(strong, middle, Winner.MODEL_B, n=10)
    vote(middle, weak, Winner.MODEL_A, n=30)
    vote(middle, weak, Winner.TIE, n=10)
    vote(weak, middle, Winner.MODEL_A, n=10)
    vote(strong, weak, Winner.MODEL_A, n=20)
    vote(secret, weak, Winner.MODEL_A, n=15)
    vote(secret, strong, Winner.TIE_BOTHBAD, n=15)
    return {"strong": strong, "middle": middle, "weak": weak, "secret": secret}


def export(*args) -> str:
    out = StringIO()
    call_command("export_leaderboard", *args, stdout=out)
    return out.getvalue()


def test_a_run_rates_every_model_from_counted_votes_only(arena):
    # Votes that must not count: excluded, and side-by-side (not anonymous).
    vote(arena["weak"], arena["strong"], Winner.MODEL_A, n=50, excluded=ExclusionReason.RATE_LIMITED)
    vote(arena["weak"], arena["strong"], Winner.MODEL_A, n=50, anony=False)
    run = services.recompute(bootstrap_rounds=50, seed=1)
    assert run.state == RatingRun.State.PUBLISHED
    assert run.vote_count == 140
    overall = {r.arena_model.name: r for r in run.ratings.filter(category="overall").select_related("arena_model")}
    assert overall["strong"].rating > overall["middle"].rating > overall["weak"].rating
    assert all(r.ci_lower <= r.rating <= r.ci_upper for r in overall.values())
    assert overall["strong"].votes == 40 + 20 + 15
    arena["strong"].refresh_from_db()
    assert arena["strong"].votes_counted == 75, "the listing rule reads the counted votes"


def test_the_same_votes_and_seed_give_the_same_run(arena):
    first = services.recompute(bootstrap_rounds=30, seed=7)
    second = services.recompute(bootstrap_rounds=30, seed=7)
    values = lambda run: list(run.ratings.order_by("category", "arena_model").values_list("rating", "ci_lower"))  # noqa: E731
    assert values(first) == values(second)


def test_categories_are_the_same_computation_on_subsets(arena):
    vote(arena["strong"], arena["weak"], Winner.MODEL_B, n=12, turn=3, prompt_chars=900)
    vote(arena["strong"], arena["weak"], Winner.MODEL_A, n=3, turn=3, prompt_chars=900)
    run = services.recompute(bootstrap_rounds=10)
    multi = {r.arena_model.name: r for r in run.ratings.filter(category="multi_turn").select_related("arena_model")}
    assert set(multi) == {"strong", "weak"}
    assert multi["weak"].rating > multi["strong"].rating
    assert set(run.ratings.values_list("category", flat=True)) >= {
        "overall",
        "multi_turn",
        "long_prompt",
        "lang_english",
    }


def test_a_failed_run_leaves_the_previous_leaderboard(arena, monkeypatch, client):
    published = services.recompute(bootstrap_rounds=10)
    before = client.get("/api/v1/leaderboard/").json()

    calls = {"n": 0}
    real = services.bradley_terry.compute_ratings

    def dies_on_second_category(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise MemoryError("killed halfway")
        return real(*args, **kwargs)

    monkeypatch.setattr(services.bradley_terry, "compute_ratings", dies_on_second_category)
    vote(arena["weak"], arena["strong"], Winner.MODEL_A, n=40)
    with pytest.raises(MemoryError):
        services.recompute(bootstrap_rounds=10)
    failed = RatingRun.objects.exclude(pk=published.pk).get()
    assert failed.state == RatingRun.State.FAILED and "killed halfway" in failed.error
    assert RatingRun.objects.latest_published() == published
    cache.clear()
    assert client.get("/api/v1/leaderboard/").json() == before


def test_a_run_that_never_finished_is_never_shown_and_is_marked_later(arena, settings):
    published = services.recompute(bootstrap_rounds=10)
    killed = RatingRun.objects.create(cutoff=published.cutoff)  # a worker died after creating it
    assert RatingRun.objects.latest_published() == published
    with time_machine.travel(killed.started_at + timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT * 2 + 1)):
        services.recompute(bootstrap_rounds=10)
    killed.refresh_from_db()
    assert killed.state == RatingRun.State.FAILED and "Interrupted" in killed.error


def test_models_in_initial_rating_are_rated_but_never_public(arena, client):
    services.recompute(bootstrap_rounds=10)
    public = json.loads(export("--format", "json"))
    assert [row["model"] for row in public] == ["strong", "middle", "weak"]
    assert [row["rank"] for row in public] == sorted(row["rank"] for row in public)
    assert {"model", "rating", "ci_lower", "ci_upper", "rank", "votes", "state"} <= set(public[0])
    api = client.get("/api/v1/leaderboard/").json()["results"]
    assert [row["model"] for row in api] == ["strong", "middle", "weak"]
    assert "secret-model" not in client.get("/leaderboard/").content.decode()
    everything = json.loads(export("--format", "json", "--all-models"))
    assert arena["secret"].codename in [row["model"] for row in everything]
    assert "secret-model" not in json.dumps(everything), "a model never listed keeps its codename"


def test_retired_models_show_on_request(arena, client):
    services.recompute(bootstrap_rounds=10)
    ArenaModel.objects.filter(pk=arena["weak"].pk).update(status=S.RETIRED)
    names = lambda rows: [row["model"] for row in rows]  # noqa: E731
    cache.clear()
    assert "weak" not in names(client.get("/api/v1/leaderboard/").json()["results"])
    assert "weak" in names(client.get("/api/v1/leaderboard/?include_retired=true").json()["results"])


def test_the_api_speaks_csv_and_refuses_unknown_categories(arena, client):
    assert client.get("/api/v1/leaderboard/").status_code == 404
    services.recompute(bootstrap_rounds=10)
    response = client.get("/api/v1/leaderboard/?format=csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    lines = response.content.decode().splitlines()
    assert lines[0].startswith("rank,model,rating") and lines[1].split(",")[1] == "strong"
    bad = client.get("/api/v1/leaderboard/?category=nope")
    assert bad.status_code == 400 and "known" in bad.json()["detail"]


def test_the_page_reads_the_stored_run_in_a_constant_number_of_queries(arena, client, django_assert_max_num_queries):
    services.recompute(bootstrap_rounds=10)
    with django_assert_max_num_queries(4):
        response = client.get("/leaderboard/")
    assert response.status_code == 200
    page = response.content.decode()
    assert page.index("strong") < page.index("middle") < page.index("weak")


def test_export_explains_missing_runs_and_categories(arena):
    with pytest.raises(CommandError, match="No published"):
        export()
    services.recompute(bootstrap_rounds=10)
    with pytest.raises(CommandError, match="known"):
        export("--category", "nope")
    csv_text = export("--format", "csv")
    assert csv_text.splitlines()[0].startswith("rank,model,rating")


def test_recompute_ratings_command_prints_a_summary(arena):
    out = StringIO()
    call_command("recompute_ratings", "--bootstrap", "20", "--seed", "3", stdout=out)
    assert "published" in out.getvalue() and "overall" in out.getvalue()
    assert RatingRun.objects.latest_published().parameters["bootstrap_rounds"] == 20


def test_a_provider_sees_its_own_private_rating_and_no_one_elses(arena, client_a, client_b, anon_client, staff_client):
    # provider_b owns "secret-model", still in initial rating.
    services.recompute(bootstrap_rounds=10)
    url = f"/api/v1/models/{arena['secret'].pk}/rating/"
    own = client_b.get(url)
    assert own.status_code == 200
    assert own.json()["status"] == "initial_rating"
    assert {r["category"] for r in own.json()["ratings"]} >= {"overall"}
    assert staff_client.get(url).status_code == 200
    assert client_a.get(url).status_code == 404
    assert anon_client.get(url).status_code == 401
    assert client_b.get("/api/v1/models/999999/rating/").status_code == 404


def test_without_bootstrap_the_sandwich_interval_is_stored(arena):
    run = services.recompute(bootstrap_rounds=0)
    for rating in run.ratings.all():
        assert (rating.ci_lower, rating.ci_upper) == (rating.sandwich_lower, rating.sandwich_upper)

"""The demo (`manage.py seed_demo`): a month of an arena that holds together, seeded once for
the module (it takes a few seconds) and read by each test."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction
from django.test import TestCase, override_settings

from arenasite import clock
from arenasite.management.commands import seed_demo
from battles import anomaly_detection
from battles.models import Battle, BattleStyle, SamplingShare, Vote
from leaderboard.models import ModelRating, RatingRun
from providers import lifecycle
from providers.models import ArenaModel, LifecycleEvent
from transparency import selectors as transparency
from transparency.models import ExpectedShareSnapshot

STRENGTH = {model.name: model.strength for model in seed_demo.MODELS}


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker):
    """The demo seeded once, in a transaction rolled back after the module's tests (each of
    which runs in a savepoint inside it). The final rating run, made on commit, runs here."""
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            with override_settings(ARENA_BOOTSTRAP_ROUNDS=20), TestCase.captureOnCommitCallbacks(execute=True):
                output = run("seed_demo")
            yield output
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


@pytest.fixture
def seeded(demo, db):
    return demo


def test_a_second_run_adds_nothing_and_every_state_is_shown(seeded):
    counts = (ArenaModel.objects.count(), LifecycleEvent.objects.count(), get_user_model().objects.count())
    battles = Battle.objects.count()
    assert "staff login" in run("seed_demo")
    assert (ArenaModel.objects.count(), LifecycleEvent.objects.count(), get_user_model().objects.count()) == counts
    assert Battle.objects.count() == battles
    assert set(ArenaModel.objects.values_list("status", flat=True)) == set(ArenaModel.Status.values)


def test_the_demo_logins_sign_in_at_once_through_the_login_form(seeded, client):
    for email, password in (
        (seed_demo.STAFF_EMAIL, seed_demo.STAFF_PASSWORD),
        (seed_demo.PROVIDER_EMAIL, seed_demo.PROVIDER_PASSWORD),
    ):
        response = client.post("/accounts/login/", {"login": email, "password": password})
        assert response.status_code == 302 and response["Location"] != "/accounts/confirm-email/", email
        assert client.get("/").context["user"].email == email
        client.logout()


def test_every_lifecycle_step_is_in_order_and_by_the_right_actor(seeded):
    now = clock.now()
    for model in ArenaModel.objects.filter(is_demo=True).prefetch_related("events", "provider__memberships"):
        members = {m.user_id for m in model.provider.memberships.all()}
        events = list(model.events.order_by("created_at", "id"))
        assert model.created_at <= (events[0].created_at if events else now), model.name
        assert [e.created_at for e in events] == sorted(e.created_at for e in events)
        for event in events:
            assert now.replace(year=now.year - 1) < event.created_at <= now
            if event.action == lifecycle.Entry.IMPORT:
                assert event.actor is None
            elif event.action in lifecycle.PROVIDER_ACTIONS:
                assert event.actor_id in members, (model.name, event.action, event.actor)
            elif event.kind == LifecycleEvent.Kind.DONE and event.actor is None:
                # The scheduler carries out only what was decided before (a listing after its heads-up).
                assert model.events.filter(kind=LifecycleEvent.Kind.SCHEDULED, action=event.action).exists()
            else:
                assert event.actor.is_staff and event.actor_id not in members, (model.name, event.action)
        dates = [model.submitted_at, model.admitted_at, model.listed_at, model.retired_at]
        present = [d for d in dates if d is not None]
        if model.events.filter(action=lifecycle.Entry.IMPORT).exists():
            present = [model.listed_at, *[d for d in (model.retired_at,) if d]]
        assert present == sorted(present), model.name
        assert model.status_changed_at == (events[-1].effective_at if events else model.created_at)


def test_the_history_spans_the_month_and_every_vote_belongs_to_its_battle(seeded):
    battles = Battle.objects.filter(question_id__startswith="demo-")
    assert battles.count() > 5000
    assert BattleStyle.objects.count() == battles.count()
    assert 0.85 < Vote.objects.count() / battles.count() < 1
    first = battles.order_by("created_at").first().created_at
    assert (clock.now() - first).days >= seed_demo.DAYS - 1
    for vote in Vote.objects.select_related("battle")[:500]:
        assert vote.created_at > vote.battle.created_at and vote.judge == vote.battle.judge
    # No battle has a model before it entered the arena or after it left it.
    for model in ArenaModel.objects.filter(is_demo=True):
        mine = Battle.objects.filter(model_a=model) | Battle.objects.filter(model_b=model)
        if model.admitted_at is None and model.listed_at is None:
            assert not mine.exists(), model.name
            continue
        entered = model.admitted_at or model.listed_at
        left = model.retired_at or model.withdrawn_at or clock.now()
        assert not mine.filter(created_at__lt=entered).exists(), model.name
        assert not mine.filter(created_at__gt=left).exists(), model.name


def test_the_leaderboard_follows_the_hidden_strengths(seeded, client, settings):
    settings.ARENA_LEADERBOARD_MIN_MODEL_VOTES, settings.ARENA_LEADERBOARD_MIN_CATEGORY_VOTES = 300, 1000
    board = client.get("/api/v1/leaderboard/").json()
    listed = ArenaModel.objects.filter(status=ArenaModel.Status.LISTED).values_list("name", flat=True)
    assert {row["model"] for row in board["results"]} == set(listed) and board["unrated"] == []
    assert [row["model"] for row in board["results"]] == sorted(listed, key=lambda name: -STRENGTH[name])
    # Every model that was rated, hidden ones too: the fit orders them as the strengths do.
    run = RatingRun.objects.latest_published()
    rated = list(
        ModelRating.objects.filter(run=run, category="overall")
        .order_by("-rating")
        .values_list("arena_model__name", flat=True)
    )
    assert rated == sorted(rated, key=lambda name: -STRENGTH[name])
    # Every category has the votes to be shown.
    for category in board["categories"]:
        assert client.get("/api/v1/leaderboard/", {"category": category}).json()["category_votes_needed"] == 0, category


def test_the_rating_history_has_runs_through_the_month(seeded):
    runs = RatingRun.objects.published().order_by("cutoff")
    assert runs.count() == len(seed_demo.RUN_DAYS) + 1
    assert (runs.last().cutoff - runs.first().cutoff).days >= 19


def test_the_anomalous_voter_test_flags_few_of_the_honest_demo_voters(seeded):
    report = anomaly_detection.detect_anomalous_voters()
    voters = Vote.objects.values("judge").distinct().count()
    assert report.tested > 150
    assert len(report.flagged) / voters < 0.01
    assert len(report.flagged) / report.tested < 0.02


def test_the_transparency_page_has_a_month_of_served_and_predicted_shares(seeded, client):
    today = clock.now().date()
    assert SamplingShare.objects.values("day").distinct().count() >= seed_demo.DAYS
    assert ExpectedShareSnapshot.objects.values("day").distinct().count() >= seed_demo.DAYS
    summaries = transparency.provider_summaries(today)
    assert {s.label for s in summaries} >= {"Open Lab", "Acme AI"}
    for summary in summaries:
        days = [d for d in summary.days if d.day_total]
        assert len(days) >= seed_demo.DAYS - 2, summary.label
        # The sampler drew them: served follows predicted over the month.
        assert abs(summary.served_total - summary.expected_total) < 0.05, summary.label
    assert client.get("/transparency/").status_code == 200

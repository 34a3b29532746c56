"""Daily endpoint budgets: every answer is counted against its model's day, and a model whose
budget runs out leaves the pool until the day ends, with the reason shown to staff."""

from __future__ import annotations

import time
from datetime import timedelta
from unittest import mock

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from arenasite import clock
from battles import budgets
from battles.arena_pool import sampleable_models
from battles.models import EndpointBudget, EndpointUsage
from providers.models import ArenaModel

from ..conftest import make_model

S = ArenaModel.Status
FAST = {"ARENA_DEMO_CHUNK_DELAY": 0.0, "ARENA_ANSWER_SAVE_INTERVAL": 0.0, "ARENA_MODEL_RETRIES": 0}


@pytest.fixture
def pool(provider_a):
    return [make_model(provider_a, S.LISTED, name=f"budget-{n}", is_demo=True) for n in ("a", "b", "c")]


@pytest.mark.django_db
def test_calls_are_counted_per_model_and_day_without_a_budget(pool):
    budgets.record_call(pool[0].pk, 120)
    budgets.record_call(pool[0].pk, 30)
    usage = EndpointUsage.objects.get(model=pool[0])
    assert (usage.requests, usage.characters, usage.exhausted_at) == (2, 150, None)
    assert pool[0] in sampleable_models()


@pytest.mark.django_db
def test_a_model_past_its_daily_calls_leaves_the_pool_until_the_next_day(pool):
    EndpointBudget.objects.create(model=pool[0], daily_requests=2)
    budgets.record_call(pool[0].pk, 10)
    assert pool[0] in sampleable_models()
    budgets.record_call(pool[0].pk, 10)
    assert EndpointUsage.objects.get(model=pool[0]).exhausted_at is not None
    assert pool[0] not in sampleable_models() and pool[1] in sampleable_models()
    with mock.patch("arenasite.clock.now", return_value=clock.now() + timedelta(days=1)):
        assert pool[0] in sampleable_models()


@pytest.mark.django_db
def test_a_character_budget_counts_what_was_sent_and_received(pool):
    EndpointBudget.objects.create(model=pool[1], daily_characters=1000)
    budgets.record_call(pool[1].pk, 999)
    assert pool[1] in sampleable_models()
    budgets.record_call(pool[1].pk, 1)
    assert pool[1] not in sampleable_models()


@pytest.mark.django_db(transaction=True)
@override_settings(**FAST)
def test_answers_use_up_the_budget_and_the_arena_closes_when_too_few_models_remain(provider_a):
    a, b = (make_model(provider_a, S.LISTED, name=f"only-{n}", is_demo=True) for n in ("a", "b"))
    for model in (a, b):
        EndpointBudget.objects.create(model=model, daily_requests=1)
    client = APIClient()
    battle_id = client.post("/api/v1/battles/", {"prompt": "Name three rivers."}, format="json").json()["id"]
    deadline = time.monotonic() + 15
    while client.get(f"/api/v1/battles/{battle_id}/").json()["status"] == "answering":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    usage = {u.model_id: u for u in EndpointUsage.objects.all()}
    assert usage[a.pk].requests == usage[b.pk].requests == 1
    assert usage[a.pk].characters > len("Name three rivers.")
    refused = client.post("/api/v1/battles/", {"prompt": "And three lakes?"}, format="json")
    assert refused.status_code == 503


@pytest.mark.django_db
def test_staff_see_in_admin_which_model_is_out_of_the_pool_and_why(pool, admin_client):
    budget = EndpointBudget.objects.create(model=pool[0], daily_requests=1)
    EndpointBudget.objects.create(model=pool[1], daily_requests=100)
    budgets.record_call(pool[0].pk, 50)
    page = admin_client.get("/admin/battles/endpointbudget/").content.decode()
    assert "out of the pool" in page and "in the pool" in page
    assert "1 / 50" in page
    change = admin_client.get(f"/admin/battles/endpointbudget/{budget.pk}/change/")
    assert change.status_code == 200 and "back tomorrow" in change.content.decode()

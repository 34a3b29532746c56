"""The proof of work before battles (ALTCHA): a session solves one before its first battle and
again every few battles; a missing, wrong, expired or reused solution is refused and stores
nothing; a JSON client solves it with the `altcha` library as the docs say."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from unittest import mock

import altcha
import pytest
from django.core.cache import cache
from django.test import Client, override_settings
from rest_framework.test import APIClient

from arenasite import clock
from battles.models import Battle
from providers.models import ArenaModel
from tests.support.processes import ROOT

from ..conftest import make_model

# The counters live in the shared cache, a database table unless CACHE_URL names a Redis.
pytestmark = pytest.mark.django_db
S = ArenaModel.Status
ON = {"ARENA_CHALLENGE": True, "ARENA_CHALLENGE_COST": 10, "ARENA_CHALLENGE_EVERY": 3, "ARENA_DEMO_CHUNK_DELAY": 0.0}


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()


@pytest.fixture
def pool(provider_a):
    return [make_model(provider_a, S.LISTED, name=f"pow-{n}", is_demo=True) for n in ("a", "b")]


def solved(client: APIClient) -> str:
    """What a JSON client does: fetch a challenge, solve it, encode the payload."""
    response = client.get("/api/v1/challenge/")
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    challenge = altcha.Challenge.from_dict(response.json())
    solution = altcha.solve_challenge(challenge)
    return altcha.Payload(challenge, solution).to_base64()


def start(client: APIClient, proof: str | None = None):
    body = {"prompt": "Name a prime."} | ({"altcha": proof} if proof else {})
    return client.post("/api/v1/battles/", body, format="json")


@pytest.mark.django_db(transaction=True)
@override_settings(**ON)
def test_a_new_session_must_solve_a_challenge_before_its_first_battle_and_nothing_is_stored_without(pool):
    client = APIClient()
    refused = start(client)
    assert refused.status_code == 403
    assert "GET /api/v1/challenge/" in refused.json()["detail"]
    assert Battle.objects.count() == 0
    assert start(client, solved(client)).status_code == 201


@pytest.mark.django_db(transaction=True)
@override_settings(**ON)
def test_one_solution_covers_a_few_battles_of_its_session_then_another_is_needed(pool):
    client = APIClient()
    assert start(client, solved(client)).status_code == 201
    assert [start(client).status_code for _ in range(3)] == [201, 201, 403]


@pytest.mark.django_db(transaction=True)
@override_settings(**ON)
def test_a_solution_is_accepted_once_so_fresh_cookies_each_pay_again(pool):
    proof = solved(APIClient())
    assert start(APIClient(), proof).status_code == 201
    again = start(APIClient(), proof)  # a script replaying it from a fresh cookie jar
    assert again.status_code == 403 and "used already" in again.json()["detail"]


@pytest.mark.django_db(transaction=True)
@override_settings(**ON)
def test_a_wrong_or_expired_solution_is_refused(pool):
    client = APIClient()
    challenge = altcha.Challenge.from_dict(client.get("/api/v1/challenge/").json())
    wrong = altcha.Payload(challenge, altcha.Solution(counter=1, derived_key="00" * 32)).to_base64()
    assert start(client, wrong).status_code == 403
    assert start(client, "not base64 at all").status_code == 403
    proof = solved(client)
    with mock.patch("time.time", return_value=clock.now().timestamp() + timedelta(hours=1).total_seconds()):
        expired = start(client, proof)
    assert expired.status_code == 403 and "expired" in expired.json()["detail"]
    assert Battle.objects.count() == 0


@pytest.mark.django_db
@override_settings(**ON)
def test_the_arena_page_carries_the_widget_served_by_the_site_and_refuses_a_post_without_its_answer(pool):
    client = Client()
    page = client.get("/arena/").content.decode()
    assert "<altcha-widget" in page and "/static/vendor/altcha/pbkdf2.js" in page
    refused = client.post("/arena/", {"prompt": "Hello"})
    assert refused.status_code == 403 and "proof-of-work check" in refused.content.decode()
    assert Battle.objects.count() == 0


@pytest.mark.django_db
@override_settings(ARENA_CHALLENGE=False)
def test_with_the_challenge_off_there_is_no_widget_and_no_check():
    assert "<altcha-widget" not in Client().get("/arena/").content.decode()


@pytest.mark.parametrize("debug, expected", [("0", "True"), ("1", "False")])
def test_the_challenge_is_on_by_default_in_production_settings(debug, expected):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ARENA_", "DJANGO_"))}
    env |= {"ENV_FILE": "", "DEBUG": debug, "SECRET_KEY": "x" * 60, "DJANGO_SETTINGS_MODULE": "arenasite.settings"}
    code = "import django; django.setup(); from django.conf import settings; print(settings.ARENA_CHALLENGE)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.stdout.strip() == expected, result.stderr

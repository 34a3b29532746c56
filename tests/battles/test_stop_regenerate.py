"""Stop and regenerate, end to end: real answering threads, demo models and a chat-completions
server on loopback, the JSON API and the page forms."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from battles import arena, limits
from battles.models import Battle, EndpointUsage, Vote
from providers.models import ArenaModel
from releases import building
from tests.support.openai_server import Mode, OpenAIServer, Script

from ..conftest import make_model
from ..factories import ProviderFactory

S = ArenaModel.Status
# Slow enough that a stop arrives while the answers are being written.
PACED = {
    "ARENA_DEMO_CHUNK_DELAY": 0.05,
    "ARENA_ANSWER_SAVE_INTERVAL": 0.2,
    "ARENA_MODEL_RETRIES": 0,
    "ARENA_MODEL_FIRST_TOKEN_TIMEOUT": 5.0,
    "ARENA_MODEL_CHUNK_TIMEOUT": 5.0,
}
FAST = {**PACED, "ARENA_DEMO_CHUNK_DELAY": 0.0, "ARENA_ANSWER_SAVE_INTERVAL": 0.0}
PROMPT = "Explain binary search to a new programmer, with an example."

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def provider():
    return ProviderFactory(name="Northwind Research", slug="northwind")


@pytest.fixture
def pool(provider):
    return [make_model(provider, S.LISTED, name=f"northwind-{n}", is_demo=True) for n in ("small", "large")]


@pytest.fixture
def voter():
    return APIClient()


def start(client, prompt=PROMPT) -> str:
    response = client.post("/api/v1/battles/", {"prompt": prompt}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def wait_over(client, battle_id, timeout=20.0) -> dict:
    deadline = time.monotonic() + timeout
    while (data := client.get(f"/api/v1/battles/{battle_id}/").json())["status"] == "answering":
        assert time.monotonic() < deadline, f"still answering: {data}"
        time.sleep(0.02)
    return data


def wait_for_text(battle_id: str, timeout=10.0) -> None:
    """Until both sides have checkpointed some text: the stop arrives mid-answer."""
    deadline = time.monotonic() + timeout
    while True:
        battle = Battle.objects.get(question_id=battle_id)
        if battle.conversation_a[-1]["content"] and battle.conversation_b[-1]["content"]:
            return
        assert time.monotonic() < deadline, "no text arrived"
        time.sleep(0.02)


def post(client, battle_id, action, data=None):
    return client.post(f"/api/v1/battles/{battle_id}/{action}/", data or {}, format="json")


# --- stop ------------------------------------------------------------------------------------------


@override_settings(**PACED)
def test_stop_ends_both_answers_keeps_the_text_and_the_battle_can_be_voted(voter, pool):
    battle_id = start(voter)
    wait_for_text(battle_id)
    response = post(voter, battle_id, "stop")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ready" and body["complete"] is True
    assert body["answer_a"] == body["answer_b"] == "stopped"
    kept = (body["conversation_a"][-1]["content"], body["conversation_b"][-1]["content"])
    assert all(kept)
    time.sleep(0.5)  # the demo backend stopped: nothing more is written after the stop
    battle = Battle.objects.get(question_id=battle_id)
    assert (battle.conversation_a[-1]["content"], battle.conversation_b[-1]["content"]) == kept
    assert EndpointUsage.objects.filter(requests=1).count() == 2  # each stopped call still cost its budget

    voted = post(voter, battle_id, "vote", {"winner": "model_a"})
    assert voted.status_code == 200 and voted.json()["model_a"].startswith("northwind-")
    assert Vote.objects.get().excluded_reason == "stopped"  # kept, not counted, not blamed on the model


@override_settings(**PACED)
def test_stop_closes_the_model_call_on_a_real_endpoint(voter, provider):
    with OpenAIServer() as server:
        for name in ("endless-a", "endless-b"):
            server.script(name, Script(mode=Mode.ENDLESS, chunk_delay=0.02))
            make_model(provider, S.LISTED, name=name, endpoint_base_url=server.base_url, endpoint_model_id=name)
        battle_id = start(voter)
        wait_for_text(battle_id)
        assert server.active_streams == 2
        body = post(voter, battle_id, "stop").json()
        assert body["status"] == "ready" and {body["answer_a"], body["answer_b"]} == {"stopped"}
        deadline = time.monotonic() + 5
        while server.active_streams and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.active_streams == 0  # the server is no longer read: both connections were closed
    # A stopped answer is the voter's doing: the endpoints stay healthy.
    assert not ArenaModel.objects.filter(endpoint_offline_since__isnull=False).exists()


@override_settings(**PACED)
def test_a_stop_closes_the_turn_even_when_no_piece_ever_arrives(voter, provider):
    with OpenAIServer() as server:
        for name in ("mute-a", "mute-b"):
            server.script(name, Script(mode=Mode.HANG_BEFORE_FIRST_BYTE))
            make_model(provider, S.LISTED, name=name, endpoint_base_url=server.base_url, endpoint_model_id=name)
        battle_id = start(voter)
        time.sleep(0.3)
        body = post(voter, battle_id, "stop").json()
        assert body["status"] == "ready" and body["answer_a"] == body["answer_b"] == "stopped"
        assert post(voter, battle_id, "vote", {"winner": "tie"}).status_code == 200


@override_settings(**FAST)
def test_stop_is_409_unless_answering_and_404_for_another_voter(voter, pool):
    battle_id = start(voter)
    wait_over(voter, battle_id)
    response = post(voter, battle_id, "stop")
    assert response.status_code == 409 and "nothing to stop" in response.json()["detail"]
    assert post(APIClient(), battle_id, "stop").status_code == 404
    assert post(voter, battle_id, "vote", {"winner": "tie"}).status_code == 200
    assert post(voter, battle_id, "stop").status_code == 409


@override_settings(**PACED)
def test_after_a_stop_a_further_turn_is_refused_but_regenerate_is_not(voter, pool):
    battle_id = start(voter)
    wait_for_text(battle_id)
    post(voter, battle_id, "stop")
    assert post(voter, battle_id, "turns", {"prompt": "And then?"}).status_code == 409
    body = post(voter, battle_id, "regenerate").json()
    assert body["status"] == "answering" and body["attempt"] == 2
    body = wait_over(voter, battle_id)
    assert body["answer_a"] == body["answer_b"] == "done"
    post(voter, battle_id, "vote", {"winner": "model_b"})
    assert Vote.objects.get().excluded_reason == ""  # the regenerated answers were complete


# --- regenerate ------------------------------------------------------------------------------------


@override_settings(**FAST)
def test_regenerate_keeps_the_discarded_answers_and_exports_only_the_voted_ones(voter, pool, tmp_path):
    battle_id = start(voter)
    first = wait_over(voter, battle_id)
    response = post(voter, battle_id, "regenerate")
    assert response.status_code == 200
    assert response.json()["attempt"] == 2 and response.json()["regenerated"] == 1
    second = wait_over(voter, battle_id)
    assert second["status"] == "ready" and len(second["conversation_a"]) == 2  # still one turn
    battle = Battle.objects.get(question_id=battle_id)
    [discarded] = battle.discarded
    assert discarded["turn"] == 1 and discarded["attempt"] == 1
    assert discarded["answer_a"] == first["conversation_a"][-1]["content"]
    assert discarded["answer_b"] == first["conversation_b"][-1]["content"]
    assert post(voter, battle_id, "vote", {"winner": "model_a"}).status_code == 200
    assert post(voter, battle_id, "regenerate").status_code == 409  # voted

    summary = building.write_export(
        Battle.objects.filter(pk=battle.pk), tmp_path, label=lambda a, b: ("model-a", "model-b")
    )
    assert summary["rows"] == 1
    [row] = [json.loads(line) for line in (tmp_path / "battles.jsonl").read_text().splitlines()]
    assert row["conversation_a"] == second["conversation_a"]
    assert row["conversation_b"] == second["conversation_b"]
    assert row["voted_attempt"] == [2]  # the second answers were the voted ones
    text = (tmp_path / "battles.jsonl").read_text()
    if discarded["answer_a"] not in second["conversation_a"][-1]["content"]:
        assert discarded["answer_a"] not in text


@override_settings(**FAST)
def test_regenerate_is_409_while_answering_and_404_for_another_voter(voter, pool):
    with override_settings(ARENA_DEMO_CHUNK_DELAY=0.05):
        battle_id = start(voter)
        assert post(voter, battle_id, "regenerate").status_code == 409
        assert post(APIClient(), battle_id, "regenerate").status_code == 404
        wait_over(voter, battle_id)


@override_settings(**FAST, ARENA_BATTLE_RATE_VOTER="2/m", ARENA_BATTLE_RATE_ADDRESS="", ARENA_BATTLE_RATE_NETWORK="")
def test_regenerate_counts_against_the_limits_and_the_budgets_like_a_turn(voter, pool, monkeypatch):
    # The limits count in fixed windows: the clock they read stays mid-minute, so the test
    # does not cross into a new window (and a fresh count) on its way.
    monkeypatch.setattr(limits, "time", SimpleNamespace(time=lambda: 1_800_000_030.0))
    battle_id = start(voter)
    wait_over(voter, battle_id)
    assert post(voter, battle_id, "regenerate").status_code == 200
    wait_over(voter, battle_id)
    assert sum(EndpointUsage.objects.values_list("requests", flat=True)) == 4  # two calls per answering
    refused = post(voter, battle_id, "regenerate")
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert Battle.objects.get(question_id=battle_id).attempt == 2  # nothing changed


@override_settings(**FAST, ARENA_BATTLE_RATE_VOTER="", ARENA_BATTLE_RATE_ADDRESS="", ARENA_BATTLE_RATE_NETWORK="")
def test_a_turn_is_regenerated_at_most_max_regenerations_times(voter, pool, monkeypatch):
    monkeypatch.setattr(arena, "MAX_REGENERATIONS", 1)
    battle_id = start(voter)
    wait_over(voter, battle_id)
    assert post(voter, battle_id, "regenerate").status_code == 200
    wait_over(voter, battle_id)
    assert post(voter, battle_id, "regenerate").status_code == 409
    # A new turn starts its own count, and its stream ids its own attempts.
    assert post(voter, battle_id, "turns", {"prompt": "And then?"}).json()["attempt"] == 1


# --- the page forms --------------------------------------------------------------------------------


@override_settings(**PACED)
def test_the_page_forms_stop_and_regenerate_and_redirect_back(pool):
    page = APIClient(enforce_csrf_checks=False)
    response = page.post("/arena/", {"prompt": PROMPT})
    assert response.status_code == 302
    battle_id = response["Location"].rstrip("/").split("/")[-1]
    wait_for_text(battle_id)
    response = page.post(f"/arena/battles/{battle_id}/stop/")
    assert response.status_code == 302 and response["Location"].startswith(f"/arena/battles/{battle_id}/")
    assert Battle.objects.get(question_id=battle_id).state_a == "stopped"
    again = page.post(f"/arena/battles/{battle_id}/stop/")
    assert again.status_code == 409 and b"nothing to stop" in again.content  # the page, with the reason
    response = page.post(f"/arena/battles/{battle_id}/regenerate/")
    assert response.status_code == 302
    assert Battle.objects.get(question_id=battle_id).attempt == 2
    assert APIClient().post(f"/arena/battles/{battle_id}/regenerate/").status_code == 404
    wait_over(page, battle_id)


@override_settings(**FAST, ARENA_STREAM_REDIS_URL="")
def test_a_regenerated_turn_streams_again_under_ids_never_used_before(voter, pool):
    from .test_stream import watch

    battle_id = start(voter)
    wait_over(voter, battle_id)
    _, first = watch(voter, battle_id)
    assert first[-1].name == "end" and first[-1].id.startswith("1.")
    post(voter, battle_id, "regenerate")
    final = wait_over(voter, battle_id)
    # A viewer that reconnects with the first answers' last id gets the new answers whole.
    _, second = watch(voter, battle_id, last_event_id=first[-1].id)
    assert second[-1].name == "end" and second[-1].data["attempt"] == 2
    texts = {"a": "", "b": ""}
    for event in second[:-1]:
        side, text = event.text
        texts[side] += text
    assert texts == {"a": final["conversation_a"][-1]["content"], "b": final["conversation_b"][-1]["content"]}
    assert all(event.id.startswith("1.2.") for event in second)
    assert not {event.id for event in first} & {event.id for event in second}
    # Resuming inside the second answers sends the rest only.
    _, rest = watch(voter, battle_id, last_event_id=second[0].id)
    assert [event.id for event in rest] == [event.id for event in second[1:]]

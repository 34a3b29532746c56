"""GET /api/v1/battles/{id}/stream/: the answers as server-sent events, end to end (real
answering threads, demo models), on both stream logs: Redis Streams and the embedded one."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.test import AsyncClient, override_settings
from rest_framework.test import APIClient

from battles import answering
from battles.models import Battle, EndpointUsage
from providers.models import ArenaModel

from ..conftest import make_model
from ..factories import ProviderFactory, UserFactory
from ..support.processes import site_process

pytestmark = [pytest.mark.django_db(transaction=True)]

# Slow enough that a viewer joins while the answers are still arriving.
PACED = {
    "ARENA_DEMO_CHUNK_DELAY": 0.01,
    "ARENA_ANSWER_SAVE_INTERVAL": 0.3,
    "ARENA_STREAM_POLL_INTERVAL": 0.05,
    "ARENA_STREAM_IDLE_CHECK_SECONDS": 1.0,
}
PROMPT = "Explain binary search to a new programmer, with an example."


def redis_url() -> str | None:
    for url in (settings.ARENA_STREAM_REDIS_URL, settings.CELERY_BROKER_URL):
        if url.startswith("redis://"):
            return url
    return None


@pytest.fixture(params=["redis", "embedded"])
def backend(request):
    url = "" if request.param == "embedded" else redis_url()
    if url is None:
        pytest.skip("no Redis configured (CELERY_BROKER_URL or ARENA_STREAM_REDIS_URL)")
    with override_settings(ARENA_STREAM_REDIS_URL=url, **PACED):
        yield request.param


@pytest.fixture
def pool():
    provider = ProviderFactory(name="Northwind Research", slug="northwind")
    return [make_model(provider, ArenaModel.Status.LISTED, name=f"northwind-{n}", is_demo=True) for n in ("s", "l")]


@pytest.fixture
def voter():
    return APIClient()


@dataclass
class Event:
    name: str
    id: str | None
    data: dict

    @property
    def text(self) -> tuple[str, str]:
        return self.data["side"], self.data["text"]


def parse(body: str) -> list[Event]:
    events = []
    for block in body.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            name, _, value = line.partition(": ")
            fields[name] = value
        if "data" in fields:
            events.append(Event(fields.get("event", "message"), fields.get("id"), json.loads(fields["data"])))
    return events


def start(voter) -> str:
    response = voter.post("/api/v1/battles/", {"prompt": PROMPT}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def watch(voter, battle_id: str, *, last_event_id: str = "", stop_after: int | None = None):
    """The response and events of the stream, as an EventSource reads them; `stop_after`
    text events, the viewer goes away (the connection is dropped)."""

    async def read():
        client = AsyncClient()
        client.cookies.update(voter.cookies)
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        response = await client.get(f"/api/v1/battles/{battle_id}/stream/", headers=headers)
        if not response.streaming:
            return response, []
        body, events = "", []
        stream = aiter(response.streaming_content)
        try:
            async for chunk in stream:
                body += chunk.decode()
                events = parse(body)
                if stop_after is not None and sum(e.name == "message" for e in events) >= stop_after:
                    break
        finally:
            await stream.aclose()
        return response, events

    return async_to_sync(read)()


def answers(events: list[Event]) -> dict[str, str]:
    texts = {"a": "", "b": ""}
    for event in events:
        if event.name == "message":
            side, text = event.text
            texts[side] += text
    return texts


def final(battle_id: str) -> dict[str, str]:
    battle = Battle.objects.get(question_id=battle_id)
    return {"a": battle.conversation_a[-1]["content"], "b": battle.conversation_b[-1]["content"]}


def wait_ready(battle_id: str, timeout: float = 20.0) -> Battle:
    deadline = time.monotonic() + timeout
    while (battle := Battle.objects.get(question_id=battle_id)).status == Battle.Status.ANSWERING:
        assert time.monotonic() < deadline, "the answers did not finish"
        time.sleep(0.05)
    return battle


# --- the event format ------------------------------------------------------------------------


def test_every_piece_has_an_id_and_the_last_event_is_the_battle_as_the_api_returns_it(backend, pool, voter):
    battle_id = start(voter)
    response, events = watch(voter, battle_id)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-store"
    assert all(event.id for event in events)
    *texts, end = events
    assert texts and {event.name for event in texts} == {"message"}
    assert all(set(e.data) == {"side", "text"} and e.data["side"] in ("a", "b") and e.data["text"] for e in texts)
    assert {e.data["side"] for e in texts} == {"a", "b"}
    assert end.name == "end"
    assert end.data == voter.get(f"/api/v1/battles/{battle_id}/").json()
    assert end.data["status"] == "ready" and end.data["complete"] is True
    assert answers(events) == final(battle_id)
    # Ids are cursors: the characters of each side the viewer has after the event.
    assert end.id == f"1.{len(final(battle_id)['a'])}.{len(final(battle_id)['b'])}"


def test_a_finished_battle_streams_its_answers_at_once_then_the_end(backend, pool, voter):
    battle_id = start(voter)
    wait_ready(battle_id)
    _, events = watch(voter, battle_id)
    assert answers(events) == final(battle_id)
    assert events[-1].name == "end"


def test_another_voters_battle_is_not_found(backend, pool, voter):
    battle_id = start(voter)
    response, _ = watch(APIClient(), battle_id)
    assert response.status_code == 404 and "detail" in response.json()
    assert watch(voter, "no-such-battle")[0].status_code == 404
    wait_ready(battle_id)


def test_a_signed_in_voter_reads_their_battle_with_a_bearer_token_too(backend, pool):
    from providers.models import ApiToken

    user = UserFactory()
    voter = APIClient()
    voter.force_login(user)
    battle_id = start(voter)
    wait_ready(battle_id)
    _, token = ApiToken.objects.issue(user=user, name="stream")

    async def read():
        response = await AsyncClient().get(
            f"/api/v1/battles/{battle_id}/stream/", headers={"Authorization": f"Bearer {token}"}
        )
        return response.status_code, b"".join([chunk async for chunk in response.streaming_content]).decode()

    status, body = async_to_sync(read)()
    assert status == 200 and parse(body)[-1].name == "end"


# --- resuming -------------------------------------------------------------------------------


def test_a_viewer_that_reconnects_with_last_event_id_gets_exactly_the_rest(backend, pool, voter):
    battle_id = start(voter)
    _, first = watch(voter, battle_id, stop_after=3)
    assert len(first) == 3 and Battle.objects.get(question_id=battle_id).status == "answering"
    assert Battle.objects.get(question_id=battle_id).status == "answering"
    _, second = watch(voter, battle_id, last_event_id=first[-1].id, stop_after=4)
    _, rest = watch(voter, battle_id, last_event_id=second[-1].id)
    whole = answers(first + second + rest)
    assert whole == final(battle_id)  # every piece once: nothing repeated, nothing missing
    assert rest[-1].name == "end"
    # ...and nothing was generated again: one call per model.
    assert sorted(EndpointUsage.objects.values_list("requests", flat=True)) == [1, 1]


def test_a_reconnect_after_the_end_gets_only_the_end(backend, pool, voter):
    battle_id = start(voter)
    _, events = watch(voter, battle_id)
    _, again = watch(voter, battle_id, last_event_id=events[-1].id)
    assert [event.name for event in again] == ["end"]


def test_an_id_from_an_earlier_turn_starts_the_new_turn_from_its_beginning(backend, pool, voter):
    battle_id = start(voter)
    _, events = watch(voter, battle_id)
    assert voter.post(f"/api/v1/battles/{battle_id}/turns/", {"prompt": "And then?"}, format="json").status_code == 200
    _, turn_two = watch(voter, battle_id, last_event_id=events[-1].id)
    assert answers(turn_two) == final(battle_id) and turn_two[-1].id.startswith("2.")


# --- the viewer and the generation are independent -------------------------------------------


def test_a_dropped_viewer_does_not_stop_the_answers(backend, pool, voter):
    battle_id = start(voter)
    _, seen = watch(voter, battle_id, stop_after=1)
    battle = wait_ready(battle_id)
    assert (battle.state_a, battle.state_b) == ("done", "done")
    seen_side, seen_text = seen[0].text
    assert final(battle_id)[seen_side].startswith(seen_text)
    assert all(len(text) > 20 for text in final(battle_id).values())


def test_the_answer_is_written_once_when_it_ends_not_on_every_piece(backend, pool, voter, monkeypatch):
    writes: Counter = Counter()
    write = answering.write_answer

    def counted(battle_id, column, conversation, **round_):
        writes[column] += 1
        return write(battle_id, column, conversation, **round_)

    monkeypatch.setattr(answering, "write_answer", counted)
    # Paced so that the viewer is watching while most pieces are written (a viewer who joins
    # late is sent what was written so far as one piece), and no checkpoint falls due.
    with override_settings(ARENA_ANSWER_SAVE_INTERVAL=60, ARENA_DEMO_CHUNK_DELAY=0.03):
        battle_id = start(voter)
        _, events = watch(voter, battle_id)
    assert sum(event.name == "message" for event in events) > 4  # many pieces...
    assert writes == {"conversation_a": 1, "conversation_b": 1}  # ...one write of each answer
    assert answers(events) == final(battle_id)


def test_checkpoints_while_answering_are_at_most_one_per_interval(backend, pool, voter, monkeypatch):
    writes: list[float] = []
    write = answering.write_answer

    def counted(battle_id, column, conversation, **round_):
        if column == "conversation_a":
            writes.append(time.monotonic())
        return write(battle_id, column, conversation, **round_)

    monkeypatch.setattr(answering, "write_answer", counted)
    started = time.monotonic()
    battle_id = start(voter)
    wait_ready(battle_id)
    elapsed = time.monotonic() - started
    interval = settings.ARENA_ANSWER_SAVE_INTERVAL
    assert 1 <= len(writes) <= elapsed / interval + 2
    assert all(b - a >= interval * 0.9 for a, b in zip(writes, writes[1:-1], strict=False))


# --- several processes ---------------------------------------------------------------------


@pytest.mark.worker
def test_with_redis_a_stream_is_served_by_another_process_than_the_one_generating(pool, voter, tmp_path):
    """The answers are generated here (this process's answering threads); the viewer is
    served by the site running in another process, under gunicorn with uvicorn's workers,
    which only shares Redis and the database with it."""
    url = redis_url()
    if url is None:
        pytest.skip("no Redis configured")
    with override_settings(ARENA_STREAM_REDIS_URL=url, **{**PACED, "ARENA_DEMO_CHUNK_DELAY": 0.03}):
        with site_process(tmp_path / "site.log", asgi=True, ARENA_STREAM_REDIS_URL=url) as base_url:
            battle_id = start(voter)
            body = ""
            cookies = {"sessionid": voter.cookies["sessionid"].value}
            with httpx.stream("GET", f"{base_url}/api/v1/battles/{battle_id}/stream/", cookies=cookies) as response:
                assert response.status_code == 200
                assert response.headers["content-type"] == "text/event-stream"
                first_text_at = None
                for chunk in response.iter_text():
                    body += chunk
                    if first_text_at is None and '"side"' in body:
                        first_text_at = Battle.objects.get(question_id=battle_id).status
            events = parse(body)
    assert first_text_at == "answering"  # it was live, not read back from the finished row
    assert events[-1].name == "end" and events[-1].data["status"] == "ready"
    assert answers(events) == final(battle_id)


def test_a_quiet_stream_carries_keep_alive_comments_and_still_every_piece(pool, voter, monkeypatch):
    """While a model is silent (thinking before its first token, or between slow words) the
    stream sends comment lines, which EventSource ignores, so idle-dropping proxies keep it."""
    from battles import stream_api

    monkeypatch.setattr(stream_api, "KEEPALIVE_SECONDS", 0.03)
    with override_settings(ARENA_STREAM_REDIS_URL="", **{**PACED, "ARENA_DEMO_CHUNK_DELAY": 0.1}):
        battle_id = start(voter)

        async def read() -> str:
            client = AsyncClient()
            client.cookies.update(voter.cookies)
            response = await client.get(f"/api/v1/battles/{battle_id}/stream/")
            body = ""
            async for chunk in response.streaming_content:
                body += chunk.decode()
            return body

        body = async_to_sync(read)()
    assert ": keep-alive\n\n" in body
    events = parse(body)
    assert events[-1].name == "end"
    assert answers(events) == final(battle_id)

"""The JSON battle flow under /api/v1/battles/, end to end: real background answering
threads, demo models and a real chat-completions server on loopback, real sessions."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection
from django.test import override_settings
from rest_framework.test import APIClient

from battles.identity_terms import identity_term_add, identity_term_decide
from battles.models import Battle, IdentityTerm, SamplingShare, Vote
from battles.voters import judge_id
from providers.models import ArenaModel
from tests.support.openai_server import OpenAIServer, Script

from ..conftest import make_model
from ..factories import ProviderFactory, UserFactory

S = ArenaModel.Status
FAST = {
    "ARENA_DEMO_CHUNK_DELAY": 0.0,
    "ARENA_ANSWER_SAVE_INTERVAL": 0.0,
    "ARENA_MODEL_RETRIES": 0,
    "ARENA_MODEL_FIRST_TOKEN_TIMEOUT": 2.0,
    "ARENA_MODEL_CHUNK_TIMEOUT": 2.0,
}
PROMPT = "Explain binary search to a new programmer."

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def fast_answers():
    with override_settings(**FAST):
        yield


@pytest.fixture
def provider():
    return ProviderFactory(name="Northwind Research", slug="northwind")


@pytest.fixture
def listed_pair(provider):
    """The pool: two listed demo models."""
    return [make_model(provider, S.LISTED, name=f"northwind-{n}", is_demo=True) for n in ("small", "large")]


@pytest.fixture
def voter():
    return APIClient()


def create(client, prompt=PROMPT, **extra):
    return client.post("/api/v1/battles/", {"prompt": prompt, **extra}, format="json")


def wait_until_over(client, battle_id, timeout=15.0) -> dict:
    """Poll the battle as a client would until its turn is over (ready or failed)."""
    deadline = time.monotonic() + timeout
    while True:
        data = client.get(f"/api/v1/battles/{battle_id}/").json()
        if data["status"] != "answering":
            return data
        assert time.monotonic() < deadline, f"battle still answering after {timeout}s: {data}"
        time.sleep(0.02)


def play(client, prompt=PROMPT, **extra) -> dict:
    response = create(client, prompt, **extra)
    assert response.status_code == 201, response.json()
    return wait_until_over(client, response.json()["id"])


def vote(client, battle_id, winner):
    return client.post(f"/api/v1/battles/{battle_id}/vote/", {"winner": winner}, format="json")


# --- the flow ----------------------------------------------------------------------------


def test_a_battle_is_created_answered_in_the_background_and_voted(voter, listed_pair):
    response = create(voter)
    assert response.status_code == 201
    created = response.json()
    assert created["complete"] is False and created["status"] == "answering"
    assert "model_a" not in created and "model_b" not in created

    data = wait_until_over(voter, created["id"])
    assert data["complete"] is True and data["error"] is None
    assert "model_a" not in data and "winner" not in data
    for side in ("a", "b"):
        conversation = data[f"conversation_{side}"]
        assert [m["role"] for m in conversation] == ["user", "assistant"]
        assert conversation[0]["content"] == PROMPT
        assert len(conversation[1]["content"]) > 20
    assert data["conversation_a"][1]["content"] != data["conversation_b"][1]["content"]

    result = vote(voter, created["id"], "model_a")
    assert result.status_code == 200
    names = {m.name for m in listed_pair}
    body = result.json()
    assert body["winner"] == "model_a" and {body["model_a"], body["model_b"]} == names

    battle = Battle.objects.get(question_id=created["id"])
    stored = Vote.objects.get(battle=battle)
    assert (stored.model_a_id, stored.model_b_id, stored.anony) == (battle.model_a_id, battle.model_b_id, True)
    assert stored.counts and stored.excluded_reason == ""
    assert battle.language == "English"
    assert battle.openai_moderation["flagged"] is False
    assert battle.style.tokens_a > 0  # style features stored once the answers were complete
    after = voter.get(f"/api/v1/battles/{created['id']}/").json()
    assert after["winner"] == "model_a" and after["model_a"] == body["model_a"]


def test_a_new_battle_is_in_the_release_pool_by_its_keyed_hash_and_counted_as_served(voter, listed_pair):
    ids = [create(voter).json()["id"] for _ in range(6)]
    for question_id in ids:
        wait_until_over(voter, question_id)
        battle = Battle.objects.get(question_id=question_id)
        assert battle.in_release_pool == Battle.pool_for(question_id)
    assert sorted(SamplingShare.objects.values_list("battles", flat=True)) == [6, 6]


def test_the_same_vote_again_answers_the_same_and_a_different_one_conflicts(voter, listed_pair):
    battle_id = play(voter)["id"]
    first = vote(voter, battle_id, "tie")
    again = vote(voter, battle_id, "tie")
    other = vote(voter, battle_id, "model_b")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert other.status_code == 409 and "already has a vote" in other.json()["detail"]
    assert Vote.objects.filter(battle__question_id=battle_id).count() == 1
    assert Vote.objects.get(battle__question_id=battle_id).winner == "tie"


def test_a_vote_before_the_answers_are_complete_conflicts(voter, listed_pair):
    with override_settings(ARENA_DEMO_CHUNK_DELAY=0.05):
        battle_id = create(voter).json()["id"]
        early = vote(voter, battle_id, "model_a")
        assert early.status_code == 409 and "Wait until both answers are complete" in early.json()["detail"]
        assert not Vote.objects.exists()
        wait_until_over(voter, battle_id)
    assert vote(voter, battle_id, "model_a").status_code == 200


def test_answers_are_visible_while_they_stream(voter, listed_pair):
    with override_settings(ARENA_DEMO_CHUNK_DELAY=0.03, ARENA_ANSWER_SAVE_INTERVAL=0.05):
        battle_id = create(voter).json()["id"]
        seen = set()
        while (data := voter.get(f"/api/v1/battles/{battle_id}/").json())["status"] == "answering":
            seen.add(len(data["conversation_a"][1]["content"]))
            time.sleep(0.02)
    final = len(data["conversation_a"][1]["content"])
    assert len({n for n in seen if 0 < n < final}) >= 2, "no partial answer was ever visible"


def test_turns_continue_the_conversation_up_to_the_limit(voter, listed_pair):
    with override_settings(ARENA_MAX_TURNS=2):
        battle_id = play(voter)["id"]
        response = voter.post(f"/api/v1/battles/{battle_id}/turns/", {"prompt": "And in Python?"}, format="json")
        assert response.status_code == 200 and response.json()["turn"] == 2
        data = wait_until_over(voter, battle_id)
        assert [m["role"] for m in data["conversation_b"]] == ["user", "assistant"] * 2
        assert data["conversation_b"][2]["content"] == "And in Python?"
        assert data["conversation_b"][3]["content"]
        third = voter.post(f"/api/v1/battles/{battle_id}/turns/", {"prompt": "More?"}, format="json")
        assert third.status_code == 409 and "at most 2 turns" in third.json()["detail"]
    assert Battle.objects.get(question_id=battle_id).turn == 2
    assert vote(voter, battle_id, "model_b").status_code == 200
    after_vote = voter.post(f"/api/v1/battles/{battle_id}/turns/", {"prompt": "Still there?"}, format="json")
    assert after_vote.status_code == 409 and "voted on" in after_vote.json()["detail"]


def test_a_turn_while_answering_conflicts(voter, listed_pair):
    with override_settings(ARENA_DEMO_CHUNK_DELAY=0.05):
        battle_id = create(voter).json()["id"]
        response = voter.post(f"/api/v1/battles/{battle_id}/turns/", {"prompt": "next"}, format="json")
        assert response.status_code == 409
        wait_until_over(voter, battle_id)
    assert Battle.objects.get(question_id=battle_id).turn == 1


def test_a_model_in_initial_rating_is_revealed_by_its_codename(voter, provider):
    listed = make_model(provider, S.LISTED, name="northwind-listed", is_demo=True)
    new = make_model(provider, S.INITIAL_RATING, name="northwind-secret", is_demo=True)
    body = vote(voter, play(voter)["id"], "model_a").json()
    assert {body["model_a"], body["model_b"]} == {listed.name, new.codename}
    assert new.name not in str(body)


def test_side_by_side_battles_show_names_and_never_count(voter, listed_pair):
    small, large = listed_pair
    data = play(voter, model_a=large.name, model_b=small.name)
    assert data["anony"] is False and (data["model_a"], data["model_b"]) == (large.name, small.name)
    assert vote(voter, data["id"], "model_a").status_code == 200
    stored = Vote.objects.get(battle__question_id=data["id"])
    assert stored.anony is False and not stored.counts
    assert not SamplingShare.objects.exists()  # only anonymous battles are served by the sampler


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ({"model_a": "northwind-small", "model_b": "northwind-small"}, "two different models"),
        ({"model_a": "northwind-small", "model_b": "nope"}, "'nope' is not a listed model"),
        ({"model_a": "northwind-small"}, "Pick two models"),
    ],
)
def test_side_by_side_needs_two_different_listed_models(voter, listed_pair, names, message):
    response = create(voter, **names)
    assert response.status_code == 400 and message in response.json()["detail"]
    assert not Battle.objects.exists()


def test_the_arena_is_closed_with_fewer_than_two_models(voter, provider):
    make_model(provider, S.LISTED, name="alone", is_demo=True)
    response = create(voter)
    assert response.status_code == 503 and "not open right now" in response.json()["detail"]
    assert not Battle.objects.exists()


# --- who may see and vote ----------------------------------------------------------------


def test_another_voters_battle_is_not_found(voter, listed_pair):
    battle_id = play(voter)["id"]
    stranger = APIClient()
    assert stranger.get(f"/api/v1/battles/{battle_id}/").status_code == 404
    assert vote(stranger, battle_id, "model_a").status_code == 404
    forged = APIClient()
    forged.cookies["sessionid"] = "forged-session-key-0123456789abcdef"
    assert forged.get(f"/api/v1/battles/{battle_id}/").status_code == 404
    assert vote(forged, battle_id, "model_a").status_code == 404
    turn = forged.post(f"/api/v1/battles/{battle_id}/turns/", {"prompt": "hi"}, format="json")
    assert turn.status_code == 404
    assert not Vote.objects.exists() and Battle.objects.get(question_id=battle_id).turn == 1


def test_an_unknown_battle_is_not_found(voter, listed_pair):
    play(voter)
    for path in ("/api/v1/battles/0123456789abcdef0123456789abcdef/", "/api/v1/battles/%3Cscript%3E/"):
        response = voter.get(path)
        assert response.status_code == 404 and response.json() == {"detail": "No such battle."}


def test_the_judge_is_a_salted_hash_of_the_session_or_the_account(voter, listed_pair):
    first, second = play(voter)["id"], play(voter)["id"]
    vote(voter, first, "model_a")
    vote(voter, second, "model_b")
    judges = set(Vote.objects.values_list("judge", flat=True))
    assert len(judges) == 1
    (judge,) = judges
    session_key = voter.cookies["sessionid"].value
    assert len(judge) == 32 and session_key not in judge and "127.0.0.1" not in judge

    user = UserFactory(username="voter@example.com")
    member = APIClient()
    member.force_authenticate(user)
    vote(member, play(member)["id"], "tie")
    assert Vote.objects.get(winner="tie").judge == judge_id(f"user:{user.pk}")


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   \n "}, "Write a prompt first"),
        ({"prompt": "x" * 8001}, "8,001 characters long; the limit is 8,000"),
        ({"prompt": "a\x00b"}, "prompt"),
        ({"prompt": 42}, "prompt"),
        ({}, "prompt"),
    ],
)
def test_a_bad_prompt_is_refused_and_nothing_is_stored(voter, listed_pair, body, message):
    response = voter.post("/api/v1/battles/", body, format="json")
    assert response.status_code == 400 and message in response.json()["detail"]
    assert not Battle.objects.exists() and not SamplingShare.objects.exists()


def test_a_body_that_is_not_json_is_refused(voter, listed_pair):
    response = voter.post("/api/v1/battles/", b"\xff\xfe{not json", content_type="application/json")
    assert response.status_code == 400
    assert not Battle.objects.exists()


@pytest.mark.parametrize("winner", ["A", "model_c", "", None, "tie(bothbad)"])
def test_a_vote_outside_the_four_is_refused(voter, listed_pair, winner):
    battle_id = play(voter)["id"]
    response = vote(voter, battle_id, winner)
    assert response.status_code == 400 and "winner" in response.json()["detail"]
    assert not Vote.objects.exists()


def test_a_bad_turn_prompt_is_refused_and_changes_nothing(voter, listed_pair):
    battle_id = play(voter)["id"]
    response = voter.post(f"/api/v1/battles/{battle_id}/turns/", {"prompt": "y" * 9000}, format="json")
    assert response.status_code == 400
    battle = Battle.objects.get(question_id=battle_id)
    assert battle.turn == 1 and len(battle.conversation_a) == 2 and battle.status == "ready"


# --- votes that must not count -------------------------------------------------------------


def approve_term(term: str) -> None:
    # Staff decide the identity terms (battles/identity_terms.py); admission only proposes them.
    found = IdentityTerm.objects.filter(term=term).first() or identity_term_add(term=term, actor=None)
    if found.state != IdentityTerm.State.APPROVED:
        identity_term_decide(term_id=found.pk, approve=True, actor=None)


def test_a_prompt_naming_an_approved_model_name_is_identity_revealed(voter, listed_pair):
    approve_term("northwind-large")
    body = play(voter, prompt="Are you northwind-large or the other one?")
    vote(voter, body["id"], "model_a")
    assert Vote.objects.get().excluded_reason == "identity_revealed"


def test_an_answer_naming_an_approved_word_is_identity_revealed(voter, provider, listed_pair):
    approve_term("claude")
    with OpenAIServer() as server:
        server.script("talkative", Script(text="As Claude, I would say binary search halves the range."))
        make_model(
            provider, S.LISTED, name="talkative", endpoint_base_url=server.base_url, endpoint_model_id="talkative"
        )
        ArenaModel.objects.filter(is_demo=True).exclude(name="northwind-small").update(status=S.RETIRED)
        body = play(voter)
    vote(voter, body["id"], "model_b")
    assert Vote.objects.get().excluded_reason == "identity_revealed"


@override_settings(ARENA_MODERATION_TERMS={"violence": ["pineapple smoothie"]})
def test_a_battle_flagged_by_moderation_is_excluded(voter, listed_pair):
    body = play(voter, prompt="Give me a recipe for a pineapple smoothie.")
    battle = Battle.objects.get(question_id=body["id"])
    assert battle.openai_moderation["flagged"] is True
    assert battle.openai_moderation["categories"]["violence"] is True
    vote(voter, body["id"], "tie")
    assert Vote.objects.get().excluded_reason == "moderation"


@override_settings(ARENA_VOTER_DAILY_VOTES=2)
def test_votes_over_the_daily_limit_are_kept_but_rate_limited(voter, listed_pair):
    ids = [play(voter)["id"] for _ in range(3)]
    for battle_id in ids:
        assert vote(voter, battle_id, "model_a").status_code == 200
    reasons = [Vote.objects.get(battle__question_id=i).excluded_reason for i in ids]
    assert reasons == ["", "", "rate_limited"]
    other = APIClient()
    vote(other, play(other)["id"], "model_a")
    assert Vote.objects.filter(excluded_reason="").count() == 3  # another voter has their own limit


@override_settings(ARENA_MODEL_MAX_ANSWER_CHARS=40)
def test_an_answer_cut_at_the_length_limit_completes_but_its_vote_is_an_error(voter, provider):
    with OpenAIServer() as server:
        server.script("verbose", Script(text="word " * 100))
        make_model(provider, S.LISTED, name="verbose", endpoint_base_url=server.base_url, endpoint_model_id="verbose")
        make_model(provider, S.LISTED, name="brief", endpoint_base_url=server.base_url, endpoint_model_id="brief")
        body = play(voter)
    assert body["complete"] is True
    side = "a" if body["answer_a"] == "cut" else "b"
    assert body[f"answer_{side}"] == "cut"
    assert len(body[f"conversation_{side}"][1]["content"]) <= 40
    vote(voter, body["id"], "model_a")
    assert Vote.objects.get().excluded_reason == "error"


# --- failing endpoints -------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["close_mid_stream", "garbage", "hang_mid_stream", "error"])
def test_a_failing_endpoint_ends_the_battle_cleanly_and_is_recorded(voter, provider, mode):
    with OpenAIServer() as server:
        make_model(provider, S.LISTED, name="steady", is_demo=True)
        broken = make_model(
            provider, S.LISTED, name="broken", endpoint_base_url=server.base_url, endpoint_model_id=mode
        )
        body = play(voter)
    assert body["status"] == "failed" and body["complete"] is False
    side = "a" if body["answer_a"] == "failed" else "b"
    assert body[f"answer_{side}"] == "failed" and body["answer_" + ("b" if side == "a" else "a")] == "done"
    assert body["error"].startswith(f"Model {side.upper()}: ")
    broken.refresh_from_db()
    assert broken.endpoint_last_error.startswith("In a battle: ")
    assert broken.endpoint_offline_since is not None
    # The voter is told, and the vote (if any) is kept but never counts.
    assert vote(voter, body["id"], "model_a").status_code == 200
    assert Vote.objects.get().excluded_reason == "error"
    refused = voter.post(f"/api/v1/battles/{body['id']}/turns/", {"prompt": "again"}, format="json")
    assert refused.status_code == 409


# --- one vote per battle, under concurrency ----------------------------------------------


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="row locks need PostgreSQL")
def test_concurrent_votes_on_one_battle_store_exactly_one(voter, listed_pair):
    battle_id = play(voter)["id"]
    session = voter.cookies["sessionid"].value
    winners = ["model_a", "model_b", "tie", "tie (bothbad)"] * 3
    results: list[tuple[str, int, dict]] = []
    barrier = threading.Barrier(len(winners))

    def cast(winner):
        client = APIClient()
        client.cookies["sessionid"] = session
        barrier.wait()
        response = vote(client, battle_id, winner)
        results.append((winner, response.status_code, response.json()))
        connection.close()

    threads = [threading.Thread(target=cast, args=(w,)) for w in winners]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = Vote.objects.get(battle__question_id=battle_id)
    assert Vote.objects.count() == 1
    for winner, code, body in results:
        if winner == stored.winner:
            assert code == 200 and body["winner"] == winner
        else:
            assert code == 409

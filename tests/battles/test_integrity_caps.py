"""Daily vote caps per voter and per network, applied as the vote arrives, and the network id."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection
from django.test import RequestFactory, override_settings
from rest_framework.test import APIClient

from arenasite import clock
from battles.arena import cast_vote
from battles.models import Battle, Vote
from battles.voters import Voter, network_for, network_id, network_prefix
from providers.models import ArenaModel

from ..conftest import make_model

S = ArenaModel.Status


# --- the network id -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address, prefix",
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("203.0.113.0", "203.0.113.0/24"),
        ("2001:db8:abcd:12:1::5", "2001:db8:abcd::/48"),
        ("::ffff:203.0.113.9", "203.0.113.0/24"),  # IPv4 written as IPv6 is the IPv4 network
        (" 198.51.100.1 ", "198.51.100.0/24"),
    ],
)
def test_an_address_is_reduced_to_its_network(address, prefix):
    assert network_prefix(address) == prefix


@pytest.mark.parametrize("address", ["", "unknown", "203.0.113", "203.0.113.1/24", "300.1.1.1"])
def test_what_is_not_an_address_has_no_network(address):
    assert network_prefix(address) is None
    assert network_id(address) == ""


def test_the_stored_network_is_a_salted_hash_shared_by_the_prefix():
    same = network_id("203.0.113.5")
    assert len(same) == 32 and "203" not in same
    assert network_id("203.0.113.250") == same
    assert network_id("203.0.114.5") != same
    with override_settings(JUDGE_SALT="another-salt"):
        assert network_id("203.0.113.5") != same


def test_the_network_comes_from_the_connection_not_from_a_header():
    request = RequestFactory().post("/", REMOTE_ADDR="203.0.113.5", HTTP_X_FORWARDED_FOR="198.51.100.1")
    assert network_for(request) == network_id("203.0.113.5")


# --- caps at their boundaries ---------------------------------------------------------------


@pytest.fixture
def pair(provider_a):
    return [make_model(provider_a, S.LISTED, name=f"cap-{n}", is_demo=True) for n in ("a", "b")]


_ids = itertools.count()


def ready_battle(pair, prompt: str = "Explain binary search.") -> Battle:
    return Battle.objects.create(
        question_id=f"cap-{next(_ids)}",
        model_a=pair[0],
        model_b=pair[1],
        turn=1,
        conversation_a=[{"role": "user", "content": prompt}, {"role": "assistant", "content": "Halve it."}],
        conversation_b=[{"role": "user", "content": prompt}, {"role": "assistant", "content": "Split it."}],
    )


def votes_of(judges: list[str], networks: list[str], pair) -> list[str]:
    reasons = []
    for judge, network in zip(judges, networks, strict=True):
        vote, created = cast_vote(ready_battle(pair), "model_a", Voter(judge, network=network))
        assert created
        reasons.append(vote.excluded_reason)
    return reasons


@pytest.mark.django_db
@override_settings(ARENA_VOTER_DAILY_VOTES=3, ARENA_NETWORK_DAILY_VOTES=0)
def test_the_voter_cap_counts_up_to_the_limit_and_excludes_the_next(pair):
    assert votes_of(["j1"] * 5, [""] * 5, pair) == ["", "", "", "rate_limited", "rate_limited"]


@pytest.mark.django_db
@override_settings(ARENA_VOTER_DAILY_VOTES=3, ARENA_NETWORK_DAILY_VOTES=0)
def test_the_voter_cap_is_per_voter_and_per_utc_day(pair):
    tomorrow = clock.now() + timedelta(days=1)
    reasons = votes_of(["j1", "j1", "j1", "j2"], [""] * 4, pair)
    assert reasons == ["", "", "", ""]
    with mock.patch("arenasite.clock.now", return_value=tomorrow):
        battle = ready_battle(pair)
        assert cast_vote(battle, "tie", Voter("j1"))[0].excluded_reason == ""


@pytest.mark.django_db
@override_settings(ARENA_VOTER_DAILY_VOTES=0, ARENA_NETWORK_DAILY_VOTES=3)
def test_the_network_cap_counts_every_voter_of_the_network(pair):
    home, elsewhere = network_id("203.0.113.5"), network_id("198.51.100.5")
    reasons = votes_of(["j1", "j2", "j3", "j4", "j5", "j6"], [home, home, home, home, elsewhere, ""], pair)
    assert reasons == ["", "", "", "rate_limited", "", ""]
    assert Vote.objects.filter(network=home).count() == 4  # stored, judged after


@pytest.mark.django_db
@override_settings(ARENA_VOTER_DAILY_VOTES=0, ARENA_NETWORK_DAILY_VOTES=0)
def test_zero_means_no_cap(pair):
    net = network_id("203.0.113.5")
    assert votes_of(["j1"] * 4, [net] * 4, pair) == ["", "", "", ""]


@pytest.mark.django_db
@override_settings(ARENA_VOTER_DAILY_VOTES=2, ARENA_NETWORK_DAILY_VOTES=0)
def test_a_retried_vote_does_not_use_up_the_cap(pair):
    battle = ready_battle(pair)
    cast_vote(battle, "model_a", Voter("j1"))
    _, created = cast_vote(battle, "model_a", Voter("j1"))
    assert not created
    assert votes_of(["j1"], [""], pair[::-1]) == [""]


@pytest.mark.django_db(transaction=True)
@override_settings(ARENA_VOTER_DAILY_VOTES=1, ARENA_NETWORK_DAILY_VOTES=0)
def test_two_votes_of_one_voter_at_the_same_moment_cannot_both_pass_the_cap(pair):
    """Two tabs, two battles, one vote left today: exactly one vote counts."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has one writer at a time; the race needs PostgreSQL")
    battles = [ready_battle(pair) for _ in range(2)]
    barrier = threading.Barrier(2)
    errors = []

    def vote(battle):
        try:
            barrier.wait()
            cast_vote(battle, "model_a", Voter("same-judge"))
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    from battles import arena

    original = arena.over_daily_limit

    def count_then_wait(judge, now=None):
        # Widen the gap between counting the day's votes and storing this one.
        over = original(judge, now)
        time.sleep(0.3)
        return over

    with mock.patch.object(arena, "over_daily_limit", side_effect=count_then_wait):
        threads = [threading.Thread(target=vote, args=(b,)) for b in battles]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors
    assert sorted(Vote.objects.values_list("excluded_reason", flat=True)) == ["", "rate_limited"]


# --- end to end: the API passes the client's network and probes are excluded ----------------

FAST = {"ARENA_DEMO_CHUNK_DELAY": 0.0, "ARENA_ANSWER_SAVE_INTERVAL": 0.0, "ARENA_MODEL_RETRIES": 0}


def play_and_vote(client, prompt: str, address: str) -> Vote:
    created = client.post("/api/v1/battles/", {"prompt": prompt}, format="json", REMOTE_ADDR=address)
    assert created.status_code == 201, created.json()
    battle_id = created.json()["id"]
    deadline = time.monotonic() + 15
    while client.get(f"/api/v1/battles/{battle_id}/").json()["status"] == "answering":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    voted = client.post(f"/api/v1/battles/{battle_id}/vote/", {"winner": "model_a"}, format="json", REMOTE_ADDR=address)
    assert voted.status_code == 200
    return Vote.objects.get(battle__question_id=battle_id)


@pytest.mark.django_db(transaction=True)
@override_settings(**FAST, ARENA_NETWORK_DAILY_VOTES=1)
def test_votes_through_the_api_carry_the_network_and_meet_its_cap(provider_a):
    for n in ("a", "b"):
        make_model(provider_a, S.LISTED, name=f"e2e-{n}", is_demo=True)
    first = play_and_vote(APIClient(), "Explain binary search.", "203.0.113.5")
    assert first.network == network_id("203.0.113.5") and first.excluded_reason == ""
    # Another voter (a new session) on the same /24.
    second = play_and_vote(APIClient(), "Explain quicksort.", "203.0.113.99")
    assert second.excluded_reason == "rate_limited"


@pytest.mark.django_db(transaction=True)
@override_settings(**FAST)
def test_a_battle_whose_prompt_asks_the_model_who_it_is_is_identity_probe(provider_a):
    for n in ("a", "b"):
        make_model(provider_a, S.LISTED, name=f"e2e-{n}", is_demo=True)
    assert play_and_vote(APIClient(), "Wer bist du?", "203.0.113.5").excluded_reason == "identity_probe"


@pytest.mark.parametrize("address", ["127.0.0.1", "10.2.3.4", "172.20.0.5", "192.168.1.9", "::1", "fd12::5"])
def test_loopback_and_private_addresses_name_no_network(address):
    # Behind a proxy that does not pass the client's address on, every vote would come from
    # one private address: capping them together would cap everybody at once.
    assert network_id(address) == ""

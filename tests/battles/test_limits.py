"""What a battle costs: rates and battles in flight per voter, per address and per network, and
the daily vote caps that fresh cookies at one address share. A refusal is 429 with Retry-After
and a sentence, and stores nothing."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import override_settings
from rest_framework.test import APIClient

from arenasite import clock
from arenasite.rates import parse_rates
from battles import limits
from battles.arena import cast_vote
from battles.models import Battle, Vote
from battles.voters import Voter, address_id, network_id, wide_network_id
from providers.models import ArenaModel

from ..conftest import make_model

# The counters live in the shared cache, a database table unless CACHE_URL names a Redis.
pytestmark = pytest.mark.django_db
S = ArenaModel.Status
FAST = {"ARENA_DEMO_CHUNK_DELAY": 0.0, "ARENA_ANSWER_SAVE_INTERVAL": 0.0, "ARENA_MODEL_RETRIES": 0}
NO_RATES = {"ARENA_BATTLE_RATE_VOTER": "", "ARENA_BATTLE_RATE_ADDRESS": "", "ARENA_BATTLE_RATE_NETWORK": ""}
NO_IN_FLIGHT = {"ARENA_BATTLES_IN_FLIGHT_VOTER": 0, "ARENA_BATTLES_IN_FLIGHT_ADDRESS": 0}
HOME = "203.0.113.5"


@pytest.fixture(autouse=True)
def fresh_counters():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def pool(provider_a):
    return [make_model(provider_a, S.LISTED, name=f"limit-{n}", is_demo=True) for n in ("a", "b")]


def start(client: APIClient, address: str = HOME, prompt: str = "Explain binary search."):
    return client.post("/api/v1/battles/", {"prompt": prompt}, format="json", REMOTE_ADDR=address)


def wait_answered(client: APIClient, battle_id: str, address: str = HOME) -> None:
    deadline = time.monotonic() + 15
    while client.get(f"/api/v1/battles/{battle_id}/", REMOTE_ADDR=address).json()["status"] == "answering":
        assert time.monotonic() < deadline
        time.sleep(0.02)


# --- rates ----------------------------------------------------------------------------------------


def test_rates_are_read_from_their_setting():
    assert [str(rate) for rate in parse_rates("6/m, 60/h,300/d")] == ["6/m", "60/h", "300/d"]
    assert parse_rates("") == ()
    for bad in ("6", "6/week", "x/m", "-1/m"):
        with pytest.raises(ValueError):
            parse_rates(bad)


@override_settings(ARENA_BATTLE_RATE_VOTER="2/m", ARENA_BATTLE_RATE_ADDRESS="", ARENA_BATTLE_RATE_NETWORK="")
def test_a_voter_past_its_rate_is_refused_and_counted_again_in_the_next_window():
    voter = Voter("j1")
    now = 1_000_040.0  # 20 s into a minute
    limits.take_battle_rate(voter, now)
    limits.take_battle_rate(voter, now + 1)
    with pytest.raises(limits.LimitReached) as refused:
        limits.take_battle_rate(voter, now + 2)
    assert refused.value.retry_after == 38
    assert "You have started 2 battles or turns this minute" in refused.value.message
    limits.take_battle_rate(voter, now + 41)  # the next minute
    limits.take_battle_rate(Voter("j2"), now + 2)  # another voter was never limited


@override_settings(ARENA_BATTLE_RATE_VOTER="5/m", ARENA_BATTLE_RATE_ADDRESS="2/m", ARENA_BATTLE_RATE_NETWORK="")
def test_a_refused_request_uses_up_nothing():
    now = 2_000_000.0
    home = address_id(HOME)
    limits.take_battle_rate(Voter("j1", address=home), now)
    limits.take_battle_rate(Voter("j2", address=home), now)
    for _ in range(3):
        with pytest.raises(limits.LimitReached, match="Your address"):
            limits.take_battle_rate(Voter("j1", address=home), now)
    # j1's own rate counted only the one start that passed: elsewhere it has four left.
    for _ in range(4):
        limits.take_battle_rate(Voter("j1"), now)
    with pytest.raises(limits.LimitReached, match="You have"):
        limits.take_battle_rate(Voter("j1"), now)


@pytest.mark.django_db(transaction=True)
@override_settings(
    **FAST, **NO_IN_FLIGHT, ARENA_BATTLE_RATE_VOTER="", ARENA_BATTLE_RATE_ADDRESS="3/h", ARENA_BATTLE_RATE_NETWORK=""
)
def test_fresh_cookies_at_one_address_share_its_rate_and_a_refusal_is_429_with_retry_after(pool):
    answers = [start(APIClient()) for _ in range(5)]  # a new cookie jar each time
    assert [a.status_code for a in answers] == [201, 201, 201, 429, 429]
    refused = answers[3]
    assert 0 < int(refused["Retry-After"]) <= 3600
    assert "Your address has started 3 battles or turns this hour" in refused.json()["detail"]
    assert Battle.objects.count() == 3  # a refused start stores nothing
    assert start(APIClient(), address="198.51.100.7").status_code == 201  # another address is not held up


@pytest.mark.django_db(transaction=True)
@override_settings(
    **FAST, **NO_IN_FLIGHT, ARENA_BATTLE_RATE_VOTER="", ARENA_BATTLE_RATE_ADDRESS="1/h", ARENA_BATTLE_RATE_NETWORK=""
)
def test_a_refused_start_from_fresh_cookies_stores_no_session_either(pool):
    from django.contrib.sessions.models import Session

    assert start(APIClient()).status_code == 201
    sessions = Session.objects.count()
    refused = [start(APIClient()) for _ in range(5)]
    assert {r.status_code for r in refused} == {429}
    assert all("sessionid" not in r.cookies for r in refused)
    assert Session.objects.count() == sessions and Battle.objects.count() == 1


@pytest.mark.django_db(transaction=True)
@override_settings(**FAST, **NO_IN_FLIGHT, ARENA_BATTLE_RATE_VOTER="2/h", ARENA_BATTLE_RATE_ADDRESS="")
def test_an_added_turn_counts_like_a_new_battle(pool):
    client = APIClient()
    battle_id = start(client).json()["id"]
    wait_answered(client, battle_id)
    turn = client.post(f"/api/v1/battles/{battle_id}/turns/", {"prompt": "And why?"}, format="json", REMOTE_ADDR=HOME)
    assert turn.status_code == 200
    wait_answered(client, battle_id)
    third = client.post(f"/api/v1/battles/{battle_id}/turns/", {"prompt": "More?"}, format="json", REMOTE_ADDR=HOME)
    assert third.status_code == 429 and third["Retry-After"]
    assert Battle.objects.get(question_id=battle_id).turn == 2


@pytest.mark.django_db(transaction=True)
@override_settings(**FAST, **NO_IN_FLIGHT, ARENA_BATTLE_RATE_VOTER="1/d", ARENA_BATTLE_RATE_ADDRESS="")
def test_the_arena_page_answers_a_refused_start_with_429_and_the_sentence(pool):
    from django.test import Client

    client = Client(REMOTE_ADDR=HOME)
    assert client.post("/arena/", {"prompt": "Hello there"}).status_code == 302
    refused = client.post("/arena/", {"prompt": "Hello again"})
    assert refused.status_code == 429 and refused["Retry-After"]
    assert "You have started 1 battles or turns this day" in refused.content.decode()
    assert Battle.objects.count() == 1


# --- battles in flight ------------------------------------------------------------------------------


def answering_battle(pair, judge: str, address: str = "") -> Battle:
    now = clock.now()
    return Battle.objects.create(
        question_id=f"q-{Battle.objects.count()}-{judge}",
        model_a=pair[0],
        model_b=pair[1],
        judge=judge,
        address=address,
        turn=1,
        status=Battle.Status.ANSWERING,
        turn_started_at=now,
    )


@pytest.mark.django_db
@override_settings(**NO_RATES, ARENA_BATTLES_IN_FLIGHT_VOTER=2, ARENA_BATTLES_IN_FLIGHT_ADDRESS=3)
def test_a_voter_and_an_address_hold_only_a_few_battles_in_flight(pool):
    home = address_id(HOME)
    answering_battle(pool, "j1", home)
    limits.check_in_flight(Voter("j1", address=home))
    answering_battle(pool, "j1", home)
    with pytest.raises(limits.LimitReached, match="You already have 2 battles being answered"):
        limits.check_in_flight(Voter("j1", address=home))
    # A fresh cookie jar at the same address: its own count is 0, the address's is 2 of 3.
    limits.check_in_flight(Voter("j2", address=home))
    answering_battle(pool, "j2", home)
    with pytest.raises(limits.LimitReached, match="Your address already has 3"):
        limits.check_in_flight(Voter("j3", address=home))


@pytest.mark.django_db
@override_settings(**NO_RATES, ARENA_BATTLES_IN_FLIGHT_VOTER=1, ARENA_BATTLES_IN_FLIGHT_ADDRESS=0)
def test_a_battle_stuck_past_any_answer_does_not_hold_its_voter_up(pool):
    stuck = answering_battle(pool, "j1")
    Battle.objects.filter(pk=stuck.pk).update(turn_started_at=clock.now() - timedelta(hours=1))
    limits.check_in_flight(Voter("j1"))


@pytest.mark.django_db(transaction=True)
@override_settings(**FAST, **NO_RATES, ARENA_BATTLES_IN_FLIGHT_VOTER=2, ARENA_BATTLES_IN_FLIGHT_ADDRESS=0)
def test_the_api_refuses_a_third_battle_in_flight_with_429(pool):
    client = APIClient()
    for _ in range(2):
        answering_battle(pool, "placeholder")  # other voters' battles do not count
    session_battle = start(client)
    assert session_battle.status_code == 201
    judge = Battle.objects.get(question_id=session_battle.json()["id"]).judge
    Battle.objects.filter(judge="placeholder").update(judge=judge)  # now this voter has three
    refused = start(client)
    assert refused.status_code == 429
    assert refused["Retry-After"] == str(limits.IN_FLIGHT_RETRY_SECONDS)


# --- daily vote caps per address and account ------------------------------------------------------


def ready_battle(pair) -> Battle:
    prompt = "How do I split a bill fairly?"
    return Battle.objects.create(
        question_id=f"q-{Battle.objects.count()}",
        model_a=pair[0],
        model_b=pair[1],
        turn=1,
        conversation_a=[{"role": "user", "content": prompt}, {"role": "assistant", "content": "Halve it."}],
        conversation_b=[{"role": "user", "content": prompt}, {"role": "assistant", "content": "Split it."}],
    )


def reasons(pool, voters: list[Voter]) -> list[str]:
    return [cast_vote(ready_battle(pool), "model_a", voter)[0].excluded_reason for voter in voters]


@pytest.mark.django_db
@override_settings(ARENA_VOTER_DAILY_VOTES=100, ARENA_ADDRESS_DAILY_VOTES=3, ARENA_NETWORK_DAILY_VOTES=0)
def test_fresh_cookie_jars_at_one_address_share_its_daily_votes(pool):
    home = address_id(HOME)
    voters = [Voter(f"fresh-{n}", address=home) for n in range(5)]
    assert reasons(pool, voters) == ["", "", "", "rate_limited", "rate_limited"]
    assert reasons(pool, [Voter("elsewhere", address=address_id("198.51.100.7"))]) == [""]


@pytest.mark.django_db
@override_settings(
    ARENA_VOTER_DAILY_VOTES=1, ARENA_ACCOUNT_DAILY_VOTES=2, ARENA_ADDRESS_DAILY_VOTES=1, ARENA_NETWORK_DAILY_VOTES=0
)
def test_a_signed_in_voter_is_counted_per_account_with_a_cap_of_its_own(pool):
    home = address_id(HOME)
    account = Voter("user-1", signed_in=True, address=home)
    assert reasons(pool, [account] * 3) == ["", "", "rate_limited"]
    # The account's votes are not the address's: an anonymous voter there still has its one vote.
    assert reasons(pool, [Voter("anonymous", address=home)]) == [""]
    assert Vote.objects.filter(judge="user-1", address="").count() == 3


@pytest.mark.django_db
@override_settings(
    ARENA_VOTER_DAILY_VOTES=0,
    ARENA_ADDRESS_DAILY_VOTES=0,
    ARENA_NETWORK_DAILY_VOTES=100,
    ARENA_WIDE_NETWORK_DAILY_VOTES=2,
)
def test_ipv6_networks_of_one_32_share_the_coarse_cap(pool):
    # Three /48s of one /32: each network is different, the /32 is the same.
    addresses = ["2001:db8:1::5", "2001:db8:2::5", "2001:db8:3::5"]
    voters = [Voter(f"v{n}", network=network_id(a), wide_network=wide_network_id(a)) for n, a in enumerate(addresses)]
    assert len({v.network for v in voters}) == 3 and len({v.wide_network for v in voters}) == 1
    assert reasons(pool, voters) == ["", "", "rate_limited"]
    assert wide_network_id(HOME) == ""  # IPv4 has no coarse cap: the /24 is coarse already


def test_an_ipv6_address_is_its_64():
    assert address_id("2001:db8:1:2:aaaa::1") == address_id("2001:db8:1:2:bbbb::9")
    assert address_id("2001:db8:1:2::1") != address_id("2001:db8:1:3::1")
    assert address_id("127.0.0.1") == "" and address_id("10.1.2.3") == ""


@pytest.mark.django_db(transaction=True)
@override_settings(
    **FAST,
    **NO_RATES,
    **NO_IN_FLIGHT,
    ARENA_TRUSTED_PROXIES=["127.0.0.1/32"],
    ARENA_ADDRESS_DAILY_VOTES=2,
    ARENA_NETWORK_DAILY_VOTES=0,
)
def test_votes_behind_a_trusted_proxy_are_counted_per_forwarded_address(pool):
    def vote_from(forwarded: str) -> Vote:
        client = APIClient()  # fresh cookies every time
        extra = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": forwarded}
        battle_id = client.post("/api/v1/battles/", {"prompt": "Explain recursion."}, format="json", **extra).json()[
            "id"
        ]
        deadline = time.monotonic() + 15
        while client.get(f"/api/v1/battles/{battle_id}/", **extra).json()["status"] == "answering":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert (
            client.post(f"/api/v1/battles/{battle_id}/vote/", {"winner": "tie"}, format="json", **extra).status_code
            == 200
        )
        return Vote.objects.get(battle__question_id=battle_id)

    votes = [vote_from("198.51.100.7") for _ in range(3)]
    assert [v.excluded_reason for v in votes] == ["", "", "rate_limited"]
    assert {v.address for v in votes} == {address_id("198.51.100.7")}
    assert {v.network for v in votes} == {network_id("198.51.100.7")}
    assert vote_from("192.0.2.44").excluded_reason == ""

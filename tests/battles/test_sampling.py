"""Pair sampling for anonymous battles: the pure sampler and its documented probabilities,
the pool as stored (who may be drawn, with which weight), and the served-share counts."""

from __future__ import annotations

import itertools
import math
import os
import random
import subprocess
import sys
import threading
from collections import Counter
from datetime import date, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import close_old_connections, connection
from django.test import override_settings
from django.urls import reverse

from arenasite import clock
from battles.arena_pool import ArenaPool, load_pool, model_weight, record_served, sample_pair, sampleable_models
from battles.models import SamplingShare
from battles.sampling import Candidate, NotEnoughModels, choose_pair, effective_weight, expected_shares
from providers.admin.forms import ArenaModelForm
from providers.models import ArenaModel

from ..conftest import make_model
from ..providers.test_admin import change_form_data

S = ArenaModel.Status
ENDPOINT = {"endpoint_base_url": "https://api.example.com/v1", "endpoint_model_id": "m-1"}

# Draws per statistical check, and how many binomial standard deviations an observed share
# may stray from the exact one. At 5 sd a correct sampler fails one check in about 3.5 million;
# the seeds are fixed, so a run is reproducible either way.
DRAWS = 60_000
SDS = 5


def exact_pair_probabilities(candidates, target_share) -> dict[frozenset, float]:
    """P({i, j}) by enumerating every (first, second) draw: the module docstring's steps, spelled out."""
    weights = {c.key: c.weight for c in candidates}
    hidden = {c.key for c in candidates if c.codename}
    total = sum(weights.values())
    pairs: Counter = Counter()
    for c in candidates:
        others = {k: w for k, w in weights.items() if k != c.key and not (c.codename and k in hidden)}
        targets = {t for t in c.targets if t in others}
        share = target_share if targets else 0.0
        for j, w in others.items():
            p_second = (1 - share) * w / sum(others.values())
            if j in targets:
                p_second += share * w / sum(weights[t] for t in targets)
            pairs[frozenset((c.key, j))] += c.weight / total * p_second
    return dict(pairs)


def tolerance(p: float, n: int = DRAWS) -> float:
    return SDS * math.sqrt(p * (1 - p) / n)


def draw_many(candidates, target_share, seed, n=DRAWS):
    rng = random.Random(seed)
    return [choose_pair(candidates, rng, target_share=target_share) for _ in range(n)]


def assert_matches_exact(draws, candidates, target_share):
    """Every pair's frequency, each model's share of battles and of side A, against the exact values."""
    exact = exact_pair_probabilities(candidates, target_share)
    n = len(draws)
    pairs = Counter(frozenset(d) for d in draws)
    for pair, p in exact.items():
        assert abs(pairs[pair] / n - p) <= tolerance(p, n), (sorted(pair), pairs[pair] / n, p)
    assert set(pairs) <= set(exact)
    shares = expected_shares(candidates, target_share=target_share)
    in_battle = Counter(k for d in draws for k in d)
    as_a = Counter(a for a, _ in draws)
    for key, p in shares.items():
        assert abs(in_battle[key] / n - p) <= tolerance(p, n), (key, in_battle[key] / n, p)
        assert abs(as_a[key] / n - p / 2) <= tolerance(p / 2, n), (key, as_a[key] / n, p / 2)


# -- effective weight ---------------------------------------------------------------------


def test_it_boosts_a_model_in_initial_rating_until_the_vote_threshold():
    def weight(votes, initial=True):
        return effective_weight(2.0, in_initial_rating=initial, votes_counted=votes, boost=5, boost_votes=3000)

    assert weight(0) == 10.0
    assert weight(2999) == 10.0
    assert weight(3000) == 2.0  # the threshold itself ends the boost
    assert weight(50_000) == 2.0
    assert weight(0, initial=False) == 2.0  # a listed model is never boosted


# -- the sampler ----------------------------------------------------------------------------


def test_it_never_pairs_a_model_with_itself():
    rng = random.Random(7)
    for size in range(2, 7):
        keys = list(range(size))
        for _ in range(2_000):
            # Random weights and random targets, self-targets included.
            candidates = [
                Candidate(k, rng.uniform(0.01, 10), frozenset(rng.sample(keys, rng.randint(0, size)))) for k in keys
            ]
            a, b = choose_pair(candidates, rng, target_share=rng.choice([0, 0.5, 1]))
            assert a != b
            assert {a, b} <= set(keys)


def test_two_models_meet_in_every_battle_whatever_their_weights():
    candidates = [Candidate("big", 1000.0), Candidate("small", 0.001)]
    draws = draw_many(candidates, 0.5, seed=1, n=1000)
    assert all(set(d) == {"big", "small"} for d in draws)
    assert expected_shares(candidates, target_share=0.5) == pytest.approx({"big": 1.0, "small": 1.0})


def test_the_documented_example_ten_listed_and_one_boosted_model():
    candidates = [Candidate("new", 5.0), *(Candidate(f"listed-{i}", 1.0) for i in range(10))]
    shares = expected_shares(candidates, target_share=0.5)

    assert shares["new"] == pytest.approx(4 / 7)
    for i in range(10):
        assert shares[f"listed-{i}"] == pytest.approx(1 / 7)
    assert sum(shares.values()) == pytest.approx(2)


def test_equal_weights_give_each_model_two_in_n_battles():
    candidates = [Candidate(k, 3.0) for k in "abcde"]
    assert expected_shares(candidates, target_share=0.5) == pytest.approx(dict.fromkeys("abcde", 2 / 5))


def test_served_shares_follow_the_weights():
    candidates = [Candidate("a", 1.0), Candidate("b", 2.0), Candidate("c", 3.0), Candidate("d", 0.5)]
    assert_matches_exact(draw_many(candidates, 0.5, seed=11), candidates, 0.5)


def test_served_shares_follow_the_boost():
    weights = {
        "new": effective_weight(1.0, in_initial_rating=True, votes_counted=10, boost=5, boost_votes=3000),
        "done": effective_weight(1.0, in_initial_rating=True, votes_counted=3000, boost=5, boost_votes=3000),
        "listed-1": 1.0,
        "listed-2": 1.0,
    }
    candidates = [Candidate(k, w) for k, w in weights.items()]
    draws = draw_many(candidates, 0.5, seed=12)

    assert_matches_exact(draws, candidates, 0.5)
    in_battle = Counter(k for d in draws for k in d)
    assert in_battle["new"] > 2 * in_battle["done"]
    assert abs(in_battle["done"] - in_battle["listed-1"]) < 4 * math.sqrt(in_battle["done"])


@pytest.mark.parametrize("target_share", [0.0, 0.5, 1.0])
def test_served_shares_follow_the_target_share(target_share):
    candidates = [
        Candidate("new", 5.0, frozenset({"rival"})),
        Candidate("rival", 1.0),
        Candidate("other-1", 1.0),
        Candidate("other-2", 1.0),
    ]
    draws = draw_many(candidates, target_share, seed=13)
    assert_matches_exact(draws, candidates, target_share)

    # Spelled out for the new model and its rival: drawn first (5/8), the new model meets the
    # rival with probability t + (1 - t) / 3; drawn second after the rival (1/8 * 5/7), too.
    p_new_vs_rival = 5 / 8 * (target_share + (1 - target_share) / 3) + 1 / 8 * 5 / 7
    observed = Counter(frozenset(d) for d in draws)[frozenset({"new", "rival"})] / DRAWS
    assert abs(observed - p_new_vs_rival) <= tolerance(p_new_vs_rival)


def test_at_full_target_share_a_model_drawn_first_meets_only_its_targets():
    candidates = [Candidate("new", 1.0, frozenset({"t1", "t2"})), Candidate("t1", 1.0), Candidate("t2", 3.0)]
    candidates.append(Candidate("other", 1.0))
    exact = exact_pair_probabilities(candidates, 1.0)

    # new meets "other" only when "other" is drawn first: 1/6 * 1/5.
    assert exact[frozenset({"new", "other"})] == pytest.approx(1 / 6 * 1 / 5)
    # Targets are drawn by weight: t2 three times as often as t1 when new comes first.
    assert exact[frozenset({"new", "t2"})] == pytest.approx(1 / 6 * 3 / 4 + 3 / 6 * 1 / 3)
    assert_matches_exact(draw_many(candidates, 1.0, seed=14), candidates, 1.0)


def test_targets_outside_the_pool_and_self_targets_are_ignored():
    plain = [Candidate("a", 2.0), Candidate("b", 1.0), Candidate("c", 1.0)]
    odd_targets = [Candidate("a", 2.0, frozenset({"a", "retired"})), Candidate("b", 1.0), Candidate("c", 1.0)]

    assert expected_shares(odd_targets, target_share=1.0) == pytest.approx(expected_shares(plain, target_share=1.0))
    assert draw_many(odd_targets, 1.0, seed=3, n=500) == draw_many(plain, 1.0, seed=3, n=500)


def test_the_expected_shares_add_up_to_two_and_match_enumeration():
    rng = random.Random(99)
    for _ in range(300):
        keys = list(range(rng.randint(2, 8)))
        candidates = [
            Candidate(
                k,
                rng.uniform(0.05, 20),
                frozenset(rng.sample(keys, rng.randint(0, min(3, len(keys))))),
                codename=k > 0 and rng.random() < 0.4,  # key 0 stays visible, so a pair exists
            )
            for k in keys
        ]
        share = rng.random()
        shares = expected_shares(candidates, target_share=share)
        by_enumeration = Counter()
        for pair, p in exact_pair_probabilities(candidates, share).items():
            for k in pair:
                by_enumeration[k] += p
        assert shares == pytest.approx(dict(by_enumeration), rel=1e-9)
        assert math.fsum(shares.values()) == pytest.approx(2)


def test_two_codename_models_never_meet():
    candidates = [
        Candidate("listed", 1.0),
        Candidate("other-listed", 1.0),
        Candidate("new-1", 5.0, frozenset({"new-2", "listed"}), codename=True),
        Candidate("new-2", 5.0, codename=True),
    ]
    draws = draw_many(candidates, 0.5, seed=21)
    assert not any({"new-1", "new-2"} == set(pair) for pair in draws)
    assert_matches_exact(draws, candidates, 0.5)
    # new-1's only eligible target is "listed": at full target share it always meets it.
    first_new_1 = [pair for pair in draw_many(candidates, 1.0, seed=22, n=5000) if "new-1" in pair]
    assert {frozenset(pair) for pair in first_new_1} <= {
        frozenset({"new-1", "listed"}),
        frozenset({"new-1", "other-listed"}),
    }


def test_models_all_under_codenames_cannot_make_a_battle():
    candidates = [Candidate("new-1", 1.0, codename=True), Candidate("new-2", 1.0, codename=True)]
    with pytest.raises(NotEnoughModels):
        choose_pair(candidates, random.Random(), target_share=0.5)
    with pytest.raises(NotEnoughModels):
        expected_shares(candidates, target_share=0.5)
    # One visible model is enough: it meets each of them.
    pairs = {frozenset(p) for p in draw_many([*candidates, Candidate("listed", 1.0)], 0.5, seed=2, n=300)}
    assert pairs == {frozenset({"new-1", "listed"}), frozenset({"new-2", "listed"})}


def test_the_same_seed_draws_the_same_pairs():
    candidates = [Candidate(k, w) for k, w in zip("abcd", [1, 2, 3, 4], strict=True)]
    assert draw_many(candidates, 0.5, seed=5, n=200) == draw_many(candidates, 0.5, seed=5, n=200)


@pytest.mark.parametrize("count", [0, 1])
def test_it_refuses_to_draw_from_fewer_than_two_models(count):
    candidates = [Candidate("only", 1.0)][:count]
    with pytest.raises(NotEnoughModels, match=f"needs two models in the pool; {count} available") as caught:
        choose_pair(candidates, random.Random(), target_share=0.5)
    assert caught.value.available == count
    with pytest.raises(NotEnoughModels):
        expected_shares(candidates, target_share=0.5)


@pytest.mark.parametrize(
    ("candidates", "share", "message"),
    [
        ([Candidate("a", 0.0), Candidate("b", 1.0)], 0.5, "'a' has weight 0.0; weights must be above 0"),
        ([Candidate("a", -1.0), Candidate("b", 1.0)], 0.5, "weights must be above 0"),
        ([Candidate("a", math.nan), Candidate("b", 1.0)], 0.5, "weights must be above 0"),
        ([Candidate("a", math.inf), Candidate("b", 1.0)], 0.5, "weights must be above 0"),
        ([Candidate("a", 1.0), Candidate("a", 1.0)], 0.5, "'a' is listed twice"),
        ([Candidate("a", 1.0), Candidate("b", 1.0)], 1.5, "from 0 to 1, got 1.5"),
        ([Candidate("a", 1.0), Candidate("b", 1.0)], -0.1, "from 0 to 1"),
    ],
)
def test_it_rejects_bad_input_with_a_clear_error(candidates, share, message):
    with pytest.raises(ValueError, match=message):
        choose_pair(candidates, random.Random(), target_share=share)
    with pytest.raises(ValueError, match=message):
        expected_shares(candidates, target_share=share)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ARENA_BATTLE_TARGET_SHARE", "1.5", "ARENA_BATTLE_TARGET_SHARE must be from 0 to 1, got 1.5"),
        ("ARENA_BATTLE_TARGET_SHARE", "half", "ARENA_BATTLE_TARGET_SHARE must be a number, got 'half'"),
        ("ARENA_NEW_MODEL_BOOST", "0", "ARENA_NEW_MODEL_BOOST must be above 0, got 0.0"),
        ("ARENA_NEW_MODEL_BOOST", "nan", "ARENA_NEW_MODEL_BOOST must be above 0, got nan"),
        ("ARENA_NEW_MODEL_BOOST_VOTES", "-1", "ARENA_NEW_MODEL_BOOST_VOTES must be 0 or more, got -1"),
    ],
)
def test_malformed_sampling_settings_stop_the_start(variable, value, message):
    env = {**os.environ, "SECRET_KEY": "x", variable: value}
    result = subprocess.run(
        [sys.executable, "-c", "import arenasite.settings"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert message in result.stderr


# -- the pool as stored ------------------------------------------------------------------------


@pytest.fixture
def assorted_pool(provider_a):
    """One model per reason to be in or out of the pool, named after it."""
    now = clock.now()
    return {
        "initial": make_model(provider_a, S.INITIAL_RATING, name="initial", **ENDPOINT),
        "listed": make_model(provider_a, S.LISTED, name="listed", **ENDPOINT),
        "demo-listed": make_model(provider_a, S.LISTED, name="demo-listed", is_demo=True),
        "demo-initial": make_model(provider_a, S.INITIAL_RATING, name="demo-initial", is_demo=True),
        "imported": make_model(provider_a, S.LISTED, name="imported"),
        "no-model-id": make_model(
            provider_a, S.LISTED, name="no-model-id", endpoint_base_url="https://api.example.com/v1"
        ),
        "offline": make_model(provider_a, S.LISTED, name="offline", endpoint_offline_since=now, **ENDPOINT),
        "offline-initial": make_model(
            provider_a, S.INITIAL_RATING, name="offline-initial", endpoint_offline_since=now, **ENDPOINT
        ),
        "retired": make_model(provider_a, S.RETIRED, name="retired", **ENDPOINT),
        "withdrawn": make_model(provider_a, S.WITHDRAWN, name="withdrawn", **ENDPOINT),
        "submitted": make_model(provider_a, S.SUBMITTED, name="submitted", **ENDPOINT),
        "rejected": make_model(provider_a, S.REJECTED, name="rejected", **ENDPOINT),
        "draft": make_model(provider_a, S.DRAFT, name="draft", **ENDPOINT),
    }


def test_the_pool_holds_answerable_models_in_initial_rating_or_listed(assorted_pool):
    assert sorted(m.name for m in sampleable_models()) == ["demo-initial", "demo-listed", "initial", "listed"]
    assert sorted(m.name for m in load_pool().models.values()) == ["demo-initial", "demo-listed", "initial", "listed"]


def test_a_model_whose_endpoint_comes_back_returns_to_the_pool(assorted_pool):
    ArenaModel.objects.filter(name="offline").update(endpoint_offline_since=None)
    assert "offline" in {m.name for m in sampleable_models()}


def test_the_pool_carries_effective_weights(provider_a):
    fresh = make_model(provider_a, S.INITIAL_RATING, votes=2999, sampling_weight=2.0, **ENDPOINT)
    rated = make_model(provider_a, S.INITIAL_RATING, votes=3000, sampling_weight=2.0, **ENDPOINT)
    listed = make_model(provider_a, S.LISTED, votes=0, sampling_weight=0.5, **ENDPOINT)

    weights = {c.key: c.weight for c in load_pool().candidates}

    assert weights == {fresh.pk: 10.0, rated.pk: 2.0, listed.pk: 0.5}


@override_settings(ARENA_NEW_MODEL_BOOST=2.5, ARENA_NEW_MODEL_BOOST_VOTES=10)
def test_the_boost_and_its_threshold_come_from_the_settings(provider_a):
    fresh = make_model(provider_a, S.INITIAL_RATING, votes=9, **ENDPOINT)
    rated = make_model(provider_a, S.INITIAL_RATING, votes=10, **ENDPOINT)

    assert model_weight(fresh) == 2.5
    assert model_weight(rated) == 1.0


def test_the_boost_ends_when_the_rating_run_counts_enough_votes(provider_a):
    model = make_model(provider_a, S.INITIAL_RATING, votes=100, **ENDPOINT)
    make_model(provider_a, S.LISTED, **ENDPOINT)
    assert {c.key: c.weight for c in load_pool().candidates}[model.pk] == 5.0

    ArenaModel.objects.filter(pk=model.pk).update(votes_counted=3000)

    assert {c.key: c.weight for c in load_pool().candidates}[model.pk] == 1.0


@override_settings(ARENA_BATTLE_TARGET_SHARE=1.0)
def test_the_pool_carries_battle_targets_and_uses_only_those_in_the_pool(assorted_pool):
    new, listed, demo = assorted_pool["initial"], assorted_pool["listed"], assorted_pool["demo-listed"]
    new.battle_targets.add(listed, assorted_pool["retired"], assorted_pool["offline"])

    pool = load_pool()
    exact = exact_pair_probabilities(pool.candidates, 1.0)

    # Weights: both models in initial rating 5 (boosted), the two listed ones 1; 12 in all.
    # Drawn first, the new model always meets its one eligible target; drawn second, by chance.
    assert exact[frozenset({new.pk, listed.pk})] == pytest.approx(5 / 12 + 1 / 12 * 5 / 11)
    assert exact[frozenset({new.pk, demo.pk})] == pytest.approx(1 / 12 * 5 / 11)
    # Targets are one-way: the listed model has none of its own.
    assert {c.key: c.targets for c in pool.candidates}[listed.pk] == frozenset()


def test_the_pool_draws_models_with_the_documented_shares(assorted_pool):
    assorted_pool["initial"].battle_targets.add(assorted_pool["listed"])
    pool = load_pool()
    rng = random.Random(21)

    draws = [pool.draw(rng) for _ in range(DRAWS)]

    assert all(isinstance(m, ArenaModel) for pair in draws for m in pair)
    assert all(a.pk != b.pk for a, b in draws)
    shares = pool.expected_shares()
    assert sum(shares.values()) == pytest.approx(2)
    in_battle = Counter(m for pair in draws for m in pair)
    for model, p in shares.items():
        assert abs(in_battle[model] / DRAWS - p) <= tolerance(p), (model.name, in_battle[model] / DRAWS, p)
    assert_matches_exact([(a.pk, b.pk) for a, b in draws], pool.candidates, 0.5)


def test_sample_pair_reads_the_pool_and_draws_two_different_models(assorted_pool):
    a, b = sample_pair(random.Random(3))
    assert a != b
    assert {a.name, b.name} <= {"initial", "listed", "demo-listed", "demo-initial"}
    a, b = sample_pair()  # the system generator
    assert a != b


def test_sample_pair_refuses_with_a_clear_error_when_fewer_than_two_models_can_be_drawn(provider_a):
    with pytest.raises(NotEnoughModels, match="0 available"):
        sample_pair()
    make_model(provider_a, S.LISTED, **ENDPOINT)
    make_model(provider_a, S.LISTED, name="history")  # imported: no endpoint, never drawn
    make_model(provider_a, S.LISTED, endpoint_offline_since=clock.now(), **ENDPOINT)
    with pytest.raises(NotEnoughModels, match="1 available"):
        sample_pair()
    with pytest.raises(NotEnoughModels):
        load_pool().expected_shares()


def test_the_pool_reads_in_two_queries(provider_a, django_assert_num_queries):
    models = [make_model(provider_a, S.LISTED, **ENDPOINT) for _ in range(6)]
    for model in models[:3]:
        model.battle_targets.add(*models[3:])
    with django_assert_num_queries(2):
        pool = load_pool()
    assert isinstance(pool, ArenaPool)
    assert len(pool.candidates) == 6


# -- staff set weights and targets ------------------------------------------------------------


def test_the_weight_must_be_above_zero(provider_a):
    model = make_model(provider_a, S.LISTED, **ENDPOINT)
    for bad in (0.0, -1.0):
        model.sampling_weight = bad
        with pytest.raises(ValidationError, match="sampling weight must be above 0"):
            model.full_clean()


def test_a_model_cannot_target_itself(provider_a):
    model = make_model(provider_a, S.INITIAL_RATING, **ENDPOINT)
    data = {**ArenaModelForm(instance=model).initial, "battle_targets": [model.pk], "sampling_weight": 1}
    form = ArenaModelForm(data, instance=model)
    assert not form.is_valid()
    assert form.errors["battle_targets"] == ["A model cannot be its own battle target."]


def test_staff_set_the_weight_and_targets_in_the_admin(admin_client, provider_a):
    new = make_model(provider_a, S.INITIAL_RATING, **ENDPOINT)
    rival = make_model(provider_a, S.LISTED, **ENDPOINT)
    url = reverse("admin:providers_arenamodel_change", args=[new.pk])
    html = admin_client.get(url).content.decode()
    assert 'name="sampling_weight"' in html
    assert 'name="battle_targets"' in html

    response = admin_client.post(url, change_form_data(new, sampling_weight="2.5", battle_targets=[rival.pk]))

    assert response.status_code == 302, response.context["adminform"].form.errors
    new.refresh_from_db()
    assert new.sampling_weight == 2.5
    assert list(new.battle_targets.all()) == [rival]
    assert list(rival.targeted_by.all()) == [new]
    assert list(rival.battle_targets.all()) == []  # not symmetrical


def test_the_admin_refuses_a_zero_weight_with_the_reason(admin_client, provider_a):
    model = make_model(provider_a, S.LISTED, **ENDPOINT)
    url = reverse("admin:providers_arenamodel_change", args=[model.pk])

    response = admin_client.post(url, change_form_data(model, sampling_weight="0"))

    assert response.status_code == 200
    assert "The sampling weight must be above 0" in response.content.decode()
    model.refresh_from_db()
    assert model.sampling_weight == 1.0


# -- served shares -----------------------------------------------------------------------------


def served(day) -> dict[str, int]:
    return {s.arena_model.name: s.battles for s in SamplingShare.objects.filter(day=day).select_related("arena_model")}


def test_record_served_counts_each_battle_for_both_models_per_day(provider_a):
    a = make_model(provider_a, S.LISTED, name="a", **ENDPOINT)
    b = make_model(provider_a, S.LISTED, name="b", **ENDPOINT)
    c = make_model(provider_a, S.LISTED, name="c", **ENDPOINT)
    today, tomorrow = date(2026, 3, 1), date(2026, 3, 2)

    record_served(a, b, today)
    record_served(b, a, today)  # sides do not matter
    record_served(a, c, today)
    record_served(c, b, tomorrow)

    assert served(today) == {"a": 3, "b": 2, "c": 1}
    assert served(tomorrow) == {"b": 1, "c": 1}
    # Half the sum of a day's rows is its number of battles.
    assert sum(served(today).values()) // 2 == 3


def test_record_served_refuses_a_self_battle_and_a_datetime(provider_a):
    a = make_model(provider_a, S.LISTED, **ENDPOINT)
    b = make_model(provider_a, S.LISTED, **ENDPOINT)
    with pytest.raises(ValueError, match="two different models"):
        record_served(a, a, date(2026, 3, 1))
    with pytest.raises(TypeError, match="day must be a date"):
        record_served(a, b, datetime(2026, 3, 1, 12))
    with pytest.raises(TypeError, match="day must be a date"):
        record_served(a, b, "2026-03-01")
    assert not SamplingShare.objects.exists()


def test_served_counts_match_the_expected_shares_over_a_day(assorted_pool):
    """What the transparency page will compare: counts recorded per day against the expected shares."""
    pool = load_pool()
    rng = random.Random(8)
    day = date(2026, 3, 1)
    n = 400
    for _ in range(n):
        record_served(*pool.draw(rng), day)

    counts = {s.arena_model_id: s.battles for s in SamplingShare.objects.filter(day=day)}
    assert sum(counts.values()) == 2 * n
    for model, p in pool.expected_shares().items():
        assert abs(counts[model.pk] / n - p) <= tolerance(p, n)


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL")
def test_concurrent_writers_lose_no_increment(provider_a):
    a = make_model(provider_a, S.LISTED, name="a", **ENDPOINT)
    b = make_model(provider_a, S.LISTED, name="b", **ENDPOINT)
    c = make_model(provider_a, S.LISTED, name="c", **ENDPOINT)
    day = clock.now().date() + timedelta(days=1)
    # Three writers start together, before any row exists, so they also race to insert it;
    # two serve the same pair on opposite sides, which must not deadlock.
    plans = [(a, b), (b, a), (a, c)]
    rounds = 40
    start = threading.Barrier(len(plans))
    errors = []

    def serve(pair):
        try:
            start.wait(10)
            for _ in range(rounds):
                record_served(*pair, day)
        except Exception as exc:  # handed back to the test
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=serve, args=(pair,)) for pair in plans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    assert served(day) == {"a": 3 * rounds, "b": 2 * rounds, "c": rounds}


def test_weights_from_enumeration_match_itertools_pairs():
    """A guard on the enumeration helper itself: with equal weights every pair is equally likely."""
    candidates = [Candidate(k, 1.0) for k in "abcd"]
    exact = exact_pair_probabilities(candidates, 0.5)
    assert set(exact) == {frozenset(p) for p in itertools.combinations("abcd", 2)}
    assert all(p == pytest.approx(1 / 6) for p in exact.values())

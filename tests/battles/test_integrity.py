"""The per-voter sequential test (battles/integrity.py) on hand-made voters: pure arrays, no database."""

from __future__ import annotations

import math

import numpy as np
import pytest

from battles.integrity import LEVELS, _log_factors, sequential_test

# Model 0 is the crowd's favourite against model 1: of every 10 votes, 7 for 0, 1 tie, 2 for 1.
CROWD = ["model_a"] * 7 + ["tie"] + ["model_b"] * 2


def crowd_votes(voters: range, rounds: int = 3):
    """Honest voters, each voting the pair's distribution exactly, half of the time with sides swapped."""
    rows = []
    for voter in voters:
        for r in range(rounds):
            for i, winner in enumerate(CROWD):
                if (i + r + voter) % 2:  # model 0 shown on the right: mirror the vote
                    winner = {"model_a": "model_b", "model_b": "model_a"}.get(winner, winner)
                    rows.append((voter, 1, 0, LEVELS[winner]))
                else:
                    rows.append((voter, 0, 1, LEVELS[winner]))
    return rows


def run(rows, **options):
    voter, a, b, level = (np.array(column) for column in zip(*rows, strict=True))
    return sequential_test(voter, a, b, level, **options)


def result_of(result, voter: int) -> dict:
    (index,) = np.flatnonzero(result.voters == voter)
    return {
        "flagged": bool(result.flagged[index]),
        "votes": int(result.votes[index]),
        "statistic": float(result.statistic[index]),
        "direction": str(result.direction[index]),
    }


def test_an_honest_voter_is_not_flagged():
    rows = crowd_votes(range(40))
    result = run(rows)
    assert len(result.voters) == 40
    assert not result.flagged.any()
    assert result_of(result, 0)["votes"] == 30


def test_a_voter_who_always_votes_against_the_population_is_flagged():
    rows = crowd_votes(range(40))
    # Voter 99 always picks model 1, the one the crowd prefers less, on whichever side it is shown.
    rows += [(99, 0, 1, LEVELS["model_b"]) if i % 2 else (99, 1, 0, LEVELS["model_a"]) for i in range(12)]
    found = result_of(run(rows), 99)
    assert found["flagged"] and found["direction"] == "against"
    assert found["statistic"] >= 20  # 1/alpha


def test_a_voter_who_always_votes_with_the_crowd_is_flagged_in_the_other_direction():
    # On a close pair (4 : 3 : 3), always siding with the favourite is itself unusual. (With
    # the favourite at half the votes or more it is not: p = 1/2 and 1/(2p) = 1, no evidence.)
    close = ["model_a"] * 4 + ["tie"] * 3 + ["model_b"] * 3
    rows = [(voter, 0, 1, LEVELS[w]) for voter in range(40) for w in close * 3]
    rows += [(99, 0, 1, LEVELS["model_a"])] * 40
    found = result_of(run(rows), 99)
    assert found["flagged"] and found["direction"] == "with"


def test_voters_with_fewer_than_five_votes_are_not_tested():
    rows = crowd_votes(range(40))
    rows += [(98, 1, 0, LEVELS["model_a"])] * 4 + [(99, 1, 0, LEVELS["model_a"])] * 5
    result = run(rows)
    assert 98 not in result.voters
    assert 99 in result.voters


def test_only_the_first_hundred_votes_are_tested():
    rows = crowd_votes(range(40))
    honest_then_contrarian = crowd_votes(range(99, 100), rounds=10)  # 100 honest votes
    honest_then_contrarian += [(99, 1, 0, LEVELS["model_a"])] * 50
    found = result_of(run(rows + honest_then_contrarian), 99)
    assert not found["flagged"] and found["votes"] == 100
    # The same contrarian votes first are caught.
    result = run(rows + honest_then_contrarian[100:] + honest_then_contrarian[:100])
    assert result_of(result, 99)["flagged"]


def test_the_voter_is_left_out_of_the_reference_distribution():
    # A voter alone on a pair (models 2 and 3) has nobody to be compared with: no evidence.
    rows = crowd_votes(range(40)) + [(99, 2, 3, LEVELS["model_a"])] * 50
    found = result_of(run(rows), 99)
    assert not found["flagged"] and found["statistic"] == 1.0


def test_votes_outside_the_population_are_tested_but_not_compared_with():
    rows = crowd_votes(range(40)) + [(99, 1, 0, LEVELS["model_a"])] * 12
    population = np.array([voter != 99 for voter, *_ in rows])
    assert result_of(run(rows, population=population), 99)["flagged"]
    # With nobody in the population, nobody can be flagged.
    assert not run(rows, population=np.zeros(len(rows), dtype=bool)).flagged.any()


def test_alpha_sets_the_threshold():
    rows = crowd_votes(range(40)) + [(99, 1, 0, LEVELS["model_a"])] * 3 + crowd_votes(range(99, 100))[:3]
    statistic = result_of(run(rows), 99)["statistic"]
    assert result_of(run(rows, alpha=min(0.99, 1.01 / statistic)), 99)["flagged"]
    assert not result_of(run(rows, alpha=0.99 / statistic), 99)["flagged"]


@pytest.mark.parametrize(
    "q",
    [(0.1, 0.3, 0.6), (0.1, 0.4, 0.5), (0.3, 0.4, 0.3), (0.02, 0.9, 0.08), (0.49, 0.02, 0.49), (0.0, 0.5, 0.5)],
)
def test_each_factor_has_expectation_at_most_one_under_the_null(q):
    """What Ville's inequality needs: a vote drawn from the pair's own distribution adds no evidence on average."""
    counts = np.array([[round(x * 1000) for x in q]] * 3)
    for log_factors in _log_factors(counts, np.array([0, 1, 2])):
        expectation = sum(qi * math.exp(f) for qi, f in zip(q, log_factors, strict=True))
        assert expectation <= 1 + 1e-9


def test_honest_bradley_terry_voters_are_rarely_flagged():
    """Simulated honest voters: the flagged share stays under 2 alpha, Ville's bound for two directions."""
    rng = np.random.default_rng(7)
    n, models = 60_000, 8
    strength = rng.normal(0, 0.8, models)
    a = rng.integers(0, models, n)
    b = (a + rng.integers(1, models, n)) % models
    p_a = 1 / (1 + np.exp(strength[b] - strength[a]))
    tie = rng.random(n) < 0.15
    level = np.where(tie, 1, np.where(rng.random(n) < p_a, 2, 0))
    voter = rng.integers(0, 3_000, n)
    result = sequential_test(voter, a, b, level, alpha=0.05)
    assert len(result.voters) > 2_500
    assert result.flagged.mean() < 0.1


def test_voter_order_does_not_matter_only_each_voters_own():
    rows = crowd_votes(range(40)) + [(99, 1, 0, LEVELS["model_a"])] * 12
    renamed = [(1000 - voter, a, b, level) for voter, a, b, level in rows]
    first, second = run(rows), run(renamed)
    assert sorted(first.statistic.tolist()) == pytest.approx(sorted(second.statistic.tolist()))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"alpha": 0}, "alpha"),
        ({"alpha": 1.5}, "alpha"),
        ({"min_votes": 0}, "min_votes"),
        ({"min_votes": 10, "max_votes": 5}, "min_votes"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        run(crowd_votes(range(2)), **options)


def test_bad_votes_are_refused():
    with pytest.raises(ValueError, match="level"):
        sequential_test([0], [0], [1], [3])
    with pytest.raises(ValueError, match="same length"):
        sequential_test([0, 1], [0], [1], [2])
    with pytest.raises(ValueError, match="two different models"):
        sequential_test([0], [1], [1], [2])


def test_no_votes_no_voters():
    result = sequential_test([], [], [], [])
    assert len(result.voters) == 0 and len(result.flagged) == 0

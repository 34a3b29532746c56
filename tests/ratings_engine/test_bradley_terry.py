"""The Bradley-Terry ratings against known answers: hand-computable cases, an independent
solver (choix), and coverage of their confidence intervals on data simulated from known
strengths. No database: the engine is pure numpy/pandas/scipy."""

import json
import math

import choix
import numpy as np
import pandas as pd
import pytest

from ratings_engine import bootstrap
from ratings_engine.bradley_terry import compute_ratings, rank_by_intervals
from ratings_engine.counts import aggregate
from ratings_engine.elo import online_elo
from ratings_engine.likelihood import DisconnectedComparisons

from .simulated import counts, simulate

ELO = 400 / math.log(10)  # Elo points per unit of theta


def ratings(frame, **options):
    options.setdefault("bootstrap_rounds", 0)
    return compute_ratings(frame, **options).ratings["rating"]


def test_it_puts_two_wins_to_one_at_scale_log10_2_apart_around_init():
    r = ratings(counts(("A", "B", "model_a", 2), ("A", "B", "model_b", 1)))
    assert r["A"] - r["B"] == pytest.approx(400 * math.log10(2), abs=1e-9)
    assert r.mean() == pytest.approx(1000, abs=1e-9)
    assert list(r.index) == ["A", "B"]


def test_it_fits_each_pair_of_a_tree_exactly():
    # With no cycle, the maximum likelihood matches each pair's observed odds exactly.
    r = ratings(
        counts(("A", "B", "model_a", 2), ("A", "B", "model_b", 1), ("C", "B", "model_b", 6), ("C", "B", "model_a", 3))
    )
    step = 400 * math.log10(2)
    assert r.to_dict() == pytest.approx({"A": 1000 + step, "B": 1000, "C": 1000 - step}, abs=1e-9)


def test_it_uses_scale_base_and_init():
    r = ratings(counts(("A", "B", "model_a", 2), ("A", "B", "model_b", 1)), scale=1, base=math.e, init=0)
    assert r.to_dict() == pytest.approx({"A": math.log(2) / 2, "B": -math.log(2) / 2}, abs=1e-12)


def test_it_counts_a_tie_as_half_a_win_each_way():
    with_ties = ratings(counts(("A", "B", "model_a", 3), ("A", "B", "tie", 2), ("A", "B", "tie (bothbad)", 2)))
    as_halves = ratings(counts(("A", "B", "model_a", 5), ("A", "B", "model_b", 2)))
    assert with_ties.to_numpy() == pytest.approx(as_halves.to_numpy(), abs=1e-9)


def test_it_rates_everyone_init_when_every_vote_is_a_tie():
    table = compute_ratings(
        counts(("A", "B", "tie", 5), ("B", "C", "tie (bothbad)", 2), ("C", "A", "tie", 1)), bootstrap_rounds=50
    )
    assert table.ratings["rating"].to_numpy() == pytest.approx([1000, 1000, 1000], abs=1e-9)
    assert (table.ratings["rank"] == 1).all()


def test_it_gives_the_same_table_when_sides_and_outcomes_are_swapped():
    frame, _ = simulate(np.random.default_rng(5), np.array([1100, 1050, 1000, 900]), 30, 0.3)
    swap = {"model_a": "model_b", "model_b": "model_a", "tie": "tie", "tie (bothbad)": "tie (bothbad)"}
    swapped = frame.rename(columns={"model_a": "model_b", "model_b": "model_a"}).assign(
        winner=frame["winner"].map(swap)
    )
    pd.testing.assert_frame_equal(
        compute_ratings(frame, bootstrap_rounds=100).ratings, compute_ratings(swapped, bootstrap_rounds=100).ratings
    )


def test_it_names_the_groups_of_a_disconnected_comparison_graph():
    frame = counts(("A", "B", "model_a", 3), ("B", "C", "tie", 1), ("D", "E", "model_b", 2), ("F", "G", "model_a", 0))
    with pytest.raises(DisconnectedComparisons) as caught:
        compute_ratings(frame)
    assert caught.value.components == [["A", "B", "C"], ["D", "E"]]  # F and G have no counted vote
    assert "2 groups" in str(caught.value) and "[A, B, C]; [D, E]" in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_it_matches_an_independent_solver_within_a_hundredth_of_an_elo_point():
    worst = 0.0
    for seed in range(5):
        rng = np.random.default_rng(seed)
        m = 12
        elo = rng.normal(1000, 150, m)
        # Uneven and partly missing pairs: some pairs are never compared, others have hundreds of votes.
        votes = np.where(rng.random((m, m)) < 0.7, rng.integers(1, 400, (m, m)), 0)
        frame, _ = simulate(rng, elo, votes, 0.35)
        table = compute_ratings(frame, bootstrap_rounds=0)
        assert table.parameters["corrected_pairs"] == []  # the MLE exists: nothing to correct

        names = sorted(set(frame["model_a"]) | set(frame["model_b"]))
        index = {name: k for k, name in enumerate(names)}
        wins = np.zeros((len(names), len(names)))  # wins[i, j]: times i beat j, a tie as half a win each way
        for a, b, winner, n in frame.itertuples(index=False):
            score = {"model_a": 1.0, "model_b": 0.0}.get(winner, 0.5)
            wins[index[a], index[b]] += n * score
            wins[index[b], index[a]] += n * (1 - score)
        theta = choix.ilsr_pairwise_dense(wins, alpha=0.0, max_iter=100_000, tol=1e-13)
        expected = pd.Series(ELO * (theta - theta.mean()) + 1000, index=names)

        worst = max(worst, (table.ratings["rating"] - expected).abs().max())
    assert worst < 0.01


def test_it_reproduces_the_bootstrap_for_the_same_seed():
    frame, _ = simulate(np.random.default_rng(11), np.array([1200, 1100, 1000, 1000, 900]), 20, 0.35)
    first = compute_ratings(frame, bootstrap_rounds=200, seed=7)
    again = compute_ratings(frame, bootstrap_rounds=200, seed=7)
    other = compute_ratings(frame, bootstrap_rounds=200, seed=8)
    pd.testing.assert_frame_equal(first.ratings, again.ratings)
    assert first.parameters == again.parameters == json.loads(json.dumps(first.parameters))
    assert not np.allclose(first.ratings["ci_lower"], other.ratings["ci_lower"])
    assert (first.ratings["ci_lower"] < first.ratings["rating"]).all()
    assert (first.ratings["rating"] < first.ratings["ci_upper"]).all()


def test_the_bootstrap_does_not_depend_on_the_threads_it_runs_on(monkeypatch):
    # Each batch draws from a generator spawned for it, so batches can run in any order.
    frame, _ = simulate(np.random.default_rng(12), np.array([1200, 1100, 1000, 900]), 30, 0.3)
    monkeypatch.setattr(bootstrap, "BATCH_PAIR_ROUNDS", 60)  # 10 rounds a batch
    one = compute_ratings(frame, bootstrap_rounds=100, seed=3, threads=1)
    two = compute_ratings(frame, bootstrap_rounds=100, seed=3, threads=2)
    pd.testing.assert_frame_equal(one.ratings, two.ratings)


def test_it_shifts_to_the_anchor_and_measures_intervals_against_it():
    frame, _ = simulate(np.random.default_rng(3), np.array([1150, 1000, 950, 900]), 40, 0.2)
    centred = compute_ratings(frame, bootstrap_rounds=100).ratings
    anchored = compute_ratings(frame, bootstrap_rounds=100, anchor=("m2", 1200.0)).ratings
    assert anchored.loc["m2", "rating"] == 1200.0
    shift = 1200.0 - centred.loc["m2", "rating"]
    assert anchored["rating"].to_numpy() == pytest.approx((centred["rating"] + shift).to_numpy(), abs=1e-9)
    # The anchor is fixed by definition, so its own intervals are a point.
    for column in ["ci_lower", "ci_upper", "sandwich_lower", "sandwich_upper"]:
        assert anchored.loc["m2", column] == pytest.approx(1200.0, abs=1e-9)
    with pytest.raises(ValueError, match="'nobody'"):
        compute_ratings(frame, anchor=("nobody", 1000.0))


def test_it_ranks_by_the_number_of_models_surely_better():
    lower = [1100, 1080, 1050, 990, 900]
    upper = [1150, 1120, 1095, 1060, 1000]
    # 1080 > 1060 and 1100 > 1060: two models are above the fourth's interval.
    assert rank_by_intervals(lower, upper).tolist() == [1, 1, 2, 3, 4]


def test_it_ranks_the_table_with_the_bootstrap_interval():
    frame, _ = simulate(np.random.default_rng(9), np.array([1300, 1250, 1000, 990, 700]), 60, 0.3)
    table = compute_ratings(frame, bootstrap_rounds=200).ratings
    expected = [1 + int((table["ci_lower"] > upper).sum()) for upper in table["ci_upper"]]
    assert table["rank"].tolist() == expected
    assert table["rank"].iloc[0] == 1 and table["rank"].iloc[-1] > table["rank"].iloc[2]


def test_it_rejects_an_unknown_winner_naming_it():
    frame = counts(("A", "B", "model_a", 2), ("A", "B", "bothbad", 1))
    with pytest.raises(ValueError, match="'bothbad'"):
        compute_ratings(frame)
    with pytest.raises(ValueError, match="'bothbad'"):
        aggregate(frame.drop(columns="n"))
    with pytest.raises(ValueError, match="'bothbad'"):
        online_elo(frame.drop(columns="n"))


def test_it_rejects_an_empty_table_and_ignores_rows_without_votes():
    with pytest.raises(ValueError, match="No votes to rate"):
        compute_ratings(counts())
    with pytest.raises(ValueError, match="No votes to rate"):
        compute_ratings(counts(("A", "B", "model_a", 0)))
    with_zeros = compute_ratings(
        counts(("A", "B", "model_a", 2), ("A", "B", "model_b", 1), ("A", "Z", "model_a", 0)), bootstrap_rounds=0
    )
    assert list(with_zeros.ratings.index) == ["A", "B"]  # Z has no counted vote, so it is not rated
    assert with_zeros.total_votes == 3


def test_it_rejects_a_model_battling_itself_and_negative_counts():
    with pytest.raises(ValueError, match="itself"):
        compute_ratings(counts(("A", "A", "model_a", 1), ("A", "B", "tie", 1)))
    with pytest.raises(ValueError, match=">= 0"):
        compute_ratings(counts(("A", "B", "model_a", -1)))


def test_it_fits_an_unbeaten_model_as_if_one_tie_were_added_to_its_pairs():
    # 5-0: the likelihood grows without bound as A's rating does. One virtual tie on the pair
    # makes it 5.5-0.5, so A is 400 log10(11) above B.
    table = compute_ratings(counts(("A", "B", "model_a", 5)), bootstrap_rounds=100)
    r = table.ratings["rating"]
    assert r["A"] - r["B"] == pytest.approx(400 * math.log10(11), abs=1e-9)
    assert table.parameters["corrected_pairs"] == [["A", "B"]]
    assert np.isfinite(table.ratings.to_numpy(dtype=float)).all()

    # A newcomer that won all its votes against a well-connected field: only its own pairs
    # get the tie, and the fit is the plain MLE of the data with those ties added.
    field = counts(
        ("A", "B", "model_a", 6),
        ("A", "B", "model_b", 4),
        ("B", "C", "model_a", 5),
        ("B", "C", "tie", 5),
        ("C", "A", "model_a", 3),
        ("C", "A", "model_b", 7),
    )
    newcomer = pd.concat([field, counts(("N", "A", "model_a", 4), ("B", "N", "model_b", 2))])
    with_ties = pd.concat([newcomer, counts(("N", "A", "tie", 1), ("B", "N", "tie", 1))])
    corrected = compute_ratings(newcomer, bootstrap_rounds=0)
    assert corrected.parameters["corrected_pairs"] == [["A", "N"], ["B", "N"]]
    assert ratings(newcomer).to_numpy() == pytest.approx(ratings(with_ties).to_numpy(), abs=1e-9)
    assert ratings(newcomer).index[0] == "N"
    # The votes column counts real votes only.
    assert corrected.ratings.loc["N", "votes"] == 6 and corrected.total_votes == 36


def test_it_bootstraps_a_model_with_a_couple_of_votes():
    # Resamples often drop one or both of the newcomer's votes; the virtual-tie rule keeps
    # every round finite, and the newcomer's interval is the widest by far.
    frame, _ = simulate(np.random.default_rng(4), np.array([1100.0, 1000, 950, 900]), 40, 0.3)
    frame = pd.concat([frame, counts(("new", "m0", "model_a", 1), ("m3", "new", "model_a", 1))])
    table = compute_ratings(frame, bootstrap_rounds=300)
    assert table.parameters["corrected_pairs"] == []
    assert table.parameters["bootstrap_corrected_rounds"] > 0
    assert np.isfinite(table.ratings.to_numpy(dtype=float)).all()
    width = table.ratings["ci_upper"] - table.ratings["ci_lower"]
    assert width.idxmax() == "new" and width["new"] > 2 * width.drop("new").max()


def test_it_leaves_data_with_a_finite_optimum_uncorrected():
    frame, _ = simulate(np.random.default_rng(2), np.array([1100, 1000, 900]), 50, 0.35)
    table = compute_ratings(frame, bootstrap_rounds=0)
    assert table.parameters["corrected_pairs"] == []


def test_it_gives_the_binomial_standard_error_as_the_sandwich_without_ties():
    # A beats B 30 times in 40: the MLE's p is 3/4, and the difference's variance is
    # 1 / (n p (1 - p)); each centred rating carries half the difference.
    table = compute_ratings(counts(("A", "B", "model_a", 30), ("A", "B", "model_b", 10)), bootstrap_rounds=0)
    se = ELO * math.sqrt(1 / (40 * 0.75 * 0.25)) / 2
    row = table.ratings.loc["A"]
    assert row["sandwich_upper"] - row["rating"] == pytest.approx(1.959963984540054 * se, rel=1e-9)
    assert table.parameters["rank_interval"] == "sandwich" and np.isnan(row["ci_lower"])


def test_it_covers_the_true_ratings_95_percent_of_the_time():
    rng = np.random.default_rng(2024)
    elo = np.array([1150.0, 1080, 1000, 980, 900])
    covered = {"bootstrap": 0, "sandwich": 0}
    reps = 200
    for rep in range(reps):
        frame, truth = simulate(rng, elo, 50, 0.35)
        table = compute_ratings(frame, bootstrap_rounds=200, seed=rep).ratings.loc[truth.index]
        covered["bootstrap"] += int(((table["ci_lower"] <= truth) & (truth <= table["ci_upper"])).sum())
        covered["sandwich"] += int(((table["sandwich_lower"] <= truth) & (truth <= table["sandwich_upper"])).sum())
    for method, hits in covered.items():
        # 1,000 intervals: the binomial sd of the rate is 0.007, so this band is about 7 sd wide each way.
        assert 0.90 <= hits / (reps * len(elo)) <= 0.99, (method, hits)

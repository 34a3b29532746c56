"""The rating engine against known answers: hand-computable cases, an independent solver
(choix), and coverage of its confidence intervals on data simulated from known strengths.
No database: leaderboard.ratings is pure numpy/pandas/scipy."""

import json
import math

import choix
import numpy as np
import pandas as pd
import pytest

from leaderboard import ratings as engine
from leaderboard.ratings import (
    DisconnectedComparisons,
    aggregate,
    compute_ratings,
    online_elo,
    rank_by_intervals,
)

ELO = 400 / math.log(10)  # Elo points per unit of theta


def counts(*rows):
    """counts(("A", "B", "model_a", 2), ...) -> a counts frame."""
    return pd.DataFrame(rows, columns=["model_a", "model_b", "winner", "n"])


def ratings(frame, **options):
    options.setdefault("bootstrap_rounds", 0)
    return compute_ratings(frame, **options).ratings["rating"]


def simulate(rng, elo, votes_per_pair, tie_rate):
    """Counts for every pair of models with true ratings `elo`. Ties are drawn so that the
    expected score stays sigmoid(d): P(win) = sigmoid(d) - t/2, P(tie) = t, P(loss) =
    1 - sigmoid(d) - t/2 (t is lowered for pairs too uneven to allow it). Then the
    Bradley-Terry fit with ties as half wins estimates the true ratings, whatever the tie rate."""
    names = [f"m{k}" for k in range(len(elo))]
    rows = []
    for a in range(len(elo)):
        for b in range(a + 1, len(elo)):
            p = 1 / (1 + 10 ** ((elo[b] - elo[a]) / 400))
            n = votes_per_pair if np.isscalar(votes_per_pair) else votes_per_pair[a, b]
            t = min(tie_rate, 1.5 * min(p, 1 - p))
            wins, ties, losses = rng.multinomial(n, [p - t / 2, t, 1 - p - t / 2])
            # Half the pairs are stored the other way round, as the arena shows them in either order.
            if rng.random() < 0.5:
                rows += [(names[a], names[b], "model_a", wins), (names[a], names[b], "model_b", losses)]
            else:
                rows += [(names[b], names[a], "model_b", wins), (names[b], names[a], "model_a", losses)]
            rows.append((names[a], names[b], rng.choice(["tie", "tie (bothbad)"]), ties))
    return counts(*rows), pd.Series(elo - np.mean(elo) + 1000, index=names)


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
    monkeypatch.setattr(engine, "BATCH_PAIR_ROUNDS", 60)  # 10 rounds a batch
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


def test_it_refits_bootstrap_rounds_to_the_same_optimum_as_full_newton():
    # The bootstrap's chord steps (and their hand-off to Newton for rounds that stall) are a
    # speed-up only: each round must land on its own maximum, as a cold Newton fit does.
    frame, _ = simulate(np.random.default_rng(6), np.array([1200.0, 1100, 1000, 980, 800]), 15, 0.35)
    frame = pd.concat([frame, counts(("new", "m1", "model_a", 2), ("new", "m4", "model_b", 1))])
    table = engine._Table.from_counts(frame)
    n, s = table.pair_totals(table.cell_n[None, :])
    theta = engine._fit(table, n, s, np.zeros((1, table.m)))[0]
    p = engine.expit(theta[table.pair_i] - theta[table.pair_j])
    inverse = np.linalg.pinv(table.laplacians(n * p * (1 - p))[0], hermitian=True)
    cell_n = engine._Resampler(table.cell_n).draw(np.random.default_rng(0), 200)  # rounds as columns
    n, s = table.cell_to_votes @ cell_n, table.cell_to_score @ cell_n
    virtual = table.virtual_ties_columns(n, s)
    assert virtual.any()  # some rounds need the correction, and so exercise the hand-off
    chord = engine._refit(table, n + virtual, s + virtual / 2, theta, inverse).T
    newton = engine._fit(table, (n + virtual).T, (s + virtual / 2).T, np.zeros((200, table.m)))
    assert np.abs(chord - newton).max() < 1e-8


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


def test_it_aggregates_votes_into_counts_that_rate_the_same():
    battles = pd.DataFrame(
        [
            ("A", "B", "model_a"),
            ("A", "B", "model_a"),
            ("B", "A", "tie"),
            ("A", "B", "model_b"),
            ("B", "C", "model_a"),
            ("C", "B", "model_a"),
            ("C", "B", "tie (bothbad)"),
        ],
        columns=["model_a", "model_b", "winner"],
    )
    aggregated = aggregate(battles)
    assert list(aggregated.columns) == ["model_a", "model_b", "winner", "n"]
    assert aggregated["n"].sum() == 7
    assert aggregated.set_index(["model_a", "model_b", "winner"])["n"][("A", "B", "model_a")] == 2
    assert list(aggregate(battles.iloc[:0]).columns) == ["model_a", "model_b", "winner", "n"]
    table = compute_ratings(aggregated, bootstrap_rounds=0)
    assert table.total_votes == 7
    assert table.ratings["votes"].to_dict() == {"A": 4, "B": 7, "C": 3}


def test_it_runs_fastchats_sequential_elo():
    battles = pd.DataFrame(
        [("A", "B", "model_a"), ("A", "B", "tie"), ("C", "A", "model_a")], columns=["model_a", "model_b", "winner"]
    )
    first = online_elo(battles.iloc[:1])
    assert first.to_dict() == pytest.approx({"A": 1002, "B": 998})

    # By hand, with FastChat's formulas: A 1002 v B 998 tie, then C 1000 beats A.
    ea = 1 / (1 + 10 ** ((998 - 1002) / 400))
    a, b = 1002 + 4 * (0.5 - ea), 998 + 4 * (0.5 - (1 - ea))
    ec = 1 / (1 + 10 ** ((a - 1000) / 400))
    expected = {"A": a - 4 * (1 - ec), "B": b, "C": 1000 + 4 * (1 - ec)}
    r = online_elo(battles)
    assert r.to_dict() == pytest.approx(expected, abs=1e-12)
    assert list(r.index) == sorted(expected, key=expected.get, reverse=True)
    assert online_elo(battles, k=32).loc["C"] > r.loc["C"]


def test_online_elo_continued_from_earlier_ratings_equals_one_pass():
    rng = np.random.default_rng(5)
    battles = pd.DataFrame(
        {
            "model_a": rng.choice(list("ABCD"), 300),
            "model_b": rng.choice(list("EFG"), 300),
            "winner": rng.choice(["model_a", "model_b", "tie", "tie (bothbad)"], 300),
        }
    )
    whole = online_elo(battles)
    continued = online_elo(battles.iloc[120:], initial=online_elo(battles.iloc[:120]).to_dict())
    assert continued.to_dict() == pytest.approx(whole.to_dict(), abs=1e-9)
    assert online_elo(battles.iloc[:0], initial={"A": 1010.0}).to_dict() == {"A": 1010.0}


def test_aggregate_counts_the_same_with_the_dense_and_the_sparse_count(monkeypatch):
    rng = np.random.default_rng(8)
    battles = pd.DataFrame(
        {
            "model_a": rng.choice(list("ABCDE"), 500),
            "model_b": rng.choice(list("VWXYZ"), 500),
            "winner": rng.choice(list(engine.SCORES), 500),
        }
    )
    expected = battles.groupby(["model_a", "model_b", "winner"]).size().rename("n")
    for limit in (engine.DENSE_COUNT_LIMIT, 0):
        monkeypatch.setattr(engine, "DENSE_COUNT_LIMIT", limit)
        counted = aggregate(battles).set_index(["model_a", "model_b", "winner"])["n"].sort_index()
        assert counted.equals(expected)


def test_the_resampler_draws_multinomial_resamples_with_the_exact_total():
    # Cells from one vote to tens of thousands, as in a real counts table.
    cell_n = np.array([1, 1, 2, 3, 7, 40, 300, 2_500, 30_000, 60_000])
    total = int(cell_n.sum())
    draws = engine._Resampler(cell_n).draw(np.random.default_rng(1), 20_000)
    assert draws.shape == (len(cell_n), 20_000)
    assert (draws.sum(axis=0) == total).all() and (draws == np.round(draws)).all() and (draws >= 0).all()
    p = cell_n / total
    # Means, variances and the negative covariance of the multinomial, within Monte Carlo error.
    assert (np.abs(draws.mean(axis=1) - total * p) <= 5 * np.sqrt(total * p * (1 - p) / 20_000)).all()
    assert draws.var(axis=1) / (total * p * (1 - p)) == pytest.approx(np.ones(len(cell_n)), abs=0.06)
    covariance = np.cov(draws[-1], draws[-2])[0, 1]
    assert covariance == pytest.approx(-total * p[-1] * p[-2], rel=0.06)
    # A one-vote cell is left out with probability (1 - 1/N)^N.
    assert (draws[0] == 0).mean() == pytest.approx((1 - 1 / total) ** total, abs=0.01)


def test_the_resampler_handles_a_handful_of_votes():
    # So few votes that the Poisson part has mean 0: every vote is drawn one at a time.
    draws = engine._Resampler(np.array([2, 1])).draw(np.random.default_rng(2), 30_000)
    assert (draws.sum(axis=0) == 3).all()
    assert np.bincount(draws[1].astype(int), minlength=4) / 30_000 == pytest.approx(
        [8 / 27, 12 / 27, 6 / 27, 1 / 27], abs=0.01
    )


def test_the_resampler_inverts_each_cells_poisson_cdf():
    from scipy.stats import poisson

    mu = np.array([0.3, 4.5, 145.2, 31_000.0])
    resampler = engine._Resampler(np.ones(4))
    resampler._build_tables(mu)
    rng = np.random.default_rng(3)
    # Uniforms everywhere, in the far tails and right at guide-bin edges.
    u = np.concatenate([rng.random(20_000), 10.0 ** -rng.uniform(1, 15, 2_000), 1 - 10.0 ** -rng.uniform(1, 15, 2_000)])
    u = np.concatenate([u, np.arange(1, 400) / 400])
    values = resampler._poisson(np.repeat(u[None, :], len(mu), axis=0))
    expected = poisson.ppf(u[None, :], mu[:, None])
    # The tables' probabilities are exact to about 1e-12 (for a mean of 31,000, the rounding
    # of log-probabilities near 3e5): a uniform within that of a step of the cdf, or of 0 or 1,
    # may get another value than scipy's, which happens with probability about 1e-12 a draw.
    resolved = (u >= 1e-9) & (u <= 1 - 1e-9)
    assert (values[:, resolved] == expected[:, resolved]).all()
    assert (values == expected).mean() > 0.98


class NumpyResampler(engine._Resampler):
    """The resampler as it was written in numpy, whole-array pass by pass: the reference that
    the compiled loops must match exactly, table for table and draw for draw (the same seed
    must keep giving the same bootstrap)."""

    def _build_tables(self, mu):
        cells, tail = len(mu), engine.POISSON_TAIL_LOG
        low = np.maximum(0, np.floor(mu - np.sqrt(2 * tail * mu))).astype(np.int64)
        high = np.ceil(mu + tail / 3 + np.sqrt((tail / 3) ** 2 + 2 * tail * mu)).astype(np.int64)
        width = high - low + 1
        first = np.zeros(cells, np.int64)
        np.cumsum(width[:-1], out=first[1:])
        last = first + width - 1
        value = np.arange(int(width.sum())) - np.repeat(first - low, width)
        with np.errstate(divide="ignore"):
            log_mu = np.where(mu > 0, np.log(mu), 0.0)
        log_factorial = engine.gammaln(np.arange(int(high.max()) + 1) + 1.0)
        pmf = value * np.repeat(log_mu, width)
        pmf -= np.repeat(mu, width)
        pmf -= np.take(log_factorial, value)
        np.exp(pmf, out=pmf)
        sums = np.add.reduceat(pmf, first)
        pmf[first[1:]] -= sums[:-1]
        cdf = np.clip(np.cumsum(pmf), 0.0, 1.0)
        cdf[last] = 1.0
        bins = np.ceil(engine.GUIDE_BINS_PER_SD * np.sqrt(mu)).astype(np.int64) + engine.GUIDE_BINS_PER_SD
        before = np.concatenate([[0.0], cdf[:-1]])
        before[first] = 0.0
        per_value = np.repeat(bins, width)
        begins = np.ceil(before * per_value).astype(np.int64)
        begins[first] = 0
        ends_at = np.minimum(np.ceil(cdf * per_value).astype(np.int64), per_value)
        entries = np.maximum(ends_at - begins, 0)
        entries[last] += 1
        self.guide = np.repeat(np.arange(len(cdf)), entries)
        self.guide_first = np.zeros(cells, np.int64)
        np.cumsum(bins[:-1] + 1, out=self.guide_first[1:])
        per_entry = np.repeat(bins, bins + 1)
        bin_index = np.arange(len(self.guide)) - np.repeat(self.guide_first, bins + 1)
        upper = (bin_index + 1) / per_entry
        after = np.take(cdf, np.minimum(self.guide + 1, len(cdf) - 1))
        is_last = np.zeros(len(cdf), dtype=bool)
        is_last[last] = True
        after[is_last[self.guide]] = 2.0
        self.threshold = np.where(after >= upper, np.take(cdf, self.guide), np.nan)
        self.bins = bins.astype(float)
        self.cdf = cdf
        self.offset = first - low

    def _build_alias(self, p):
        k = len(p)
        prob = p * k
        alias = np.arange(k)
        small = list(np.flatnonzero(prob < 1.0))
        large = list(np.flatnonzero(prob >= 1.0))
        while small and large:
            less, more = small.pop(), large.pop()
            alias[less] = more
            prob[more] -= 1.0 - prob[less]
            (small if prob[more] < 1.0 else large).append(more)
        prob[small + large] = 1.0
        self.alias_prob, self.alias = prob, alias

    def draw(self, rng, rounds):
        out = np.empty((self.cells, rounds))
        filled = 0
        while filled < rounds:
            counts = self._poisson(rng.random((self.cells, rounds - filled)))
            totals = counts.sum(axis=0)
            fits = totals <= self.total
            if not fits.all():
                counts, totals = counts[:, fits], totals[fits]
            missing = (self.total - totals).astype(np.int64)
            if missing.any():
                x = rng.random(int(missing.sum())) * self.cells
                k = x.astype(np.int64)
                cell = np.where(x - k < self.alias_prob[k], k, self.alias[k])
                column = np.repeat(np.arange(counts.shape[1]), missing)
                counts += np.bincount(cell * counts.shape[1] + column, minlength=counts.size).reshape(counts.shape)
            out[:, filled : filled + counts.shape[1]] = counts
            filled += counts.shape[1]
        return out

    def _poisson(self, u):
        index = (u * self.bins[:, None]).astype(np.int64)
        index += self.guide_first[:, None]
        value = np.take(self.guide, index)
        threshold = np.take(self.threshold, index)
        value += u > threshold
        searched = np.flatnonzero(np.isnan(threshold))
        if len(searched):
            flat = value.reshape(-1)
            target = u.reshape(-1)[searched]
            low = flat[searched]
            high = np.take(self.guide, index.reshape(-1)[searched] + 1)
            while len(searched):
                middle = (low + high) >> 1
                above = np.take(self.cdf, middle) >= target
                high = np.where(above, middle, high)
                low = np.where(above, low, middle + 1)
                done = low >= high
                flat[searched[done]] = low[done]
                keep = ~done
                searched, target, low, high = searched[keep], target[keep], low[keep], high[keep]
        value -= self.offset[:, None]
        return value.astype(float)


def random_cells(rng):
    """A counts table's cells: from single votes to tens of thousands, as in the arena's."""
    return np.concatenate([rng.integers(1, 4, 30), rng.integers(4, 300, 40), rng.integers(300, 60_000, 30)])


def test_the_compiled_resampler_builds_the_numpy_formulations_tables_exactly():
    rng = np.random.default_rng(21)
    for cell_n in [random_cells(rng) for _ in range(4)] + [np.array([1]), np.array([2, 1]), np.array([5, 3_000_000])]:
        compiled, reference = engine._Resampler(cell_n), NumpyResampler(cell_n)
        for name in ("guide", "guide_first", "threshold", "cdf", "bins", "offset", "alias", "alias_prob"):
            ours, theirs = getattr(compiled, name), getattr(reference, name)
            assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs, equal_nan=True), name


def test_the_compiled_resampler_draws_what_the_numpy_formulation_draws(monkeypatch):
    rng = np.random.default_rng(22)
    for cell_n in [random_cells(rng), np.array([2, 1]), np.array([40, 1, 1, 7])]:
        compiled, reference = engine._Resampler(cell_n), NumpyResampler(cell_n)
        for seed in range(3):
            ours = compiled.draw(np.random.default_rng(seed), 700)
            theirs = reference.draw(np.random.default_rng(seed), 700)
            assert np.array_equal(ours, theirs)
    # A shortfall of half a standard deviation makes about a third of the rounds overshoot, so
    # rounds are dropped and drawn again, from the same stream, in both.
    monkeypatch.setattr(engine, "POISSON_SHORTFALL_SD", 0.5)
    cell_n = random_cells(rng)
    compiled, reference = engine._Resampler(cell_n), NumpyResampler(cell_n)
    assert np.array_equal(compiled.draw(np.random.default_rng(5), 300), reference.draw(np.random.default_rng(5), 300))


def test_the_compiled_inversion_matches_the_numpy_formulation_in_bins_that_need_a_search():
    # Small and large means, whose tails hold bins with several values (threshold NaN): a
    # uniform in one of those is found by binary search.
    mu = np.array([0.02, 0.3, 4.5, 145.2, 31_000.0, 2e6])
    compiled, reference = engine._Resampler(np.ones(len(mu))), NumpyResampler(np.ones(len(mu)))
    compiled._build_tables(mu)
    reference._build_tables(mu)
    rng = np.random.default_rng(23)
    columns = [rng.random((len(mu), 5_000)), np.repeat((np.arange(1, 400) / 400)[None, :], len(mu), axis=0)]
    # For each cell, uniforms inside its searched bins, at their edges and in between, and
    # uniforms equal to values of its cdf (which must give that value, not the next).
    searched, exact = [], []
    for c in range(len(mu)):
        bins = int(compiled.bins[c])
        thresholds = compiled.threshold[compiled.guide_first[c] : compiled.guide_first[c] + bins]
        nan_bins = np.flatnonzero(np.isnan(thresholds))
        assert len(nan_bins), c
        at = np.repeat(nan_bins, 20)
        searched.append((at + np.tile(np.r_[0.0, rng.random(18), 1 - 1e-12], len(nan_bins))) / bins)
        values = np.arange(compiled.guide[compiled.guide_first[c]], compiled.guide[compiled.guide_first[c] + bins])
        exact.append(np.concatenate([thresholds[~np.isnan(thresholds)], compiled.cdf[values]]))
    for parts in (searched, exact):
        width = min(len(s) for s in parts)
        columns.append(np.stack([rng.choice(s, width, replace=False) for s in parts]))
    u = np.concatenate(columns, axis=1)
    ours, theirs = compiled._poisson(u), reference._poisson(u)
    assert np.array_equal(ours, theirs)
    index = (u * compiled.bins[:, None]).astype(np.int64) + compiled.guide_first[:, None]
    assert np.isnan(compiled.threshold[index]).sum() > 1_000  # the search path was taken


def test_drawing_batches_together_gives_each_generator_its_own_draw(monkeypatch):
    # Small blocks, so the tables are walked in many pieces; a shorter last batch, as in the bootstrap.
    monkeypatch.setattr(engine, "GUIDE_BLOCK_ENTRIES", 500)
    cell_n = random_cells(np.random.default_rng(24))
    compiled, reference = engine._Resampler(cell_n), NumpyResampler(cell_n)
    assert len(compiled.blocks) > 10
    seeds = np.random.SeedSequence(9).spawn(4)
    sizes = [60, 60, 60, 17]
    together = compiled.draw_batches([np.random.default_rng(seed) for seed in seeds], sizes)
    for seed, size, draws in zip(seeds, sizes, together, strict=True):
        assert np.array_equal(draws, reference.draw(np.random.default_rng(seed), size))


def test_the_compiled_chord_gradient_is_the_incidence_products_to_the_last_bit():
    rng = np.random.default_rng(25)
    frame, _ = simulate(rng, rng.normal(1000, 150, 30), np.where(rng.random((30, 30)) < 0.6, 40, 0), 0.3)
    table = engine._Table.from_counts(frame)
    cell_n = engine._Resampler(table.cell_n).draw(rng, 40)
    # C order, as _refit hands them over.
    n, s = np.ascontiguousarray(table.cell_to_votes @ cell_n), np.ascontiguousarray(table.cell_to_score @ cell_n)
    theta = rng.normal(0, 0.5, (table.m, 40))
    # The numpy formulation: p = 1 / (1 + e^-d), the residual s - n p, and B' times it.
    d = theta[table.pair_i] - theta[table.pair_j]
    expected = table.incidence @ (s - n * (1.0 / (1.0 + np.exp(-d))))
    gradient = engine._chord_gradient(np.exp(-d), n, s, table.pair_i, table.pair_j, table.m)
    assert np.array_equal(gradient, expected)

"""The bootstrap's refits: the chord steps land where Newton does, and the compiled gradient
is the numpy formulation's to the last bit."""

import numpy as np
import pandas as pd
from scipy.special import expit

from ratings_engine.bootstrap import _chord_gradient, chord_refit
from ratings_engine.likelihood import PairTable, newton_fit
from ratings_engine.resampling import Resampler

from .simulated import counts, simulate


def test_it_refits_bootstrap_rounds_to_the_same_optimum_as_full_newton():
    # The bootstrap's chord steps (and their hand-off to Newton for rounds that stall) are a
    # speed-up only: each round must land on its own maximum, as a cold Newton fit does.
    frame, _ = simulate(np.random.default_rng(6), np.array([1200.0, 1100, 1000, 980, 800]), 15, 0.35)
    frame = pd.concat([frame, counts(("new", "m1", "model_a", 2), ("new", "m4", "model_b", 1))])
    table = PairTable.from_counts(frame)
    n, s = table.pair_totals(table.cell_n[None, :])
    theta = newton_fit(table, n, s, np.zeros((1, table.m)))[0]
    p = expit(theta[table.pair_i] - theta[table.pair_j])
    inverse = np.linalg.pinv(table.laplacians(n * p * (1 - p))[0], hermitian=True)
    cell_n = Resampler(table.cell_n).draw(np.random.default_rng(0), 200)  # rounds as columns
    n, s = table.cell_to_votes @ cell_n, table.cell_to_score @ cell_n
    virtual = table.virtual_ties_columns(n, s)
    assert virtual.any()  # some rounds need the correction, and so exercise the hand-off
    chord = chord_refit(table, n + virtual, s + virtual / 2, theta, inverse).T
    newton = newton_fit(table, (n + virtual).T, (s + virtual / 2).T, np.zeros((200, table.m)))
    assert np.abs(chord - newton).max() < 1e-8


def test_the_compiled_chord_gradient_is_the_incidence_products_to_the_last_bit():
    rng = np.random.default_rng(25)
    frame, _ = simulate(rng, rng.normal(1000, 150, 30), np.where(rng.random((30, 30)) < 0.6, 40, 0), 0.3)
    table = PairTable.from_counts(frame)
    cell_n = Resampler(table.cell_n).draw(rng, 40)
    # C order, as chord_refit hands them over.
    n, s = np.ascontiguousarray(table.cell_to_votes @ cell_n), np.ascontiguousarray(table.cell_to_score @ cell_n)
    theta = rng.normal(0, 0.5, (table.m, 40))
    # The numpy formulation: p = 1 / (1 + e^-d), the residual s - n p, and B' times it.
    d = theta[table.pair_i] - theta[table.pair_j]
    expected = table.incidence @ (s - n * (1.0 / (1.0 + np.exp(-d))))
    gradient = _chord_gradient(np.exp(-d), n, s, table.pair_i, table.pair_j, table.m)
    assert np.array_equal(gradient, expected)

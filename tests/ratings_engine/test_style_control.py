"""Style control: the contextual Bradley-Terry fit with answer length and markdown as covariates."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize
from scipy.special import log_expit

from ratings_engine import style_control
from ratings_engine.bradley_terry import compute_ratings
from ratings_engine.counts import SCORES, aggregate
from ratings_engine.likelihood import DisconnectedComparisons
from ratings_engine.style_control import STYLE_COLUMNS, compute_style_controlled, style_features

FACTOR = 400 / math.log(10)


def simulate(seed=1, n=20_000, models=6, length_effect=3.0, tie_share=0.2):
    """Votes where the longer answer is preferred beyond the models' true strengths, and the
    stronger models are the terse ones, so that style and strength pull apart."""
    rng = np.random.default_rng(seed)
    theta = np.linspace(0.6, -0.6, models)
    verbosity = np.linspace(100, 700, models)
    a = rng.integers(0, models, n)
    b = (a + rng.integers(1, models, n)) % models
    tokens_a, tokens_b = rng.poisson(verbosity[a]), rng.poisson(verbosity[b])
    headers_a, headers_b = rng.poisson(1.0, n), rng.poisson(1.0, n)
    p = 1 / (1 + np.exp(-(theta[a] - theta[b] + length_effect * (tokens_a - tokens_b) / (tokens_a + tokens_b))))
    u = rng.random(n)
    winner = np.where(
        u < p * (1 - tie_share), "model_a", np.where(u < p * (1 - tie_share) + tie_share, "tie", "model_b")
    )
    names = np.array([f"m{i}" for i in range(models)])
    frame = pd.DataFrame(
        {
            "model_a": names[a],
            "model_b": names[b],
            "winner": winner,
            "tokens_a": tokens_a,
            "tokens_b": tokens_b,
            "headers_a": headers_a,
            "headers_b": headers_b,
            "list_items_a": 0,
            "list_items_b": 0,
            "bold_a": 0,
            "bold_b": 0,
        }
    )
    truth = pd.Series(FACTOR * (theta - theta.mean()) + 1000, index=names)
    return frame, truth


def test_it_takes_the_verbosity_bias_out_of_the_ratings():
    # No ties: ties drawn regardless of strength would shrink every rating towards the mean.
    battles, truth = simulate(tie_share=0.0)
    plain = compute_ratings(aggregate(battles), bootstrap_rounds=0).ratings["rating"].reindex(truth.index)
    styled = compute_style_controlled(battles)
    rating = styled.ratings["rating"].reindex(truth.index)
    # Without control the verbose weak models come out on top; with it the true order returns.
    assert plain.idxmax() == "m5"
    assert list(rating.sort_values(ascending=False).index) == list(truth.index)
    assert (rating - truth).abs().max() < 25
    tokens, lower, upper = styled.parameters["style_coefficients"]["tokens"]
    assert 0 < lower < tokens < upper
    headers = styled.parameters["style_coefficients"]["headers"]
    assert headers[1] < 0 < headers[2]  # no header effect was simulated
    # Features that never vary are left out rather than making the fit singular.
    assert styled.parameters["style_features"] == ["tokens", "headers"]


def test_it_is_the_maximum_likelihood_solution():
    battles, _ = simulate(seed=3, n=3_000, models=4)
    table = compute_style_controlled(battles)
    features = style_features(battles)[["tokens", "headers"]]
    x = ((features - features.mean()) / features.std(ddof=0)).to_numpy()
    names = sorted(set(battles["model_a"]) | set(battles["model_b"]))
    a = pd.Index(names).get_indexer(battles["model_a"])
    b = pd.Index(names).get_indexer(battles["model_b"])
    y = battles["winner"].map(SCORES).to_numpy()

    def negative_loglik(w):
        theta = np.concatenate([[0.0], w[: len(names) - 1]])
        z = theta[a] - theta[b] + x @ w[len(names) - 1 :]
        ridge = style_control.RIDGE * len(y) * np.sum(w[len(names) - 1 :] ** 2) / 2
        return -np.sum(y * log_expit(z) + (1 - y) * log_expit(-z)) + ridge

    found = minimize(negative_loglik, np.zeros(len(names) + 1), method="BFGS", options={"gtol": 1e-10})
    theta = np.concatenate([[0.0], found.x[: len(names) - 1]])
    independent = pd.Series(FACTOR * (theta - theta.mean()) + 1000, index=names)
    assert (table.ratings["rating"].reindex(names) - independent).abs().max() < 0.01


def test_without_style_differences_it_is_the_plain_fit():
    battles, _ = simulate(seed=4, n=2_000, models=4)
    battles[STYLE_COLUMNS] = 5
    styled = compute_style_controlled(battles)
    plain = compute_ratings(aggregate(battles), bootstrap_rounds=0)
    assert styled.parameters["style_features"] == []
    assert styled.ratings["rating"].to_dict() == pytest.approx(plain.ratings["rating"].to_dict(), abs=1e-6)
    assert styled.ratings["sandwich_lower"].to_dict() == pytest.approx(
        plain.ratings["sandwich_lower"].to_dict(), abs=1e-6
    )


def test_it_anchors_like_the_plain_fit():
    battles, _ = simulate(seed=5, n=2_000, models=4)
    table = compute_style_controlled(battles, anchor=("m2", 1200))
    assert table.ratings.loc["m2", "rating"] == pytest.approx(1200)
    assert table.ratings.loc["m2", "ci_upper"] - table.ratings.loc["m2", "ci_lower"] == pytest.approx(0, abs=1e-6)
    with pytest.raises(ValueError, match="anchor model 'nope'"):
        compute_style_controlled(battles, anchor=("nope", 1000))


def test_it_refuses_disconnected_comparisons_and_missing_columns():
    battles, _ = simulate(seed=6, n=500, models=4)
    apart = battles[battles["model_a"].isin(["m0", "m1"]) == battles["model_b"].isin(["m0", "m1"])]
    with pytest.raises(DisconnectedComparisons):
        compute_style_controlled(apart)
    with pytest.raises(ValueError, match="bold_b"):
        compute_style_controlled(battles.drop(columns=["bold_b"]))
    with pytest.raises(ValueError, match="No votes"):
        compute_style_controlled(battles.iloc[:0])


def test_an_unbeaten_model_gets_a_finite_rating_as_in_the_plain_fit():
    battles, _ = simulate(seed=7, n=2_000, models=4)
    newcomer = pd.DataFrame(
        {
            "model_a": ["new"] * 3,
            "model_b": ["m0"] * 3,
            "winner": ["model_a"] * 3,
            **{c: [50] * 3 for c in STYLE_COLUMNS},
        }
    )
    table = compute_style_controlled(pd.concat([battles, newcomer], ignore_index=True))
    assert np.isfinite(table.ratings["rating"]).all()
    assert table.parameters["corrected_pairs"] == [["m0", "new"]]


def test_a_style_that_only_follows_the_model_does_not_break_the_fit():
    # One model always writes headers, the others never: the likelihood cannot tell its style
    # from its strength. The ridge keeps the fit defined and credits the difference to strength.
    battles, _ = simulate(seed=9, n=3_000, models=4)
    battles["headers_a"] = np.where(battles["model_a"] == "m3", 4, 0)
    battles["headers_b"] = np.where(battles["model_b"] == "m3", 4, 0)
    table = compute_style_controlled(battles)
    assert np.isfinite(table.ratings[["rating", "ci_lower", "ci_upper"]].to_numpy()).all()
    assert abs(table.parameters["style_coefficients"]["headers"][0]) < 0.5

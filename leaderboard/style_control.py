"""Style control: Bradley-Terry with answer length and markdown as covariates.

A voter who prefers the longer or more formatted answer would otherwise push a model up for
its style rather than its content. Following LMArena's style control (the "contextual"
Bradley-Terry of arena-rank), each vote between models a and b gets the logit

    theta_a - theta_b + beta . x

where x holds, per style feature, the normalised difference of the two answers: for length
(a - b) / (a + b), for the counts of headers, list items and bold spans (a - b) / (a + b + 1)
(the +1 keeps answers without any markdown at 0), each then standardised over the votes.
beta is fitted together with the ratings by maximum likelihood (with a slight ridge on beta,
see RIDGE); the ratings are what each model would score if both answers had the same style.
Ties count half a win each way, as in the plain fit.

The fit cannot work on pair counts, because x differs from vote to vote; it is a damped
Newton method on the votes, warm-started from the plain Bradley-Terry solution, and costs in
votes times features per step. The interval is the sandwich (robust) estimator, as
arena-rank's default for this model. Where the plain fit had to add virtual ties to a pair
(its MLE did not exist, see ratings.py), the same ties are added here with x = 0.

Pure numpy/pandas, no Django.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.special import expit, log_expit

from . import ratings

FEATURES = ("tokens", "headers", "list_items", "bold")
STYLE_COLUMNS = [f"{feature}_{side}" for feature in FEATURES for side in ("a", "b")]
TOLERANCE = 1e-10
MAX_ITERATIONS = 100
# A ridge on the style coefficients, per vote: 0.5 * RIDGE * votes * |beta|^2 is taken off the
# log-likelihood. It keeps the fit defined when a feature is a function of the models alone
# (say, one model always answers with headers and its opponents never do): the likelihood
# cannot tell style from strength then, and the ridge credits the difference to strength. On
# data where they can be told apart it moves the ratings by a small fraction of their
# uncertainty.
RIDGE = 1e-4


def style_features(battles: pd.DataFrame) -> pd.DataFrame:
    """Per vote, the normalised a-minus-b difference of each style feature, before standardising."""
    ratings._check_columns(battles, STYLE_COLUMNS)
    columns = {}
    for feature in FEATURES:
        a = battles[f"{feature}_a"].to_numpy(dtype=float)
        b = battles[f"{feature}_b"].to_numpy(dtype=float)
        if feature == "tokens":
            columns[feature] = np.divide(a - b, a + b, out=np.zeros_like(a), where=(a + b) > 0)
        else:
            columns[feature] = (a - b) / (a + b + 1)
    return pd.DataFrame(columns, index=battles.index)


def compute_style_controlled(
    battles: pd.DataFrame,
    *,
    anchor: tuple[str, float] | None = None,
    scale: float = 400,
    base: float = 10,
    init: float = 1000,
) -> ratings.RatingTable:
    """battles: one row per vote with model_a, model_b, winner and the STYLE_COLUMNS.

    Returns a RatingTable like ratings.compute_ratings with the sandwich interval in both
    interval columns (``parameters["rank_interval"] == "sandwich"``), and the fitted style
    coefficients, per standard deviation of each feature, in ``parameters["style_coefficients"]``.
    Raises DisconnectedComparisons like the plain fit.
    """
    ratings._check_columns(battles, ["model_a", "model_b", "winner"])
    ratings._check_winners(battles["winner"])
    if battles.empty:
        raise ValueError("No votes to rate: the battles table is empty")
    # The plain fit checks the comparison graph, orders the models, finds the pairs that need
    # virtual ties and gives the warm start.
    plain = ratings.compute_ratings(ratings.aggregate(battles), bootstrap_rounds=0)
    models = sorted(plain.ratings.index)
    code = {name: index for index, name in enumerate(models)}
    m = len(models)

    a = pd.Index(models).get_indexer(battles["model_a"].astype(str))
    b = pd.Index(models).get_indexer(battles["model_b"].astype(str))
    y = battles["winner"].map(ratings.SCORES).to_numpy(dtype=float)
    raw = style_features(battles)
    mean, std = raw.mean().to_numpy(), raw.std(ddof=0).to_numpy()
    used = std > 0  # a feature that never varies carries no information and would make H singular
    x = ((raw.to_numpy() - mean) / np.where(used, std, 1.0))[:, used]
    weight = np.ones(len(y))

    corrected = plain.parameters["corrected_pairs"]
    if corrected:
        a = np.concatenate([a, [code[i] for i, _ in corrected]])
        b = np.concatenate([b, [code[j] for _, j in corrected]])
        y = np.concatenate([y, np.full(len(corrected), 0.5)])
        x = np.vstack([x, np.zeros((len(corrected), x.shape[1]))])
        weight = np.concatenate([weight, np.full(len(corrected), ratings.VIRTUAL_TIES)])

    factor = scale / math.log(base)
    theta0 = (plain.ratings["rating"].reindex(models).to_numpy() - init) / factor
    theta0 -= theta0.mean()
    ridge = RIDGE * len(battles)
    start = np.concatenate([theta0, np.zeros(x.shape[1])])
    params, information, iterations = _fit(a, b, y, x, weight, m, start, ridge)
    covariance = _sandwich(a, b, y, x, weight, m, params, information)

    theta = params[:m]
    if anchor is None:
        rating = factor * (theta - theta.mean()) + init
        theta_covariance = covariance[:m, :m]
    else:
        anchor_name, anchor_value = str(anchor[0]), float(anchor[1])
        if anchor_name not in code:
            raise ValueError(f"anchor model {anchor_name!r} has no counted votes")
        k = code[anchor_name]
        rating = factor * (theta - theta[k]) + anchor_value
        shift = np.eye(m)
        shift[:, k] -= 1.0
        theta_covariance = shift @ covariance[:m, :m] @ shift.T
    se = factor * np.sqrt(np.clip(np.diag(theta_covariance), 0.0, None))
    lower, upper = rating - ratings.Z95 * se, rating + ratings.Z95 * se
    frame = pd.DataFrame(
        {
            "rating": rating,
            "ci_lower": lower,
            "ci_upper": upper,
            "sandwich_lower": lower,
            "sandwich_upper": upper,
            "rank": ratings.rank_by_intervals(lower, upper),
            "votes": plain.ratings["votes"].reindex(models).to_numpy(),
        },
        index=pd.Index(models, name="model"),
    )
    frame = frame.sort_values("rating", ascending=False, kind="mergesort")[ratings.COLUMNS]

    beta = params[m:]
    beta_se = np.sqrt(np.clip(np.diag(covariance)[m:], 0.0, None))
    names = [feature for feature, keep in zip(FEATURES, used, strict=True) if keep]
    parameters = {
        **plain.parameters,
        "method": "bradley-terry-mle-style-control",
        "bootstrap_rounds": 0,
        "rank_interval": "sandwich",
        "anchor": None if anchor is None else [str(anchor[0]), float(anchor[1])],
        "scale": float(scale),
        "base": float(base),
        "init": float(init),
        "style_features": names,
        # Logit change per standard deviation of each feature difference, with its 95% interval.
        "style_coefficients": {
            name: [float(value), float(value - ratings.Z95 * err), float(value + ratings.Z95 * err)]
            for name, value, err in zip(names, beta, beta_se, strict=True)
        },
        "style_feature_mean": dict(zip(FEATURES, map(float, mean), strict=True)),
        "style_feature_std": dict(zip(FEATURES, map(float, std), strict=True)),
        "iterations": iterations,
        "style_ridge": RIDGE,
    }
    return ratings.RatingTable(ratings=frame, total_votes=len(battles), parameters=parameters)


def _fit(a, b, y, x, weight, m, params, ridge):
    """Damped Newton on the weighted log-likelihood less the ridge; theta kept at sum zero.

    Stops when every parameter's gradient is below TOLERANCE times its Fisher information,
    the same scale-free test as the plain fit. Returns the parameters, the information (the
    ridge included: the sandwich's bread) and the number of steps."""
    f = x.shape[1]
    gauge = np.zeros((m + f, m + f))
    gauge[:m, :m] = 1.0 / m
    penalty = np.zeros((m + f, m + f))
    penalty[m:, m:] = ridge * np.eye(f)
    objective = _objective(a, b, y, x, weight, params, ridge)
    for iteration in range(1, MAX_ITERATIONS + 1):
        z = params[a] - params[b] + x @ params[m:]
        p = expit(z)
        residual = weight * (y - p)
        gradient = np.concatenate(
            [np.bincount(a, residual, m) - np.bincount(b, residual, m), x.T @ residual - ridge * params[m:]]
        )
        information = _information(a, b, x, weight * p * (1 - p), m) + penalty
        if np.all(np.abs(gradient) <= TOLERANCE * np.maximum(np.diag(information), 1e-300)):
            return params, information, iteration - 1
        step = np.linalg.solve(information + gauge, gradient)
        # Halve the step until the objective does not fall: Newton overshoots only far from the optimum.
        for _ in range(50):
            candidate = params + step
            candidate[:m] -= candidate[:m].mean()
            new_objective = _objective(a, b, y, x, weight, candidate, ridge)
            if new_objective >= objective - 1e-12 * abs(objective):
                break
            step /= 2
        params, objective = candidate, new_objective
    raise ArithmeticError(f"style-controlled fit did not converge in {MAX_ITERATIONS} Newton steps")


def _objective(a, b, y, x, weight, params, ridge) -> float:
    m = len(params) - x.shape[1]
    z = params[a] - params[b] + x @ params[m:]
    # y*log(p) + (1-y)*log(1-p), written with log_expit so large |z| stays exact.
    loglik = np.sum(weight * (y * log_expit(z) + (1 - y) * log_expit(-z)))
    return float(loglik - 0.5 * ridge * np.sum(params[m:] ** 2))


def _information(a, b, x, w, m) -> np.ndarray:
    """sum_r w_r v_r v_r' with v_r = (e_a - e_b, x_r): the Laplacian of the pairs, the features'
    weighted Gram matrix, and the cross block between them."""
    f = x.shape[1]
    info = np.zeros((m + f, m + f))
    diagonal = np.bincount(a, w, m) + np.bincount(b, w, m)
    off = np.bincount(a * m + b, w, m * m).reshape(m, m)
    info[:m, :m] = np.diag(diagonal) - off - off.T
    for k in range(f):
        cross = np.bincount(a, w * x[:, k], m) - np.bincount(b, w * x[:, k], m)
        info[:m, m + k] = info[m + k, :m] = cross
    info[m:, m:] = (x * w[:, None]).T @ x
    return info


def _sandwich(a, b, y, x, weight, m, params, information) -> np.ndarray:
    """Cov = H+ M H+, with M the sum of the outer products of each vote's score."""
    z = params[a] - params[b] + x @ params[m:]
    residual = y - expit(z)
    meat = _information(a, b, x, weight * residual**2, m)
    bread = np.linalg.pinv(information, hermitian=True)
    return bread @ meat @ bread

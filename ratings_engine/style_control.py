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
(its MLE did not exist, see likelihood.py), the same ties are added here with x = 0.

Pure numpy/pandas, no Django.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit, log_expit

from . import bradley_terry
from .bradley_terry import Z95, RatingTable, rating_frame
from .counts import DENSE_COUNT_LIMIT, SCORES, check_columns, check_winners
from .likelihood import VIRTUAL_TIES

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
    check_columns(battles, STYLE_COLUMNS)
    matrix = _feature_matrix({c: battles[c].to_numpy() for c in STYLE_COLUMNS})
    return pd.DataFrame(matrix, columns=list(FEATURES), index=battles.index)


def _feature_matrix(style: dict[str, np.ndarray]) -> np.ndarray:
    # Column-major: the fit reads the features a column at a time.
    matrix = np.empty((len(style[STYLE_COLUMNS[0]]), len(FEATURES)), order="F")
    for k, feature in enumerate(FEATURES):
        a = np.asarray(style[f"{feature}_a"], dtype=float)
        b = np.asarray(style[f"{feature}_b"], dtype=float)
        if feature == "tokens":
            matrix[:, k] = np.divide(a - b, a + b, out=np.zeros_like(a), where=(a + b) > 0)
        else:
            matrix[:, k] = (a - b) / (a + b + 1)
    return matrix


@dataclass(frozen=True)
class StyleVotes:
    """Votes for the style-controlled fit as coded arrays: `models` (names), a and b (indices
    into models), winner (index into WINNERS) and the STYLE_COLUMNS counts, one entry per vote.
    The leaderboard builds it straight from the counted votes' columns; millions of name
    strings would cost more than the fit."""

    models: list[str]
    a: np.ndarray
    b: np.ndarray
    winner: np.ndarray
    style: dict[str, np.ndarray]

    @classmethod
    def from_frame(cls, battles: pd.DataFrame) -> StyleVotes:
        check_columns(battles, ["model_a", "model_b", "winner", *STYLE_COLUMNS])
        check_winners(battles["winner"])
        codes, models = pd.factorize(
            np.concatenate([battles["model_a"].to_numpy(dtype=object), battles["model_b"].to_numpy(dtype=object)])
        )
        half = len(battles)
        winner = pd.Index(WINNERS).get_indexer(battles["winner"].to_numpy(dtype=object))
        style = {c: battles[c].to_numpy() for c in STYLE_COLUMNS}
        return cls([str(m) for m in models], codes[:half], codes[half:], winner, style)

    def subset(self, keep: np.ndarray) -> StyleVotes:
        return StyleVotes(
            self.models, self.a[keep], self.b[keep], self.winner[keep], {c: v[keep] for c, v in self.style.items()}
        )

    def counts(self) -> pd.DataFrame:
        """The plain fit's counts frame of these votes."""
        m, w = len(self.models), len(WINNERS)
        key, n = _count((self.a.astype(np.int64) * m + self.b) * w + self.winner, m * m * w)
        names = np.asarray(self.models, dtype=object)
        return pd.DataFrame(
            {
                "model_a": names[key // (w * m)],
                "model_b": names[(key // w) % m],
                "winner": np.asarray(WINNERS, dtype=object)[key % w],
                "n": n.astype(np.int64),
            }
        )

    def __len__(self) -> int:
        return len(self.a)


WINNERS = list(SCORES)


def _count(key: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(distinct keys in order, their counts), by a dense count when the key space is small
    enough: a sort of millions of keys costs far more."""
    if size <= DENSE_COUNT_LIMIT:
        n = np.bincount(key, minlength=size)
        keys = np.flatnonzero(n)
        return keys, n[keys]
    return np.unique(key, return_counts=True)


def compute_style_controlled(
    battles: pd.DataFrame | StyleVotes,
    *,
    anchor: tuple[str, float] | None = None,
    scale: float = 400,
    base: float = 10,
    init: float = 1000,
) -> RatingTable:
    """battles: one row per vote with model_a, model_b, winner and the STYLE_COLUMNS, or the
    same as StyleVotes.

    Returns a RatingTable like bradley_terry.compute_ratings with the sandwich interval in both
    interval columns (``parameters["rank_interval"] == "sandwich"``), and the fitted style
    coefficients, per standard deviation of each feature, in ``parameters["style_coefficients"]``.
    Raises DisconnectedComparisons like the plain fit.
    """
    votes = _style_votes(battles)
    # The plain fit checks the comparison graph, orders the models, finds the pairs that need
    # virtual ties and gives the warm start.
    plain = bradley_terry.compute_ratings(votes.counts(), bootstrap_rounds=0)
    models = sorted(plain.ratings.index)
    code = {name: index for index, name in enumerate(models)}
    m = len(models)

    recode = pd.Index(models).get_indexer(pd.Index(votes.models))
    a, b = recode[votes.a], recode[votes.b]
    y = np.array([SCORES[w] for w in WINNERS])[votes.winner]
    x, mean, std, used = _standardised_features(votes.style)
    a, b, y, x, weight = _with_virtual_ties(a, b, y, x, plain.parameters["corrected_pairs"], code)

    factor = scale / math.log(base)
    theta0 = (plain.ratings["rating"].reindex(models).to_numpy() - init) / factor
    theta0 -= theta0.mean()
    ridge = RIDGE * len(votes)
    start = np.concatenate([theta0, np.zeros(x.shape[1])])
    design = _Design(a, b, x, weight, m)
    params, information, iterations = _fit(design, y, start, ridge)
    covariance = _sandwich(design, y, params, information)

    # The fit is in the sum-zero gauge; the ratings are moved to the requested one.
    gauge = bradley_terry.Gauge.of(models, anchor, scale=scale, base=base, init=init)
    rating = gauge.elo(params[:m])
    se = gauge.factor * np.sqrt(np.clip(np.diag(gauge.covariance(covariance[:m, :m])), 0.0, None))
    lower, upper = rating - Z95 * se, rating + Z95 * se
    votes_per_model = plain.ratings["votes"].reindex(models).to_numpy()
    # No bootstrap here: the sandwich interval fills the ci columns too.
    frame = rating_frame(models, rating, lower, upper, lower, upper, votes_per_model, rank_interval="sandwich")
    parameters = {
        **plain.parameters,
        "method": "bradley-terry-mle-style-control",
        "bootstrap_rounds": 0,
        "rank_interval": "sandwich",
        **gauge.parameters(),
        **_style_parameters(params[m:], np.diag(covariance)[m:], used, mean, std),
        "iterations": iterations,
        "style_ridge": RIDGE,
    }
    return RatingTable(ratings=frame, total_votes=len(votes), parameters=parameters)


def _style_votes(battles: pd.DataFrame | StyleVotes) -> StyleVotes:
    """The votes as StyleVotes, checked; ValueError if there are none or a frame lacks a column."""
    if not isinstance(battles, StyleVotes):
        check_columns(battles, ["model_a", "model_b", "winner"])
        check_winners(battles["winner"])
        if battles.empty:
            raise ValueError("No votes to rate: the battles table is empty")
        battles = StyleVotes.from_frame(battles)
    if not len(battles):
        raise ValueError("No votes to rate: the battles table is empty")
    return battles


def _standardised_features(style: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The votes' feature differences, each minus its mean and over its standard deviation,
    without the features that never vary; with those means and deviations (of every feature)
    and which features are used."""
    x = _feature_matrix(style)
    mean, std = x.mean(axis=0), x.std(axis=0)
    used = std > 0  # a feature that never varies carries no information and would make H singular
    x -= mean
    x /= np.where(used, std, 1.0)
    if not used.all():
        x = np.asfortranarray(x[:, used])
    return x, mean, std, used


def _with_virtual_ties(
    a: np.ndarray, b: np.ndarray, y: np.ndarray, x: np.ndarray, corrected: list[list[str]], code: dict[str, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """The votes with the plain fit's virtual ties added (a tie of weight VIRTUAL_TIES and no
    style difference on each corrected pair), and the votes' weights (None: all 1)."""
    if not corrected:
        return a, b, y, x, None
    votes = len(y)
    a = np.concatenate([a, [code[i] for i, _ in corrected]])
    b = np.concatenate([b, [code[j] for _, j in corrected]])
    y = np.concatenate([y, np.full(len(corrected), 0.5)])
    x = np.asfortranarray(np.vstack([x, np.zeros((len(corrected), x.shape[1]))]))
    weight = np.concatenate([np.ones(votes), np.full(len(corrected), VIRTUAL_TIES)])
    return a, b, y, x, weight


def _style_parameters(
    beta: np.ndarray, beta_variance: np.ndarray, used: np.ndarray, mean: np.ndarray, std: np.ndarray
) -> dict:
    """The style part of the parameters: the features fitted, their coefficients and the
    features' scaling."""
    beta_se = np.sqrt(np.clip(beta_variance, 0.0, None))
    names = [feature for feature, keep in zip(FEATURES, used, strict=True) if keep]
    return {
        "style_features": names,
        # Logit change per standard deviation of each feature difference, with its 95% interval.
        "style_coefficients": {
            name: [float(value), float(value - Z95 * err), float(value + Z95 * err)]
            for name, value, err in zip(names, beta, beta_se, strict=True)
        },
        "style_feature_mean": dict(zip(FEATURES, map(float, mean), strict=True)),
        "style_feature_std": dict(zip(FEATURES, map(float, std), strict=True)),
    }


class _Design:
    """The votes' design: v_r = (e_a - e_b, x_r), weights w_r (1, or VIRTUAL_TIES for virtual ties).

    Sums over votes of the model part go through each vote's pair (a, b), counted once in a
    bincount over pairs and then spread to the two models: the pairs are few, the votes many."""

    def __init__(self, a: np.ndarray, b: np.ndarray, x: np.ndarray, weight: np.ndarray | None, m: int):
        self.a, self.b, self.x, self.weight, self.m = a, b, x, weight, m
        key = a.astype(np.int64) * m + b
        keys, _ = _count(key, m * m)
        if m * m <= DENSE_COUNT_LIMIT:
            lookup = np.zeros(m * m, dtype=np.int64)
            lookup[keys] = np.arange(len(keys))
            self.pair = lookup[key]
        else:
            self.pair = np.searchsorted(keys, key)
        self.pair_a, self.pair_b = keys // m, keys % m
        self.pairs = len(keys)
        self.x_max = np.abs(x).max(axis=0) if len(x) else np.zeros(x.shape[1])

    def logits(self, params: np.ndarray) -> np.ndarray:
        m = self.m
        theta = params[:m]
        z = (theta[self.pair_a] - theta[self.pair_b])[self.pair]
        if self.x.shape[1]:
            z += self.x @ params[m:]
        return z

    def gradient(self, residual: np.ndarray) -> np.ndarray:
        """sum_r residual_r v_r."""
        per_pair = np.bincount(self.pair, residual, self.pairs)
        model = np.bincount(self.pair_a, per_pair, self.m) - np.bincount(self.pair_b, per_pair, self.m)
        return np.concatenate([model, self.x.T @ residual])

    def information(self, w: np.ndarray) -> np.ndarray:
        """sum_r w_r v_r v_r': the Laplacian of the pairs, the features' weighted Gram matrix,
        and the cross block between them."""
        m, f = self.m, self.x.shape[1]
        info = np.zeros((m + f, m + f))
        per_pair = np.bincount(self.pair, w, self.pairs)
        np.add.at(info, (self.pair_a, self.pair_b), -per_pair)
        np.add.at(info, (self.pair_b, self.pair_a), -per_pair)
        info[np.arange(m), np.arange(m)] += np.bincount(self.pair_a, per_pair, m) + np.bincount(
            self.pair_b, per_pair, m
        )
        wx = np.multiply(self.x, w[:, None], out=np.empty_like(self.x))  # column-major, as x
        for k in range(f):
            cross_pair = np.bincount(self.pair, wx[:, k], self.pairs)
            cross = np.bincount(self.pair_a, cross_pair, m) - np.bincount(self.pair_b, cross_pair, m)
            info[:m, m + k] = info[m + k, :m] = cross
        info[m:, m:] = wx.T @ self.x
        return info

    def weighted(self, values: np.ndarray) -> np.ndarray:
        return values if self.weight is None else values * self.weight


def _fit(design: _Design, y: np.ndarray, params: np.ndarray, ridge: float):
    """Damped Newton on the weighted log-likelihood less the ridge; theta kept at sum zero.

    Stops when every parameter's gradient is below TOLERANCE times its Fisher information,
    the same scale-free test as the plain fit. A step that moves no vote's logit by more than
    0.5 is taken whole: it changes each vote's curvature p(1 - p) by less than a factor e^0.5,
    and a Newton step on a concave function cannot lower it then (the plain fit's argument).
    Larger steps are halved until the objective does not fall. Returns the parameters, the
    information (the ridge included: the sandwich's bread) and the number of steps."""
    m, f = design.m, design.x.shape[1]
    gauge = np.zeros((m + f, m + f))
    gauge[:m, :m] = 1.0 / m
    penalty = np.zeros((m + f, m + f))
    penalty[m:, m:] = ridge * np.eye(f)
    objective = None
    for iteration in range(1, MAX_ITERATIONS + 1):
        p = expit(design.logits(params))
        residual = design.weighted(y - p)
        gradient = design.gradient(residual)
        gradient[m:] -= ridge * params[m:]
        information = design.information(design.weighted(p * (1 - p))) + penalty
        if np.all(np.abs(gradient) <= TOLERANCE * np.maximum(np.diag(information), 1e-300)):
            return params, information, iteration - 1
        step = np.linalg.solve(information + gauge, gradient)
        # The largest change of any vote's logit: at most twice the largest rating step plus
        # the features' largest values times their coefficients' steps.
        reach = 2 * np.abs(step[:m]).max() + float(design.x_max @ np.abs(step[m:]))
        candidate = params + step
        candidate[:m] -= candidate[:m].mean()
        if reach > 0.5:
            if objective is None:
                objective = _objective(design, y, params, ridge)
            for _ in range(50):
                new_objective = _objective(design, y, candidate, ridge)
                if new_objective >= objective - 1e-12 * abs(objective):
                    break
                step /= 2
                candidate = params + step
                candidate[:m] -= candidate[:m].mean()
            objective = new_objective
        else:
            objective = None  # not evaluated: the next large step evaluates it afresh
        params = candidate
    raise ArithmeticError(f"style-controlled fit did not converge in {MAX_ITERATIONS} Newton steps")


def _objective(design: _Design, y: np.ndarray, params: np.ndarray, ridge: float) -> float:
    z = design.logits(params)
    # y*log(p) + (1-y)*log(1-p), written with log_expit so large |z| stays exact.
    loglik = np.sum(design.weighted(y * log_expit(z) + (1 - y) * log_expit(-z)))
    return float(loglik - 0.5 * ridge * np.sum(params[design.m :] ** 2))


def _sandwich(design: _Design, y: np.ndarray, params: np.ndarray, information: np.ndarray) -> np.ndarray:
    """Cov = H+ M H+, with M the sum of the outer products of each vote's score."""
    residual = y - expit(design.logits(params))
    weight = residual**2 if design.weight is None else design.weight * residual**2
    meat = design.information(weight)
    bread = np.linalg.pinv(information, hermitian=True)
    return bread @ meat @ bread

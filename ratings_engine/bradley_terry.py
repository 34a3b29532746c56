"""The rating: Bradley-Terry maximum likelihood on pair counts, on the Elo scale, with intervals.

The caller aggregates votes into a counts table (in SQL, or counts.aggregate) and hands it
here, so everything costs in model *pairs*, not votes. Each vote between models i and j
scores 1 (i wins), 1/2 (either kind of tie) or 0 (j wins) for i, and P(i beats j) =
sigmoid(theta_i - theta_j): a tie counts half a win each way, as FastChat's
``elo_analysis.py`` does. Ratings are ``scale * theta / ln(base) + init``, centred so that
their mean is ``init`` (or shifted so that the anchor model has its given rating). The fit
itself, and what is done when the maximum-likelihood estimate does not exist, are in
likelihood.py; the pairs corrected in the main fit are listed in
``parameters["corrected_pairs"]``.

Confidence intervals, both 95%:

* bootstrap (bootstrap.py): the counts table is resampled multinomially, each resample is
  refitted and the 2.5/97.5 percentiles of each model's rating are taken.
* sandwich (Huber-White): Cov(theta) = L+ M L+, where L is the Fisher information, L+ its
  pseudo-inverse (which puts the covariance in the sum-zero gauge) and M the sum over votes
  of the outer products of each vote's score, computed per pair from the outcome counts. It
  stays right when ties make votes less variable than the Bernoulli model assumes.

An anchored table moves both intervals to the anchor's gauge: the anchor's own interval is
a point, and everyone else's measures the difference to it.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import expit
from threadpoolctl import threadpool_limits

from .bootstrap import BOOTSTRAP_THREADS, bootstrap_thetas
from .likelihood import TOLERANCE, VIRTUAL_TIES, PairTable, newton_fit

COLUMNS = ["rating", "ci_lower", "ci_upper", "sandwich_lower", "sandwich_upper", "rank", "votes"]
Z95 = 1.959963984540054  # the 97.5% normal quantile


@dataclass(frozen=True)
class RatingTable:
    ratings: pd.DataFrame
    total_votes: int
    parameters: dict = field(default_factory=dict)


def compute_ratings(
    counts: pd.DataFrame,
    *,
    bootstrap_rounds: int = 1000,
    seed: int = 0,
    anchor: tuple[str, float] | None = None,
    scale: float = 400,
    base: float = 10,
    init: float = 1000,
    threads: int | None = None,
) -> RatingTable:
    """counts: columns model_a, model_b (str), winner in {"model_a","model_b","tie","tie (bothbad)"}, n (int >= 0).

    Deterministic for given inputs: the same counts, seed and options give the same table,
    whatever `threads` (how many threads the bootstrap's batches run on; default one per
    core, BOOTSTRAP_THREADS; 1 when the caller runs several fits at once).
    With ``bootstrap_rounds=0`` the bootstrap columns are NaN and rank uses the sandwich
    interval instead (recorded as ``parameters["rank_interval"]``).
    """
    if bootstrap_rounds < 0:
        raise ValueError(f"bootstrap_rounds must be >= 0, got {bootstrap_rounds}")
    if scale <= 0 or base <= 1:
        raise ValueError(f"scale must be > 0 and base > 1, got scale={scale}, base={base}")
    table = PairTable.from_counts(counts)
    gauge = Gauge.of(table.models, anchor, scale=scale, base=base, init=init)
    # Every matrix here is models x models or smaller: BLAS threads would only wait on each
    # other (the bootstrap's own threads are what use the cores).
    with single_threaded_blas():
        theta, virtual, inverse = _fit(table)
        rating = gauge.elo(theta)
        corrected = [[table.models[table.pair_i[p]], table.models[table.pair_j[p]]] for p in np.flatnonzero(virtual)]
        # The sandwich covariance comes in the sum-zero gauge; the gauge moves it to the anchor's.
        covariance = gauge.covariance(_sandwich(table, theta, inverse, table.cell_n, virtual))
        se = gauge.factor * np.sqrt(np.clip(np.diag(covariance), 0.0, None))
        if bootstrap_rounds:
            threads = BOOTSTRAP_THREADS if threads is None else max(1, threads)
            samples, corrected_rounds = bootstrap_thetas(table, theta, inverse, bootstrap_rounds, seed, threads)
            ci_lower, ci_upper = np.percentile(gauge.elo(samples), [2.5, 97.5], axis=0)
        else:
            corrected_rounds = 0
            ci_lower = ci_upper = np.full(len(table.models), np.nan)

    frame = rating_frame(
        table.models, rating, ci_lower, ci_upper, rating - Z95 * se, rating + Z95 * se, table.votes,
        rank_interval="bootstrap" if bootstrap_rounds else "sandwich",
    )  # fmt: skip
    parameters = {
        "method": "bradley-terry-mle",
        "bootstrap_rounds": int(bootstrap_rounds),
        "seed": int(seed),
        **gauge.parameters(),
        "tie_score": 0.5,
        "tolerance": TOLERANCE,
        "virtual_ties": VIRTUAL_TIES,
        "corrected_pairs": corrected,
        "bootstrap_corrected_rounds": int(corrected_rounds),
        "rank_interval": "bootstrap" if bootstrap_rounds else "sandwich",
    }
    return RatingTable(ratings=frame, total_votes=int(table.cell_n.sum()), parameters=parameters)


def _fit(table: PairTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The main fit: theta in the sum-zero gauge, the virtual ties per pair it needed, and the
    inverse Fisher information at theta (the sandwich's bread, and the fixed Hessian of the
    bootstrap's chord steps)."""
    n, s = table.pair_totals(table.cell_n[None, :])
    virtual = table.virtual_ties(n, s)
    theta = newton_fit(table, n + virtual, s + virtual / 2, np.zeros((1, len(table.models))))[0]
    p = expit(theta[table.pair_i] - theta[table.pair_j])
    inverse = np.linalg.pinv(table.laplacians((n + virtual) * p * (1 - p))[0], hermitian=True)
    return theta, virtual[0], inverse


@dataclass(frozen=True)
class Gauge:
    """Where the ratings' zero is, and their unit. Bradley-Terry fixes only differences of
    strength: the fit's thetas sum to zero, and a rating is factor * theta moved so that
    either the ratings' mean is `init` (no anchor) or one model's rating is the anchor's
    value, so that ratings can be compared from one run to the next."""

    factor: float  # Elo points per unit of theta: scale / ln(base)
    scale: float
    base: float
    init: float
    anchor_name: str | None = None
    anchor_value: float = 0.0
    anchor_index: int | None = None  # the anchor's place among the fit's models

    @classmethod
    def of(cls, models: list[str], anchor: tuple[str, float] | None, *, scale: float, base: float, init: float):
        """The gauge for `models` (in the fit's order); ValueError if the anchor is not among them."""
        factor = scale / math.log(base)
        if anchor is None:
            return cls(factor, scale, base, init)
        name = str(anchor[0])
        if name not in models:
            raise ValueError(f"anchor model {name!r} has no counted votes")
        return cls(factor, scale, base, init, name, float(anchor[1]), models.index(name))

    def elo(self, theta: np.ndarray) -> np.ndarray:
        """Elo ratings in this gauge, row-wise for a batch of thetas."""
        k = self.anchor_index
        if k is None:
            centred = theta - theta.mean(axis=-1, keepdims=True)
            return self.factor * centred + self.init
        return self.factor * (theta - theta[..., k : k + 1]) + self.anchor_value

    def covariance(self, covariance: np.ndarray) -> np.ndarray:
        """A covariance of thetas in the sum-zero gauge, moved to this one."""
        if self.anchor_index is None:
            return covariance
        shift = np.eye(len(covariance))
        shift[:, self.anchor_index] -= 1.0
        return shift @ covariance @ shift.T

    def parameters(self) -> dict:
        return {
            "scale": float(self.scale),
            "base": float(self.base),
            "init": float(self.init),
            # A list, not a tuple, so the parameters survive a JSON round trip unchanged.
            "anchor": None if self.anchor_name is None else [self.anchor_name, self.anchor_value],
        }


def rating_frame(
    models: list[str],
    rating: np.ndarray,
    ci_lower: np.ndarray,
    ci_upper: np.ndarray,
    sandwich_lower: np.ndarray,
    sandwich_upper: np.ndarray,
    votes: np.ndarray,
    *,
    rank_interval: str,
) -> pd.DataFrame:
    """The ratings table (COLUMNS), best first, ranked by the "bootstrap" interval (the ci
    columns) or the "sandwich" one."""
    frame = pd.DataFrame(
        {
            "rating": rating,
            "ci_lower": ci_lower,
            "ci_upper": ci_upper,
            "sandwich_lower": sandwich_lower,
            "sandwich_upper": sandwich_upper,
        },
        index=pd.Index(models, name="model"),
    )
    lower, upper = ("ci_lower", "ci_upper") if rank_interval == "bootstrap" else ("sandwich_lower", "sandwich_upper")
    frame["rank"] = rank_by_intervals(frame[lower].to_numpy(), frame[upper].to_numpy())
    frame["votes"] = votes
    # Models are in name order here, and a stable sort keeps equal ratings in that order.
    return frame.sort_values("rating", ascending=False, kind="mergesort")[COLUMNS]


def rank_by_intervals(lower: Sequence[float] | np.ndarray, upper: Sequence[float] | np.ndarray) -> np.ndarray:
    """1 + the number of models whose lower bound is above this model's upper bound: a model
    is outranked only by models that are better beyond doubt, so ranks can be shared."""
    lower = np.asarray(lower, dtype=float)
    upper = np.asarray(upper, dtype=float)
    return 1 + (lower[None, :] > upper[:, None]).sum(axis=1)


def _sandwich(
    table: PairTable, theta: np.ndarray, inverse: np.ndarray, cell_n: np.ndarray, virtual: np.ndarray
) -> np.ndarray:
    """Huber-White covariance of theta in the sum-zero gauge, with each vote as one unit.

    A vote on pair (i, j) with outcome y has score (y - p)(e_i - e_j), so the meat is
    sum_pairs (e_i - e_j)(e_i - e_j)' * sum_outcomes count * (y - p)^2, and the bread is the
    pseudo-inverse of the information, whose null space is the all-ones direction: that puts
    the covariance in the sum-zero gauge. Virtual ties count as votes, as they do in the fit.
    """
    p = expit(theta[table.pair_i] - theta[table.pair_j])
    y = np.array([1.0, 0.5, 0.0])[table.cell_outcome]
    squares = np.bincount(table.cell_pair, cell_n * (y - p[table.cell_pair]) ** 2, len(p))
    squares += virtual * (0.5 - p) ** 2
    meat = table.laplacians(squares[None, :])[0]
    return inverse @ meat @ inverse


_blas_lock = threading.Lock()
_blas_users = 0
_blas_limits: threadpool_limits | None = None


@contextmanager
def single_threaded_blas():
    """BLAS on one thread while any caller is inside, safe to enter from several threads.

    The bootstrap's matrix products are small (models x models by a batch): BLAS threads
    would only add waiting, and spin on the cores the batches need. threadpoolctl's limit is
    process-wide, so it is set by the first thread in and restored by the last one out."""
    global _blas_users, _blas_limits
    with _blas_lock:
        if _blas_users == 0:
            _blas_limits = threadpool_limits(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0 and _blas_limits is not None:
                _blas_limits.restore_original_limits()
                _blas_limits = None

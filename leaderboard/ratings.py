"""The rating engine: Bradley-Terry maximum likelihood on pair counts, on the Elo scale.

Pure numpy/pandas/scipy (and a few loops compiled by numba), no Django: the leaderboard task
aggregates votes into a counts table in SQL and hands it here, so everything below costs in
model *pairs*, not votes.

The model. Each vote between models i and j scores y = 1 (i wins), 1/2 (either kind of
tie) or 0 (j wins) for i, and P(i beats j) = sigmoid(theta_i - theta_j). A tie counts half
a win each way, as FastChat's ``elo_analysis.py`` does. The log-likelihood depends on the
votes only through, per pair, the number of votes n and i's score s, so the fit works on
those. Ratings are ``scale * theta / ln(base) + init``, centred so that their mean is
``init`` (or shifted so that the anchor model has its given rating).

The solver is a damped Newton method on the pair counts, run to machine precision: the
Hessian of the log-likelihood is a weighted graph Laplacian, singular only along the
all-ones direction (adding a constant to every theta changes nothing), so each step solves
``(L + 11'/m) step = gradient``, which keeps sum(theta) = 0. It stops when every model's
gradient is below 1e-10 times its Fisher information: the gradient test made scale-free (a
bare gradient norm is in vote units, and 1e-10 is below its rounding error on a million
votes). Newton converges quadratically, so the ratings are then at the optimum to far
better than 1e-6 Elo. Bootstrap resamples start from the full fit and take chord steps
(the full fit's Hessian, rescaled per round) to the same test, falling back to Newton (see
_refit).

When the maximum-likelihood estimate does not exist. The MLE is finite exactly when the
"scored against" graph (an edge i -> j when i has won or tied at least once against j) is
strongly connected (Zermelo 1929, Ford 1957). If it is not, e.g. a new model has won all of
its votes, the likelihood keeps rising as that model's rating goes to infinity. We then add
one virtual tie (half a win each way) to every compared pair whose two models lie in
different strongly connected components, and fit that. This is deterministic; it is the
Haldane-Anscombe 0.5 correction applied only where it is needed (a 5-0 pair is fitted as
5.5-0.5); and it leaves every pair inside a component alone. Data whose MLE exists is never
changed, so its ratings are the exact MLE. The
same rule applies to every bootstrap resample, where it matters more: a model with a
handful of votes often loses its only loss, or all of its votes, in a resample. The pairs
corrected in the main fit are listed in ``parameters["corrected_pairs"]``.

Confidence intervals, both 95%:

* bootstrap: the counts table is resampled multinomially (same total; drawn through Poisson
  counts, see _Resampler), each resample is refitted (batched, warm-started from the full
  fit) and the 2.5/97.5 percentiles of each model's rating are taken. Rows that describe
  the same event, e.g. (A, B, model_a) and (B, A, model_b), or "tie" and "tie (bothbad)"
  for the same pair, are merged first: a multinomial's merged cells are again multinomial,
  so this changes no distribution.
* sandwich (Huber-White): Cov(theta) = L+ M L+, where L is the Fisher information, L+ its
  pseudo-inverse (which puts the covariance in the sum-zero gauge) and M the sum over votes
  of the outer products of each vote's score, computed per pair from the outcome counts. It
  stays right when ties make votes less variable than the Bernoulli model assumes.

An anchored table moves both intervals to the anchor's gauge: the anchor's own interval is
a point, and everyone else's measures the difference to it.
"""

from __future__ import annotations

import functools
import math
import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.special import expit, gammaln, log_expit
from threadpoolctl import threadpool_limits

# The score of model_a for each winner value.
SCORES: dict[str, float] = {"model_a": 1.0, "model_b": 0.0, "tie": 0.5, "tie (bothbad)": 0.5}
COLUMNS = ["rating", "ci_lower", "ci_upper", "sandwich_lower", "sandwich_upper", "rank", "votes"]

# Ties added to each pair that crosses strongly connected components (see the module doc).
VIRTUAL_TIES = 1.0
TOLERANCE = 1e-10
MAX_ITERATIONS = 200
CHORD_ITERATIONS = 60
Z95 = 1.959963984540054  # the 97.5% normal quantile
# Bootstrap rounds are fitted in batches of about this many (pair, round) values, so a batch's
# arrays stay within the processor's caches.
BATCH_PAIR_ROUNDS = 400_000
# The bootstrap draws its batches' resamples a few batches at a time, up to about this many
# (cell, round) counts (40 MB) per thread, so that each stretch of the resampler's tables is
# read from memory once for all of them (see _Resampler.draw_batches).
BATCH_DRAW_CELLS = 5_000_000
# _fit's rounds, which hold one m x m Hessian each, are capped at about 32 MB per batch.
BATCH_HESSIAN_CELLS = 4_000_000
# aggregate() counts in a dense array up to this many (model A, model B, winner) combinations.
DENSE_COUNT_LIMIT = 50_000_000
# Bootstrap batches run on this many threads at most: one per core, since they compute.
BOOTSTRAP_THREADS = max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1))
# The resampler (_Resampler) draws Poisson counts whose total falls short of the votes by
# this many standard deviations, so that a round overshoots (and is drawn again) about once in
# 740, and tops the rest up vote by vote; its tables leave out Poisson tails of less than
# e^-37.5 (5e-17), below the resolution of a double-precision uniform (2^-53, 1.1e-16).
POISSON_SHORTFALL_SD = 3.0
POISSON_TAIL_LOG = 37.5
# Guide-table bins per standard deviation of each cell's Poisson count.
GUIDE_BINS_PER_SD = 16
# _Resampler.draw_batches walks the tables in blocks of cells of about this many guide entries
# (1 MB of guide and thresholds), which stay in the processor's caches while every batch's
# uniforms for those cells are looked up.
GUIDE_BLOCK_ENTRIES = 65_536


class DisconnectedComparisons(ValueError):
    """The comparison graph falls apart: no vote links some groups of models, so their
    ratings relative to each other are not identifiable."""

    def __init__(self, components: list[list[str]]):
        self.components = components
        groups = "; ".join("[" + ", ".join(names) + "]" for names in components)
        super().__init__(
            f"The comparisons fall into {len(components)} groups that no vote connects, so their "
            f"ratings cannot be put on one scale: {groups}"
        )


@dataclass(frozen=True)
class RatingTable:
    ratings: pd.DataFrame
    total_votes: int
    parameters: dict = field(default_factory=dict)


def aggregate(battles: pd.DataFrame) -> pd.DataFrame:
    """Per-vote frame (columns model_a, model_b, winner) -> counts frame (model_a, model_b, winner, n)."""
    _check_columns(battles, ["model_a", "model_b", "winner"])
    _check_winners(battles["winner"])
    if battles.empty:
        return pd.DataFrame({"model_a": [], "model_b": [], "winner": [], "n": np.array([], dtype=np.int64)})
    # Code each column, then count the combined codes in one bincount: a groupby on three
    # string columns costs several times more at millions of votes. Row order does not
    # matter to the engine, which sorts the models itself.
    codes, names = zip(*(pd.factorize(battles[column]) for column in ("model_a", "model_b", "winner")), strict=True)
    na, nb, nw = (len(n) for n in names)
    key = (codes[0].astype(np.int64) * nb + codes[1]) * nw + codes[2]
    if na * nb * nw <= DENSE_COUNT_LIMIT:
        n = np.bincount(key, minlength=na * nb * nw)
        key = np.flatnonzero(n)
        n = n[key]
    else:  # thousands of models: too many combinations for a dense count
        key, n = np.unique(key, return_counts=True)
    a, rest = np.divmod(key, nb * nw)
    b, w = np.divmod(rest, nw)
    return pd.DataFrame(
        {
            "model_a": np.asarray(names[0], dtype=object)[a],
            "model_b": np.asarray(names[1], dtype=object)[b],
            "winner": np.asarray(names[2], dtype=object)[w],
            "n": n.astype(np.int64),
        }
    )


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
    table = _Table.from_counts(counts)
    m = len(table.models)
    anchor_index = None
    if anchor is not None:
        anchor_name, anchor_value = anchor
        anchor_name = str(anchor_name)
        if anchor_name not in table.models:
            raise ValueError(f"anchor model {anchor_name!r} has no counted votes")
        anchor_index = table.models.index(anchor_name)
        anchor_value = float(anchor_value)

    factor = scale / math.log(base)

    def to_elo(theta: np.ndarray) -> np.ndarray:
        """Elo ratings in the requested gauge, row-wise for a batch of thetas."""
        if anchor_index is None:
            centred = theta - theta.mean(axis=-1, keepdims=True)
            return factor * centred + init
        return factor * (theta - theta[..., anchor_index : anchor_index + 1]) + anchor_value

    # Every matrix here is models x models or smaller: BLAS threads would only wait on each
    # other (the bootstrap's own threads are what use the cores).
    with single_threaded_blas():
        # The main fit.
        cells_n = table.cell_n[None, :]
        n, s = table.pair_totals(cells_n)
        virtual = table.virtual_ties(n, s)
        theta = _fit(table, n + virtual, s + virtual / 2, np.zeros((1, m)))[0]
        rating = to_elo(theta)
        corrected = [[table.models[table.pair_i[p]], table.models[table.pair_j[p]]] for p in np.flatnonzero(virtual[0])]

        # The inverse Fisher information in the sum-zero gauge: the sandwich's bread, and the
        # fixed Hessian of the bootstrap's chord steps.
        p = expit(theta[table.pair_i] - theta[table.pair_j])
        inverse = np.linalg.pinv(table.laplacians((n + virtual) * p * (1 - p))[0], hermitian=True)

        # Sandwich covariance, in the sum-zero gauge, then moved to the anchor's if there is one.
        covariance = _sandwich(table, theta, inverse, cells_n[0], virtual[0])
        if anchor_index is not None:
            shift = np.eye(m)
            shift[:, anchor_index] -= 1.0
            covariance = shift @ covariance @ shift.T
        se = factor * np.sqrt(np.clip(np.diag(covariance), 0.0, None))

        # Bootstrap.
        corrected_rounds = 0
        if bootstrap_rounds:
            threads = BOOTSTRAP_THREADS if threads is None else max(1, threads)
            samples, corrected_rounds = _bootstrap(table, theta, inverse, bootstrap_rounds, seed, threads)
            ci_lower, ci_upper = np.percentile(to_elo(samples), [2.5, 97.5], axis=0)
        else:
            ci_lower = ci_upper = np.full(m, np.nan)

    frame = pd.DataFrame(
        {
            "rating": rating,
            "ci_lower": ci_lower,
            "ci_upper": ci_upper,
            "sandwich_lower": rating - Z95 * se,
            "sandwich_upper": rating + Z95 * se,
        },
        index=pd.Index(table.models, name="model"),
    )
    lower, upper = ("ci_lower", "ci_upper") if bootstrap_rounds else ("sandwich_lower", "sandwich_upper")
    frame["rank"] = rank_by_intervals(frame[lower].to_numpy(), frame[upper].to_numpy())
    frame["votes"] = table.votes
    # Models are in name order here, and a stable sort keeps equal ratings in that order.
    frame = frame.sort_values("rating", ascending=False, kind="mergesort")[COLUMNS]

    parameters = {
        "method": "bradley-terry-mle",
        "bootstrap_rounds": int(bootstrap_rounds),
        "seed": int(seed),
        "scale": float(scale),
        "base": float(base),
        "init": float(init),
        # A list, not a tuple, so the parameters survive a JSON round trip unchanged.
        "anchor": None if anchor_index is None else [table.models[anchor_index], anchor_value],
        "tie_score": 0.5,
        "tolerance": TOLERANCE,
        "virtual_ties": VIRTUAL_TIES,
        "corrected_pairs": corrected,
        "bootstrap_corrected_rounds": int(corrected_rounds),
        "rank_interval": "bootstrap" if bootstrap_rounds else "sandwich",
    }
    return RatingTable(ratings=frame, total_votes=int(table.cell_n.sum()), parameters=parameters)


def rank_by_intervals(lower: Sequence[float] | np.ndarray, upper: Sequence[float] | np.ndarray) -> np.ndarray:
    """1 + the number of models whose lower bound is above this model's upper bound: a model
    is outranked only by models that are better beyond doubt, so ranks can be shared."""
    lower = np.asarray(lower, dtype=float)
    upper = np.asarray(upper, dtype=float)
    return 1 + (lower[None, :] > upper[:, None]).sum(axis=1)


def online_elo(
    battles: pd.DataFrame,
    *,
    k: float = 4,
    scale: float = 400,
    base: float = 10,
    init: float = 1000,
    initial: Mapping[str, float] | None = None,
) -> pd.Series:
    """battles in time order (columns model_a, model_b, winner); FastChat's compute_elo; returns rating per model.

    Order-dependent by design: this is the classic sequential Elo that Chatbot Arena
    published before it moved to Bradley-Terry, kept to compare against. The formulas are
    FastChat's, term for term, so the numbers match its output. ``initial`` continues from
    ratings computed on earlier votes: Elo over all votes equals Elo over the later ones
    started from the ratings after the earlier ones.
    """
    _check_columns(battles, ["model_a", "model_b", "winner"])
    _check_winners(battles["winner"])
    rating: dict[str, float] = {str(name): float(value) for name, value in (initial or {}).items()}
    # Codes and plain lists: this loop is sequential by nature and runs once per vote.
    sides = np.concatenate([battles["model_a"].to_numpy(dtype=object), battles["model_b"].to_numpy(dtype=object)])
    names, codes = np.unique(sides.astype(str), return_inverse=True)
    names = names.tolist()
    values = [rating.get(name, init) for name in names]
    n = len(battles)
    scores = battles["winner"].map(SCORES).tolist()
    for i, j, sa in zip(codes[:n].tolist(), codes[n:].tolist(), scores, strict=True):
        ra, rb = values[i], values[j]
        ea = 1 / (1 + base ** ((rb - ra) / scale))
        eb = 1 / (1 + base ** ((ra - rb) / scale))
        values[i] = ra + k * (sa - ea)
        values[j] = rb + k * (1 - sa - eb)
    rating.update(zip(names, values, strict=True))
    series = pd.Series(rating, name="rating", dtype=float)
    series.index.name = "model"
    return series.sort_values(ascending=False, kind="mergesort")


# Internals.


class _Table:
    """The counts in canonical form: models in name order, each pair once as (i, j) with
    i < j, and the votes as cells (pair, outcome) with outcome 0 = i won, 1 = tie, 2 = j won."""

    def __init__(self, models: list[str], pair_i: np.ndarray, pair_j: np.ndarray, cells: pd.DataFrame):
        self.models = models
        self.pair_i = pair_i
        self.pair_j = pair_j
        self.cell_pair = cells["pair"].to_numpy()
        self.cell_outcome = cells["outcome"].to_numpy()
        self.cell_n = cells["n"].to_numpy(dtype=np.int64)
        m, p = len(models), len(pair_i)
        self.m = m
        # Flat positions of (i, j) and (j, i) in an m x m matrix, for building Laplacians.
        self.off_diagonal = np.concatenate([pair_i * m + pair_j, pair_j * m + pair_i])
        self.diagonal = np.arange(m) * (m + 1)
        n_pair = np.bincount(self.cell_pair, weights=self.cell_n, minlength=p)
        self.votes = (np.bincount(pair_i, n_pair, m) + np.bincount(pair_j, n_pair, m)).astype(np.int64)
        # Sparse maps for the bootstrap, which holds a batch of rounds as columns: cells -> each
        # pair's votes and score, and pairs -> each model's gradient (B') and information (|B|').
        cells = np.arange(len(self.cell_n))
        self.cell_to_votes = csr_matrix((np.ones(len(cells)), (self.cell_pair, cells)), shape=(p, len(cells)))
        score = np.array([1.0, 0.5, 0.0])[self.cell_outcome]
        self.cell_to_score = csr_matrix((score, (self.cell_pair, cells)), shape=(p, len(cells)))
        rows, columns = np.concatenate([pair_i, pair_j]), np.concatenate([np.arange(p), np.arange(p)])
        self.incidence = csr_matrix((np.repeat([1.0, -1.0], p), (rows, columns)), shape=(m, p))
        self.incidence_abs = csr_matrix((np.ones(2 * p), (rows, columns)), shape=(m, p))
        self._spanning_pairs: np.ndarray | None = None

    @classmethod
    def from_counts(cls, counts: pd.DataFrame) -> _Table:
        _check_columns(counts, ["model_a", "model_b", "winner", "n"])
        _check_winners(counts["winner"])
        n = pd.to_numeric(counts["n"], errors="raise").to_numpy(dtype=float)
        if np.isnan(n).any() or (n < 0).any() or (n != np.round(n)).any():
            raise ValueError("n must be a whole number >= 0 in every row")
        kept = n > 0
        if not kept.any():
            raise ValueError("No votes to rate: the counts table is empty or every row has n == 0")
        # Names are coded once with factorize (sorted, so model order does not depend on row order);
        # mapping strings row by row would dominate the whole fit.
        names_a = counts["model_a"].to_numpy(dtype=object)[kept].astype(str)
        names_b = counts["model_b"].to_numpy(dtype=object)[kept].astype(str)
        codes, uniques = pd.factorize(np.concatenate([names_a, names_b]), sort=True)
        models = [str(name) for name in uniques]
        a, b = codes[: len(names_a)], codes[len(names_a) :]
        same = a == b
        if same.any():
            raise ValueError(f"A model cannot battle itself: {models[a[same][0]]!r}")
        flipped = a > b
        lo, hi = np.where(flipped, b, a), np.where(flipped, a, b)
        winner_codes, winners = pd.factorize(counts["winner"].to_numpy(dtype=object)[kept])
        score = np.array([SCORES[w] for w in winners])[winner_codes]
        score = np.where(flipped, 1.0 - score, score)  # now the score of the lower index
        outcome = np.select([score == 1.0, score == 0.5], [0, 1], 2)

        m = len(models)
        keys, pair = np.unique(lo * m + hi, return_inverse=True)
        # Sum the counts per (pair, outcome) cell; the flat cell key sorts by pair, then outcome.
        cell_keys, cell_index = np.unique(pair * 3 + outcome, return_inverse=True)
        cell_n = np.bincount(cell_index, weights=n[kept], minlength=len(cell_keys)).astype(np.int64)
        cells = pd.DataFrame({"pair": cell_keys // 3, "outcome": cell_keys % 3, "n": cell_n})
        table = cls(models, keys // m, keys % m, cells)
        table.check_connected()
        return table

    def check_connected(self) -> None:
        graph = coo_matrix((np.ones(len(self.pair_i)), (self.pair_i, self.pair_j)), shape=(self.m, self.m))
        count, labels = connected_components(graph, directed=False)
        if count > 1:
            groups = [[self.models[i] for i in np.flatnonzero(labels == c)] for c in range(count)]
            groups.sort(key=lambda names: (-len(names), names))
            raise DisconnectedComparisons(groups)

    def votes_per_pair(self) -> np.ndarray:
        return np.bincount(self.cell_pair, weights=self.cell_n, minlength=len(self.pair_i))

    def pair_totals(self, cell_n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Votes n and score s of the lower-index model per pair, for a batch of cell counts (rounds x cells)."""
        rounds, p = cell_n.shape[0], len(self.pair_i)
        index = (np.arange(rounds)[:, None] * p + self.cell_pair[None, :]).ravel()
        n = np.bincount(index, cell_n.ravel(), rounds * p).reshape(rounds, p)
        score = np.array([1.0, 0.5, 0.0])[self.cell_outcome]
        s = np.bincount(index, (cell_n * score[None, :]).ravel(), rounds * p).reshape(rounds, p)
        return n, s

    def spanning_pairs(self) -> np.ndarray:
        """Pairs forming a spanning tree of the comparison graph, chosen so that each was
        scored as much as possible both ways (a maximum spanning tree on the smaller of the
        two scores). A round in which every one of them was scored both ways is strongly
        connected, which the bootstrap tests for all its rounds at once."""
        if self._spanning_pairs is None:
            from scipy.sparse.csgraph import minimum_spanning_tree

            n, s = self.pair_totals(self.cell_n[None, :])
            weakest = np.minimum(s[0], n[0] - s[0])
            # Weights must be positive to count as edges: the tree maximises the weaker score.
            weight = 1.0 / (1.0 + weakest)
            tree = minimum_spanning_tree(csr_matrix((weight, (self.pair_i, self.pair_j)), shape=(self.m, self.m)))
            tree = tree.tocoo()
            lo, hi = np.minimum(tree.row, tree.col), np.maximum(tree.row, tree.col)
            self._spanning_pairs = np.searchsorted(self.pair_i * self.m + self.pair_j, lo * self.m + hi)
        return self._spanning_pairs

    def virtual_ties_columns(self, n: np.ndarray, s: np.ndarray) -> np.ndarray:
        """virtual_ties for a batch held as columns (pairs x rounds). Most rounds are shown to
        be strongly connected by the spanning pairs alone; only the others are searched."""
        tree = self.spanning_pairs()
        both_ways = (s[tree] > 0) & (n[tree] - s[tree] > 0)
        doubtful = np.flatnonzero(~both_ways.all(axis=0))
        virtual = np.zeros(n.shape)
        if len(doubtful):
            virtual[:, doubtful] = self.virtual_ties(n[:, doubtful].T, s[:, doubtful].T).T
        return virtual

    def virtual_ties(self, n: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Virtual ties per pair (rounds x pairs): VIRTUAL_TIES on every compared pair whose
        models lie in different strongly connected components of that round's
        scored-against graph, nothing when the graph is strongly connected."""
        forward = s > 0  # i scored against j
        backward = n - s > 0  # j scored against i
        virtual = np.zeros(n.shape)
        # Cheap test first: if every pair was scored both ways, the graph is strongly
        # connected because the comparison graph is connected (checked on the full data).
        for r in np.flatnonzero(~(forward & backward).all(axis=1)):
            rows = np.concatenate([self.pair_i[forward[r]], self.pair_j[backward[r]]])
            cols = np.concatenate([self.pair_j[forward[r]], self.pair_i[backward[r]]])
            graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(self.m, self.m))
            count, labels = connected_components(graph, directed=True, connection="strong")
            if count > 1:
                virtual[r] = np.where(labels[self.pair_i] != labels[self.pair_j], VIRTUAL_TIES, 0.0)
        return virtual

    def laplacians(self, weights: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """fill + sum_pairs w (e_i - e_j)(e_i - e_j)' for a batch of pair weights (rounds x pairs).

        Each pair appears once, so its off-diagonal cells can be assigned through flat
        indices rather than accumulated, which is several times faster on a batch.
        """
        rounds, m = weights.shape[0], self.m
        matrix = np.full(rounds * m * m, fill)
        offsets = np.arange(rounds)[:, None] * (m * m)
        matrix[(offsets + self.off_diagonal[None, :]).ravel()] = fill - np.concatenate([weights, weights], 1).ravel()
        degree = _scatter(weights, self.pair_i, m) + _scatter(weights, self.pair_j, m)
        matrix[(offsets + self.diagonal[None, :]).ravel()] += degree.ravel()
        return matrix.reshape(rounds, m, m)


def _fit(table: _Table, n: np.ndarray, s: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Maximise each round's log-likelihood by damped Newton; n, s are rounds x pairs and
    theta (rounds x models) is the starting point. Returns theta with sum 0 per round."""
    theta = theta - theta.mean(axis=1, keepdims=True)
    i, j, m = table.pair_i, table.pair_j, table.m
    active = np.arange(theta.shape[0])
    for _ in range(MAX_ITERATIONS):
        th, nn, ss = theta[active], n[active], s[active]
        d = th[:, i] - th[:, j]
        p = expit(d)
        residual = ss - nn * p
        gradient = _scatter(residual, i, m) - _scatter(residual, j, m)
        weight = nn * p * (1 - p)
        # Converged when each model's gradient, divided by its Fisher information (the
        # Hessian's diagonal), is below the tolerance: a scale-free gradient test, so it means
        # the same on ten votes and on a million. Newton converges quadratically, so the last
        # step taken before this holds was already of the order of the tolerance.
        degree = _scatter(weight, i, m) + _scatter(weight, j, m)
        done = (np.abs(gradient) <= TOLERANCE * degree).all(axis=1)
        if done.all():
            return theta
        keep = ~done
        active, th, nn, ss, d = active[keep], th[keep], nn[keep], ss[keep], d[keep]
        gradient, weight = gradient[keep], weight[keep]

        # The 1/m fills in the all-ones null direction; the gradient sums to zero, so the
        # step does too and theta stays centred.
        hessian = table.laplacians(weight, fill=1.0 / m)
        step = np.linalg.solve(hessian, gradient[..., None])[..., 0]

        # A step of at most 0.25 moves each d by at most 0.5, which changes every pair's
        # curvature p(1 - p) by less than a factor e^0.5 < 2, and then a Newton step on a
        # concave function cannot lower it. Larger steps, far from the optimum (big rating
        # gaps), are halved until the log-likelihood does not fall.
        t = np.ones(len(active))
        far = np.flatnonzero(np.abs(step).max(axis=1) > 0.25)
        if len(far):
            before = _loglik(d[far], nn[far], ss[far])
            scale = np.ones(len(far))
            for _ in range(60):
                candidate = th[far] + scale[:, None] * step[far]
                after = _loglik(candidate[:, i] - candidate[:, j], nn[far], ss[far])
                worse = after < before
                if not worse.any():
                    break
                scale = np.where(worse, scale / 2, scale)
            t[far] = scale
        theta[active] = th + t[:, None] * step
    raise RuntimeError(f"Bradley-Terry fit did not converge in {MAX_ITERATIONS} Newton steps")


def _loglik(d: np.ndarray, n: np.ndarray, s: np.ndarray) -> np.ndarray:
    # s log sigmoid(d) + (n - s) log sigmoid(-d), using log sigmoid(d) = d + log sigmoid(-d)
    # to evaluate one logarithm per pair instead of two.
    return (s * d + n * log_expit(-d)).sum(axis=1)


def _scatter(values: np.ndarray, index: np.ndarray, size: int) -> np.ndarray:
    """Row-wise bincount: out[r, index[k]] += values[r, k]."""
    rounds = values.shape[0]
    flat = (np.arange(rounds)[:, None] * size + index[None, :]).ravel()
    return np.bincount(flat, values.ravel(), rounds * size).reshape(rounds, size)


def _refit(table: _Table, n: np.ndarray, s: np.ndarray, theta: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """Fit rounds held as columns (n, s: pairs x rounds) whose optimum is near theta, e.g.
    bootstrap resamples of the data theta was fitted to; `inverse` is that fit's inverse
    information. Returns theta per round as columns (models x rounds).

    Chord steps: Newton steps that keep the starting point's Hessian instead of building and
    solving one per round and step, so a step is one matrix product for the whole batch. The
    Hessian is rescaled per round by each model's information in that round (the diagonal of
    D^(1/2) H D^(1/2)), which follows most of a resample's change, the count of a model's votes,
    and so saves steps. A round stops at the same scale-free test as _fit, each model's
    gradient within TOLERANCE of its information, taken here at the starting point: it lands
    on the same maximum. A round whose steps do not at least halve each time is handed to
    _fit, from the starting point, instead.
    """
    i, j, m = table.pair_i, table.pair_j, table.m
    rounds = n.shape[1]
    out = np.empty((m, rounds))
    # In C order, as _chord_gradient reads them (the sparse products give column-major arrays).
    n, s = np.ascontiguousarray(n, dtype=float), np.ascontiguousarray(s, dtype=float)
    n_all, s_all = n, s
    start_p = expit(theta[i] - theta[j])
    start_w = start_p * (1 - start_p)
    degree = table.incidence_abs @ (n * start_w[:, None])
    full = table.incidence_abs @ (table.votes_per_pair() * start_w)
    # A model without votes in a round keeps a scale of 1; _fit handles such rounds if they stall.
    root = np.sqrt(np.where(degree > 0, degree / full[:, None], 1.0))
    current = np.repeat(theta[:, None], rounds, axis=1)
    previous = np.full(rounds, np.inf)
    active = np.arange(rounds)
    stalled: list[np.ndarray] = []
    for _ in range(CHORD_ITERATIONS):
        # p = 1 / (1 + e^-d) and the residual s - n p, summed into each model's gradient: the
        # batch's largest arrays (pairs x rounds), so after numpy's exponential (whose rounding
        # the results depend on) in one compiled pass instead of five and a sparse product.
        e = current[i] - current[j]
        np.negative(e, out=e)
        np.exp(e, out=e)
        gradient = _chord_gradient(e, n, s, i, j, m)
        going = ~(np.abs(gradient) <= TOLERANCE * degree).all(axis=0)
        if not going.all():
            out[:, active[~going]] = current[:, ~going]
            keep = np.flatnonzero(going)
            active, current, gradient = active[keep], current[:, keep], gradient[:, keep]
            n, s, degree, root = n[:, keep], s[:, keep], degree[:, keep], root[:, keep]
        if not len(active):
            break
        # The gradient sums to zero and the inverse maps onto the sum-zero plane; the rescaling
        # moves the sum a little, so the step is centred again.
        step = (inverse @ (gradient / root)) / root
        step -= step.mean(axis=0, keepdims=True)
        size = np.abs(step).max(axis=0)
        # A step above 0.25 is where _fit starts to check the log-likelihood: leave it to _fit.
        contracting = (size <= 0.5 * previous[active]) & (size <= 0.25)
        if not contracting.all():
            stalled.append(active[~contracting])
            keep = np.flatnonzero(contracting)
            active, current, step, size = active[keep], current[:, keep], step[:, keep], size[keep]
            n, s, degree, root = n[:, keep], s[:, keep], degree[:, keep], root[:, keep]
        previous[active] = size
        current += step
        if not len(active):
            break
    stalled.append(active)
    redo = np.concatenate(stalled)
    # _fit holds an m x m Hessian per round: a few rounds at a time when the models are many.
    chunk = max(1, BATCH_HESSIAN_CELLS // (m * m))
    for begin in range(0, len(redo), chunk):
        part = redo[begin : begin + chunk]
        start = np.repeat(theta[None, :], len(part), 0)
        out[:, part] = _fit(table, n_all[:, part].T, s_all[:, part].T, start).T
    return out


def _sandwich(
    table: _Table, theta: np.ndarray, inverse: np.ndarray, cell_n: np.ndarray, virtual: np.ndarray
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


def _bootstrap(
    table: _Table, theta: np.ndarray, inverse: np.ndarray, rounds: int, seed: int, threads: int
) -> tuple[np.ndarray, int]:
    """Refit `rounds` multinomial resamples of the cells; returns thetas (rounds x models)
    and how many rounds needed virtual ties.

    Rounds go in batches, held as columns (pairs x rounds), which bound the memory and keep
    each batch's arrays in cache. Each batch draws from its own generator, spawned from the
    seed, so the batches can run on several threads (numpy's and scipy's array work releases
    the GIL) and the result does not depend on how many there are or which ran first. A few
    batches at a time are drawn together (_Resampler.draw_batches, the same counts as one by
    one), in groups spread evenly over the threads.
    """
    resampler = _Resampler(table.cell_n)
    batch = max(1, min(rounds, BATCH_PAIR_ROUNDS // max(1, len(table.pair_i))))
    starts = list(range(0, rounds, batch))
    generators = [np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(len(starts))]
    samples = np.empty((rounds, table.m))

    def run(group: np.ndarray) -> int:
        sizes = [min(batch, rounds - starts[b]) for b in group]
        draws = resampler.draw_batches([generators[b] for b in group], sizes)
        corrected = 0
        for b, size, cell_n in zip(group, sizes, draws, strict=True):
            n = table.cell_to_votes @ cell_n
            s = table.cell_to_score @ cell_n
            virtual = table.virtual_ties_columns(n, s)
            needed = virtual.any(axis=0)
            if needed.any():
                n, s = n + virtual, s + virtual / 2
            samples[starts[b] : starts[b] + size] = _refit(table, n, s, theta, inverse).T
            corrected += int(needed.sum())
        return corrected

    workers = min(len(starts), threads)
    # Groups of at most per_group batches, as many as a multiple of the threads, so that each
    # thread gets the same number of batches (give or take one group's difference).
    per_group = max(1, BATCH_DRAW_CELLS // (batch * resampler.cells))
    count = min(len(starts), workers * math.ceil(len(starts) / (workers * per_group)))
    groups = np.array_split(np.arange(len(starts)), count)
    # BLAS is on one thread already (compute_ratings): the batches' threads use the cores.
    if workers <= 1:
        corrected = sum(run(group) for group in groups)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            corrected = sum(pool.map(run, groups))
    return samples, corrected


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


class _Resampler:
    """Draws multinomial resamples of the cell counts (N votes, cell c with probability
    n_c / N), many rounds at once, several times faster than numpy's
    multinomial, which draws one binomial per cell and round.

    The draw rests on a Poisson identity: independent Poisson counts with means lambda * p_c,
    given that they total s, are multinomial(s, p). So each round draws Poisson counts at a
    total lambda a few standard deviations short of N; a round that overshoots N is drawn
    again (which leaves the others' distribution as it was, since the test looks only at the
    total), and the N - s votes still missing are drawn one at a time from p (alias method)
    and added: multinomial(s, p) plus multinomial(N - s, p) is multinomial(N, p).

    The Poisson counts are drawn by inversion, one uniform per cell and round, through each
    cell's cumulative distribution and a guide table of equal-probability bins that points at
    the first value of each bin; the cells' means do not change between rounds, so the tables
    are built once. Both stop at tails of probability e^-POISSON_TAIL_LOG. The probabilities
    are exact to about 1e-12 (for the largest cells, the rounding of log-probabilities of
    several hundred thousand), so a draw differs from exact inversion with probability of that
    order: nothing a bootstrap of 1000 rounds can show.

    The work per value and per draw runs in compiled loops (see _compiled): numpy needs some
    ten passes over each cells x rounds array for it, and those were most of a bootstrap's
    time. The loops do, operation for operation, what the numpy expressions did, on the same
    uniforms in the same order, so a seed gives the same resamples as before; the logarithms,
    the exponentials and the per-cell sums stay numpy's, whose rounding the tables depend on.
    """

    def __init__(self, cell_n: np.ndarray):
        counts = np.asarray(cell_n, dtype=float)
        self.total = int(round(counts.sum()))
        self.cells = len(counts)
        shortfall = POISSON_SHORTFALL_SD * math.sqrt(self.total)
        mu = counts * (max(self.total - shortfall, 0.0) / self.total)
        self._build_tables(mu)
        self._build_alias(counts / counts.sum())

    def _build_tables(self, mu: np.ndarray) -> None:
        cells, tail = len(mu), POISSON_TAIL_LOG
        # Chernoff/Bernstein bounds: P(X <= mu - t) <= exp(-t^2 / 2 mu), P(X >= mu + t) <= exp(-t^2 / 2 (mu + t/3)).
        low = np.maximum(0, np.floor(mu - np.sqrt(2 * tail * mu))).astype(np.int64)
        high = np.ceil(mu + tail / 3 + np.sqrt((tail / 3) ** 2 + 2 * tail * mu)).astype(np.int64)
        width = high - low + 1
        first = np.zeros(cells, np.int64)
        np.cumsum(width[:-1], out=first[1:])
        last = first + width - 1
        with np.errstate(divide="ignore"):
            log_mu = np.where(mu > 0, np.log(mu), 0.0)
        log_factorial = gammaln(np.arange(int(high.max()) + 1) + 1.0)
        pmf = _poisson_log_pmf(low, width, first, log_mu, mu, log_factorial)
        np.exp(pmf, out=pmf)
        # Each cell's sum, for the cumulative sums that restart at each cell (_poisson_guide).
        sums = np.add.reduceat(pmf, first)
        bins = np.ceil(GUIDE_BINS_PER_SD * np.sqrt(mu)).astype(np.int64) + GUIDE_BINS_PER_SD
        self.guide_first = np.zeros(cells, np.int64)
        np.cumsum(bins[:-1] + 1, out=self.guide_first[1:])
        self.cdf, self.guide, self.threshold = _poisson_guide(pmf, sums, first, last, bins, self.guide_first)
        self.bins = bins.astype(float)
        self.offset = first - low
        # Blocks of cells for draw_batches: cut where the guide entries pass a multiple of the block size.
        marks = np.arange(GUIDE_BLOCK_ENTRIES, len(self.guide), GUIDE_BLOCK_ENTRIES)
        cuts = np.unique(np.searchsorted(self.guide_first, marks))
        bounds = [0, *(int(c) for c in cuts if 0 < c < cells), cells]
        self.blocks = list(zip(bounds[:-1], bounds[1:], strict=True))

    def _build_alias(self, p: np.ndarray) -> None:
        prob = p * len(p)
        self.alias = _vose_alias(prob)
        self.alias_prob = prob

    def draw(self, rng: np.random.Generator, rounds: int) -> np.ndarray:
        """Counts per cell (cells x rounds, float), each column summing to the total."""
        return self.draw_batches([rng], [rounds])[0]

    def draw_batches(self, generators: Sequence[np.random.Generator], rounds: Sequence[int]) -> list[np.ndarray]:
        """draw(generator, rounds) for each pair, together: the same counts.

        One batch of a few dozen rounds makes a few dozen lookups per cell, spread over the
        cell's stretch of the tables, so nearly every one misses the processor's caches. The
        batches' first Poisson draws therefore go block of cells by block of cells (each
        generator still gives its uniforms cell by cell, in its own order), and a block's
        tables, read once, serve all of them."""
        outs = [np.empty((self.cells, r)) for r in rounds]
        totals = [np.zeros(r, np.int64) for r in rounds]
        for begin, end in self.blocks:
            for rng, out, total in zip(generators, outs, totals, strict=True):
                self._invert(rng.random((end - begin, out.shape[1])), out, 0, total, begin)
        for rng, out, total in zip(generators, outs, totals, strict=True):
            self._complete(rng, out, total)
        return outs

    def _complete(self, rng: np.random.Generator, out: np.ndarray, totals: np.ndarray) -> None:
        """Finishes a draw whose first Poisson counts (totals per round) are in out."""
        rounds, filled = out.shape[1], 0
        while True:
            fits = totals <= self.total
            if not fits.all():  # the rounds that overshot go, and the others close up
                keep = np.flatnonzero(fits)
                out[:, filled : filled + len(keep)] = out[:, filled + keep]
                totals = totals[keep]
            missing = self.total - totals
            if missing.any():
                x = rng.random(int(missing.sum()))
                _alias_fill(x, self.cells, self.alias_prob, self.alias, missing, out, filled)
            filled += len(totals)
            if filled == rounds:
                return
            totals = np.zeros(rounds - filled, np.int64)
            self._invert(rng.random((self.cells, rounds - filled)), out, filled, totals)

    def _poisson(self, u: np.ndarray) -> np.ndarray:
        """Inverse Poisson cdf of each cell (rows) at the uniforms u (cells x rounds): the
        smallest value whose cdf reaches u, as floats."""
        u = np.ascontiguousarray(u, dtype=float)
        out = np.empty(u.shape)
        self._invert(u, out, 0, np.zeros(u.shape[1], np.int64))
        return out

    def _invert(self, u: np.ndarray, out: np.ndarray, start: int, totals: np.ndarray, begin: int = 0) -> None:
        """_poisson of cells begin, begin + 1, ... (u's rows) into out's columns from start on,
        adding each round's sum to totals."""
        end = begin + len(u)
        cells = slice(begin, end)
        tables = self.bins[cells], self.guide_first[cells], self.guide, self.threshold, self.cdf, self.offset[cells]
        _poisson_draw(u, *tables, out[cells], start, totals)


def _compiled(function):
    """Compiles a loop with numba (nopython, the GIL released so that the bootstrap's threads
    run it side by side, the machine code cached on disk) on its first call.

    numba is imported then, not with this module: the web processes import the engine through
    the leaderboard's services but never resample, and numba with LLVM would add about 110 MB
    to each of them."""
    compiled = None
    lock = threading.Lock()

    @functools.wraps(function)
    def call(*args):
        nonlocal compiled
        if compiled is None:
            with lock:
                if compiled is None:
                    import numba

                    compiled = numba.njit(cache=True, nogil=True)(function)
        return compiled(*args)

    return call


@_compiled
def _chord_gradient(e, n, s, i, j, m):
    """sum over pairs of (s - n p)(e_i - e_j), per round, with p = 1 / (1 + e) (e = exp(-d)):
    the operations of the numpy expressions and the incidence matrix product this replaces, in
    their order (the CSR matrix adds a model's pairs in pair order), so the sums are the same."""
    gradient = np.zeros((m, e.shape[1]))
    for k in range(len(i)):
        a, b = i[k], j[k]
        for r in range(e.shape[1]):
            residual = s[k, r] - (1.0 / (e[k, r] + 1.0)) * n[k, r]
            gradient[a, r] += residual
            gradient[b, r] -= residual
    return gradient


@_compiled
def _poisson_log_pmf(low, width, first, log_mu, mu, log_factorial):
    """log pmf = value log mu - mu - log(value!) of each cell's values low .. low + width - 1,
    the cells laid end to end from `first`; log(value!) is looked up."""
    out = np.empty(first[-1] + width[-1])
    for c in range(len(low)):
        for k in range(width[c]):
            value = low[c] + k
            out[first[c] + k] = value * log_mu[c] - mu[c] - log_factorial[value]
    return out


@_compiled
def _poisson_guide(pmf, sums, first, last, bins, guide_first):
    """(cdf, guide, threshold): the cells' cumulative distributions and guide tables, from the
    pmf laid end to end (see _Resampler._build_tables)."""
    cells, values = len(first), len(pmf)
    cdf = np.empty(values)
    entries = np.empty(values, np.int64)
    is_last = np.zeros(values, np.bool_)
    # Cumulative sums restarting at each cell: one running sum, with each cell's first term
    # lowered by the sum of the cell before, so it restarts from (almost exactly) zero; the
    # leftover rounding stays near 1e-14 instead of growing with the cells before.
    running = 0.0
    for c in range(cells):
        for v in range(first[c], last[c] + 1):
            term = pmf[v]
            if v == first[c] and c > 0:
                term -= sums[c - 1]
            running += term
            cdf[v] = min(max(running, 0.0), 1.0)
        cdf[last[c]] = 1.0  # the far tail, below the resolution of a uniform, goes to the last value
        is_last[last[c]] = True
        # Guide table: bin b of a cell covers [b / L, (b + 1) / L) and points at the first value
        # whose cdf reaches b / L, so a value gets as many entries as bins start at or below its
        # cdf and above the cdf before it; every cell gets one closing entry, its last value.
        scale = bins[c]
        for v in range(first[c], last[c] + 1):
            begins = 0 if v == first[c] else np.int64(np.ceil(cdf[v - 1] * scale))
            ends_at = min(np.int64(np.ceil(cdf[v] * scale)), scale)
            entries[v] = max(ends_at - begins, 0) + (1 if v == last[c] else 0)
    guide = np.empty(entries.sum(), np.int64)
    position = 0
    for v in range(values):
        for _ in range(entries[v]):
            guide[position] = v
            position += 1
    # Each cell has bins + 1 entries, its bins and the closing one: the counts telescope.
    if len(guide) != guide_first[-1] + bins[-1] + 1:
        raise ArithmeticError("the guide table does not have one entry per bin")
    # Most bins hold at most one jump of the cdf: the answer is then the bin's first value,
    # or the next one if u is above that value's cdf, which is stored per bin. Bins that
    # hold more (in the tails, where values are unlikely) store NaN and are searched.
    threshold = np.empty(len(guide))
    for c in range(cells):
        for b in range(bins[c] + 1):
            entry = guide_first[c] + b
            value = guide[entry]
            upper = (b + 1) / bins[c]
            # A cell's last value ends the cell: nothing follows.
            after = 2.0 if is_last[value] else cdf[min(value + 1, values - 1)]
            threshold[entry] = cdf[value] if after >= upper else np.nan
    return cdf, guide, threshold


@_compiled
def _vose_alias(prob):
    """Vose's alias method on prob = p * K, in place: cell k is then drawn with probability
    (prob[k] + sum of (1 - prob[j]) over j aliased to k) / K. Returns the aliases."""
    k = len(prob)
    alias = np.arange(k)
    small, large = np.empty(k, np.int64), np.empty(k, np.int64)  # two stacks
    smalls = larges = 0
    for cell in range(k):
        if prob[cell] < 1.0:
            small[smalls] = cell
            smalls += 1
        elif prob[cell] >= 1.0:
            large[larges] = cell
            larges += 1
    while smalls and larges:
        smalls -= 1
        larges -= 1
        less, more = small[smalls], large[larges]
        alias[less] = more
        prob[more] -= 1.0 - prob[less]
        if prob[more] < 1.0:
            small[smalls] = more
            smalls += 1
        else:
            large[larges] = more
            larges += 1
    for t in range(smalls):
        prob[small[t]] = 1.0
    for t in range(larges):
        prob[large[t]] = 1.0
    return alias


@_compiled
def _poisson_draw(u, bins, guide_first, guide, threshold, cdf, offset, out, start, totals):
    """Inverse Poisson cdf of each cell (row) at the uniforms u (cells x rounds) into out's
    columns from `start` on, each round's sum added to totals. Rows are cells, so the rounds
    of a cell read the same short stretch of the tables."""
    cells, rounds = u.shape
    for c in range(cells):
        scale, base, shift = bins[c], guide_first[c], offset[c]
        for r in range(rounds):
            x = u[c, r]
            index = np.int64(x * scale) + base
            value = guide[index]
            bound = threshold[index]
            if x > bound:
                value += 1
            elif bound != bound:
                # NaN, a bin with several jumps: binary search between the bin's first value
                # and the next bin's.
                low, high = value, guide[index + 1]
                while True:
                    middle = (low + high) >> 1
                    if cdf[middle] >= x:
                        high = middle
                    else:
                        low = middle + 1
                    if low >= high:
                        break
                value = low
            value -= shift
            out[c, start + r] = value
            totals[r] += value


@_compiled
def _alias_fill(x, cells, alias_prob, alias, missing, out, start):
    """Adds missing[r] votes to column start + r of out, each drawn from the cells'
    probabilities (alias method) with the next uniform of x."""
    position = 0
    for r in range(len(missing)):
        for _ in range(missing[r]):
            scaled = x[position] * cells
            k = np.int64(scaled)
            cell = k if scaled - k < alias_prob[k] else alias[k]
            out[cell, start + r] += 1.0
            position += 1


def _check_columns(frame: pd.DataFrame, columns: list[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"missing columns: {', '.join(missing)}")


def _check_winners(winners: pd.Series) -> None:
    bad = sorted({str(w) for w in pd.unique(winners) if w not in SCORES})
    if bad:
        raise ValueError(f"unknown winner value(s): {', '.join(repr(w) for w in bad)}; expected one of {list(SCORES)}")

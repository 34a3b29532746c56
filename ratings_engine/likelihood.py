"""The Bradley-Terry likelihood on pair counts, and its maximiser.

Each vote between models i and j scores y = 1 (i wins), 1/2 (either kind of tie) or 0 (j
wins) for i, and P(i beats j) = sigmoid(theta_i - theta_j). The log-likelihood depends on the
votes only through, per pair, the number of votes n and i's score s, so the fit works on
those (PairTable, the counts in canonical form).

The solver is a damped Newton method on the pair counts, run to machine precision: the
Hessian of the log-likelihood is a weighted graph Laplacian, singular only along the
all-ones direction (adding a constant to every theta changes nothing), so each step solves
``(L + 11'/m) step = gradient``, which keeps sum(theta) = 0. It stops when every model's
gradient is below 1e-10 times its Fisher information: the gradient test made scale-free (a
bare gradient norm is in vote units, and 1e-10 is below its rounding error on a million
votes). Newton converges quadratically, so the ratings are then at the optimum to far
better than 1e-6 Elo.

When the maximum-likelihood estimate does not exist. The MLE is finite exactly when the
"scored against" graph (an edge i -> j when i has won or tied at least once against j) is
strongly connected (Zermelo 1929, Ford 1957). If it is not, e.g. a new model has won all of
its votes, the likelihood keeps rising as that model's rating goes to infinity. We then add
one virtual tie (half a win each way) to every compared pair whose two models lie in
different strongly connected components, and fit that. This is deterministic; it is the
Haldane-Anscombe 0.5 correction applied only where it is needed (a 5-0 pair is fitted as
5.5-0.5); and it leaves every pair inside a component alone. Data whose MLE exists is never
changed, so its ratings are the exact MLE. The same rule applies to every bootstrap resample
(bootstrap.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.special import expit, log_expit

from .counts import SCORES, check_columns, check_winners

# Ties added to each pair that crosses strongly connected components (see the module doc).
VIRTUAL_TIES = 1.0
TOLERANCE = 1e-10
MAX_ITERATIONS = 200


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


class PairTable:
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
    def from_counts(cls, counts: pd.DataFrame) -> PairTable:
        check_columns(counts, ["model_a", "model_b", "winner", "n"])
        check_winners(counts["winner"])
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


def newton_fit(table: PairTable, n: np.ndarray, s: np.ndarray, theta: np.ndarray) -> np.ndarray:
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

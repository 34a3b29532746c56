"""Anomalous voters: the per-voter sequential test. Pure numpy, no Django.

The arena's published method ("identifying anomalous users", Chiang et al. 2024, the
Chatbot Arena paper) compares each of a voter's votes with what everyone else voted on
the same pair of models, turns each comparison into a p-value, and multiplies evidence
along the voter's votes until it is strong enough to reject "this voter votes like the
population". This module implements it on arrays, so the Django side
(battles/anomaly_detection.py) and the benchmark (benchmarks/rigging.py) run the same code.

The outcome of a vote is ordinal: for a pair of models, one of them won (2), a tie of
either kind (1), or the other won (0). Which model is "one of them" matters, because a
rigging voter pushes one model whichever side it is shown on. Showing sides at random,
an orientation by display side would split that voter's votes between the two directions
and dilute the evidence in both. So each pair is oriented by the population: level 2 is
"the model most voters prefer on this pair won", level 0 "the other one won". (A voter
who always favours a mid-table model still escapes: such votes go with the crowd against
weaker opponents and against it against stronger ones, and the evidence cancels; the
benchmark measures this.)

For one vote with outcome h on a pair whose other votes (everyone else's) are counted as
c_0, c_1, c_2 (N in all), the two one-sided conformal p-values are

    p_up   = (1 + #{other votes >= h}) / (N + 1)    small when the voter sides with the crowd
    p_down = (1 + #{other votes <= h}) / (N + 1)    small when the voter sides against it

Under the null hypothesis (the vote is one more draw from the pair's distribution, so
exchangeable with the others) each is super-uniform: P(p <= t) <= t.

Evidence. For each direction, the running product over the voter's votes of e = 1/(2p)
is compared with 1/alpha. If each factor has expectation at most 1 under the null, the
product is a non-negative supermartingale starting at 1, and Ville's inequality bounds the
chance that it EVER reaches 1/alpha by alpha: the voter may be checked after every vote
with no multiple-testing penalty (this is why the test is "sequential"). Both directions
together: at most 2 alpha per honest voter, by the union bound.

Does 1/(2p) have expectation at most 1? For a binary outcome it does: with win
probability q the up p-value is q or 1, and E[1/p] = q/q + (1-q)/1 <= 2. For a continuous
p-value it does not (E[1/p] is infinite), and for three levels it can exceed 1: with
q = (0.1, 0.3, 0.6) for levels (0, 1, 2) the up direction has E[1/(2p)] =
(1 + 0.3/0.9 + 0.1)/2 = 0.72, but with frequent ties and a rare upset, q = (0.1, 0.4, 0.5),
the down direction has (1 + 0.4/0.5 + 0.5)/2 = 1.15. So each factor here is divided by
its own expectation under the pair's distribution (the other votes' shares) when that
exceeds 1: e = (1/(2p)) / max(1, E0[1/(2p)]). Where the published factor is already
valid it is used unchanged; elsewhere it is made valid.
From the arena's published description come the p-values against the pair's population,
both directions, the running products of 1/(2p) against 1/alpha, the 5-vote minimum and
the first 100 votes. The orientation by the crowd, the leave-voter-out reference and this
correction are our choices, reasoned out here.

What else is decided here, and why:
- The reference distribution leaves the tested voter out (the voter's own votes are
  subtracted from the pair's counts): a heavy voter on a rare pair would otherwise be
  compared with themself.
- A vote on a pair with no other votes carries no evidence (factor 1): its p-values
  would be 1 in both directions, and 1/(2p) = 1/2 would count it as evidence of honesty.
- Only voters with at least `min_votes` votes are tested, on their first `max_votes`
  votes (the arena uses 5 and 100): a voter is judged on the evidence from their first
  votes, and the flag does not come and go as they keep voting.
- Votes outside the `population` (a flagged voter's own excluded votes) are still
  tested, but only population votes form the reference distribution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# The level of each winner value, seen from model_a's side.
LEVELS: dict[str, int] = {"model_a": 2, "tie": 1, "tie (bothbad)": 1, "model_b": 0}

DEFAULT_ALPHA = 0.05
DEFAULT_MIN_VOTES = 5
DEFAULT_MAX_VOTES = 100
# The running products are kept as logs; the reported statistic is capped so it stays a
# finite float (100 votes of a million-vote pair could reach 1e570).
MAX_LOG10_STATISTIC = 300.0


@dataclass(frozen=True)
class SequentialTestResult:
    """One entry per tested voter (voters with at least min_votes votes), in voter-code order.

    `log_up` / `log_down`: the largest natural log of the running product reached in each
    direction over the tested votes (0 when the product never rose above 1).
    """

    voters: np.ndarray
    votes: np.ndarray
    log_up: np.ndarray
    log_down: np.ndarray
    alpha: float

    @property
    def flagged(self) -> np.ndarray:
        threshold = math.log(1 / self.alpha)
        return (self.log_up >= threshold) | (self.log_down >= threshold)

    @property
    def statistic(self) -> np.ndarray:
        """The larger of the two running products' maxima, as a number (capped at 1e300)."""
        log10 = np.maximum(self.log_up, self.log_down) / math.log(10)
        return np.power(10.0, np.minimum(log10, MAX_LOG10_STATISTIC))

    @property
    def direction(self) -> np.ndarray:
        """'with' when the evidence is of siding with the crowd more than it does, else 'against'."""
        return np.where(self.log_up > self.log_down, "with", "against")


def sequential_test(
    voter: np.ndarray,
    model_a: np.ndarray,
    model_b: np.ndarray,
    level: np.ndarray,
    *,
    population: np.ndarray | None = None,
    alpha: float = DEFAULT_ALPHA,
    min_votes: int = DEFAULT_MIN_VOTES,
    max_votes: int = DEFAULT_MAX_VOTES,
) -> SequentialTestResult:
    """Test every voter with at least `min_votes` votes. Votes are given in time order.

    voter: non-negative int codes; model_a / model_b: int codes of the models as shown;
    level: 2 (model_a won), 1 (tie of either kind), 0 (model_b won), see LEVELS;
    population: which votes form the reference distribution (default: all of them).
    Deterministic, and the order of voters does not matter; only each voter's own vote
    order does.
    """
    voter, model_a, model_b, level, population = _checked(
        voter, model_a, model_b, level, population, alpha=alpha, min_votes=min_votes, max_votes=max_votes
    )
    n = len(voter)
    empty = np.array([], dtype=np.int64)
    if n == 0:
        return SequentialTestResult(empty, empty, np.array([]), np.array([]), alpha)

    pair, canonical = _canonical_pairs(model_a, model_b, level)
    pair_counts = _count(pair[population], canonical[population], int(pair.max()) + 1)

    # Each voter's own share of the reference counts, per (voter, pair), to leave them out.
    voter_pair = _dense(voter * (int(pair.max()) + 1) + pair)
    own = _count(voter_pair[population], canonical[population], int(voter_pair.max()) + 1)

    # Keep each voter's first max_votes votes (stable sort keeps the time order).
    order = np.argsort(voter, kind="stable")
    sorted_voter = voter[order]
    starts = np.flatnonzero(np.r_[True, sorted_voter[1:] != sorted_voter[:-1]])
    lengths = np.diff(np.r_[starts, n])
    position = np.arange(n) - np.repeat(starts, lengths)
    keep_sorted = position < max_votes
    tested_voters = sorted_voter[starts]
    tested_votes = np.minimum(lengths, max_votes)
    enough = tested_votes >= min_votes

    idx = order[keep_sorted]
    others = pair_counts[pair[idx]] - own[voter_pair[idx]]
    log_up, log_down = _log_factors(*_oriented_by_crowd(others, canonical[idx]))

    kept_voter = sorted_voter[keep_sorted]
    seg_starts = np.flatnonzero(np.r_[True, kept_voter[1:] != kept_voter[:-1]])
    max_up = _segment_max_running_sum(log_up, seg_starts)
    max_down = _segment_max_running_sum(log_down, seg_starts)
    return SequentialTestResult(
        voters=tested_voters[enough],
        votes=tested_votes[enough],
        log_up=max_up[enough],
        log_down=max_down[enough],
        alpha=alpha,
    )


def _checked(
    voter: np.ndarray,
    model_a: np.ndarray,
    model_b: np.ndarray,
    level: np.ndarray,
    population: np.ndarray | None,
    *,
    alpha: float,
    min_votes: int,
    max_votes: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """sequential_test's inputs as int64 arrays (population as bools, all True by default), or
    ValueError saying which one is wrong."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha!r}")
    if min_votes < 1 or max_votes < min_votes:
        raise ValueError(f"need 1 <= min_votes <= max_votes, got {min_votes} and {max_votes}")
    voter = np.asarray(voter, dtype=np.int64)
    model_a = np.asarray(model_a, dtype=np.int64)
    model_b = np.asarray(model_b, dtype=np.int64)
    level = np.asarray(level, dtype=np.int64)
    n = len(voter)
    if not (len(model_a) == len(model_b) == len(level) == n):
        raise ValueError("voter, model_a, model_b and level must have the same length")
    population = np.ones(n, dtype=bool) if population is None else np.asarray(population, dtype=bool)
    if len(population) != n:
        raise ValueError("population must have one entry per vote")
    if n and (level.min() < 0 or level.max() > 2):
        raise ValueError("level must be 0, 1 or 2")
    if n and voter.min() < 0:
        raise ValueError("voter codes must be non-negative")
    if np.any(model_a == model_b):
        raise ValueError("a vote compares two different models")
    return voter, model_a, model_b, level, population


def _canonical_pairs(model_a: np.ndarray, model_b: np.ndarray, level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each vote's pair of models in a canonical order (dense codes), and its level seen from
    the pair's first model, so that A-vs-B and B-vs-A votes count together."""
    low = np.minimum(model_a, model_b)
    high = np.maximum(model_a, model_b)
    canonical = np.where(model_a == low, level, 2 - level)
    return _dense(low * (int(high.max()) + 1) + high), canonical


def _dense(keys: np.ndarray) -> np.ndarray:
    """Codes 0..k-1 for the distinct keys."""
    return np.unique(keys, return_inverse=True)[1].reshape(-1)


def _count(rows: np.ndarray, levels: np.ndarray, n_rows: int) -> np.ndarray:
    """An (n_rows, 3) table of how many votes each row has at each level."""
    return np.bincount(rows * 3 + levels, minlength=n_rows * 3).reshape(n_rows, 3)


def _oriented_by_crowd(others: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The others' counts and the voter's levels turned so that level 2 is the outcome most
    of the others voted for."""
    flip = others[:, 2] < others[:, 0]
    return np.where(flip[:, None], others[:, ::-1], others), np.where(flip, 2 - h, h)


def _log_factors(others: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log e for each vote in both directions, e = (1/(2p)) / max(1, E0[1/(2p)])."""
    total = others.sum(axis=1)
    at_least = np.cumsum(others[:, ::-1], axis=1)[:, ::-1]  # at_least[:, l] = #others >= l
    at_most = np.cumsum(others, axis=1)  # at_most[:, l] = #others <= l
    p_up_all = (1 + at_least) / (1 + total)[:, None]
    p_down_all = (1 + at_most) / (1 + total)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.where(total[:, None] > 0, others / np.maximum(total, 1)[:, None], 0.0)
    rows = np.arange(len(h))

    def logs(p_all: np.ndarray) -> np.ndarray:
        null_mean = (q / (2 * p_all)).sum(axis=1)
        e = 1 / (2 * p_all[rows, h]) / np.maximum(1.0, null_mean)
        # A pair nobody else voted on says nothing about the voter.
        return np.where(total > 0, np.log(e), 0.0)

    return logs(p_up_all), logs(p_down_all)


def _segment_max_running_sum(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """For each segment (starting at `starts`), the max over its prefixes of the running sum, floored at 0."""
    if len(values) == 0:
        return np.array([])
    total = np.cumsum(values)
    before = np.r_[0.0, total][starts]
    lengths = np.diff(np.r_[starts, len(values)])
    running = total - np.repeat(before, lengths)
    return np.maximum(np.maximum.reduceat(running, starts), 0.0)


def codes(values) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes for arbitrary labels (judge ids, model ids): (codes, labels by code)."""
    labels, inverse = np.unique(np.asarray(values), return_inverse=True)
    return inverse.reshape(-1).astype(np.int64), labels

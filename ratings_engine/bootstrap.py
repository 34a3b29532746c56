"""Bootstrap confidence intervals: refit multinomial resamples of the counts.

The counts table is resampled multinomially (same total; drawn through Poisson counts, see
resampling.py), each resample is refitted (batched, warm-started from the full fit) and the
2.5/97.5 percentiles of each model's rating are taken (bradley_terry.compute_ratings). Rows
that describe the same event, e.g. (A, B, model_a) and (B, A, model_b), or "tie" and "tie
(bothbad)" for the same pair, are merged first (likelihood.PairTable): a multinomial's merged
cells are again multinomial, so this changes no distribution.

Resamples start from the full fit and take chord steps (the full fit's Hessian, rescaled per
round) to the same convergence test as the full fit, falling back to Newton (see chord_refit).
The rule for data whose maximum-likelihood estimate does not exist (virtual ties, see
likelihood.py) applies to every resample, where it matters more: a model with a handful of
votes often loses its only loss, or all of its votes, in a resample.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy.special import expit

from .compiled import compiled
from .likelihood import TOLERANCE, PairTable, newton_fit
from .resampling import Resampler

CHORD_ITERATIONS = 60
# Bootstrap rounds are fitted in batches of about this many (pair, round) values, so a batch's
# arrays stay within the processor's caches.
BATCH_PAIR_ROUNDS = 400_000
# The bootstrap draws its batches' resamples a few batches at a time, up to about this many
# (cell, round) counts (40 MB) per thread, so that each stretch of the resampler's tables is
# read from memory once for all of them (see Resampler.draw_batches).
BATCH_DRAW_CELLS = 5_000_000
# newton_fit's rounds, which hold one m x m Hessian each, are capped at about 32 MB per batch.
BATCH_HESSIAN_CELLS = 4_000_000
# Bootstrap batches run on this many threads at most: one per core, since they compute.
BOOTSTRAP_THREADS = max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1))


def bootstrap_thetas(
    table: PairTable, theta: np.ndarray, inverse: np.ndarray, rounds: int, seed: int, threads: int
) -> tuple[np.ndarray, int]:
    """Refit `rounds` multinomial resamples of the cells; returns thetas (rounds x models)
    and how many rounds needed virtual ties.

    Rounds go in batches, held as columns (pairs x rounds), which bound the memory and keep
    each batch's arrays in cache. Each batch draws from its own generator, spawned from the
    seed, so the batches can run on several threads (numpy's and scipy's array work releases
    the GIL) and the result does not depend on how many there are or which ran first. A few
    batches at a time are drawn together (Resampler.draw_batches, the same counts as one by
    one), in groups spread evenly over the threads.
    """
    resampler = Resampler(table.cell_n)
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
            samples[starts[b] : starts[b] + size] = chord_refit(table, n, s, theta, inverse).T
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


def chord_refit(table: PairTable, n: np.ndarray, s: np.ndarray, theta: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """Fit rounds held as columns (n, s: pairs x rounds) whose optimum is near theta, e.g.
    bootstrap resamples of the data theta was fitted to; `inverse` is that fit's inverse
    information. Returns theta per round as columns (models x rounds).

    Chord steps: Newton steps that keep the starting point's Hessian instead of building and
    solving one per round and step, so a step is one matrix product for the whole batch. The
    Hessian is rescaled per round by each model's information in that round (the diagonal of
    D^(1/2) H D^(1/2)), which follows most of a resample's change, the count of a model's votes,
    and so saves steps. A round stops at the same scale-free test as newton_fit, each model's
    gradient within TOLERANCE of its information, taken here at the starting point: it lands
    on the same maximum. A round whose steps do not at least halve each time is handed to
    newton_fit, from the starting point, instead.
    """
    i, j, m = table.pair_i, table.pair_j, table.m
    rounds = n.shape[1]
    out = np.empty((m, rounds))
    # In C order, as _chord_gradient reads them (the sparse products give column-major arrays).
    n, s = np.ascontiguousarray(n, dtype=float), np.ascontiguousarray(s, dtype=float)
    n_all, s_all = n, s
    degree, root = _information_scales(table, n, theta)
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
        # A step above 0.25 is where newton_fit starts to check the log-likelihood: leave it to newton_fit.
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
    _newton_refit(table, n_all, s_all, theta, np.concatenate(stalled), out)
    return out


def _information_scales(table: PairTable, n: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each model's information per round at theta (models x rounds), and the square root of
    its ratio to the information in the full data: the chord steps' per-round rescaling."""
    start_p = expit(theta[table.pair_i] - theta[table.pair_j])
    start_w = start_p * (1 - start_p)
    degree = table.incidence_abs @ (n * start_w[:, None])
    full = table.incidence_abs @ (table.votes_per_pair() * start_w)
    # A model without votes in a round keeps a scale of 1; newton_fit handles such rounds if they stall.
    return degree, np.sqrt(np.where(degree > 0, degree / full[:, None], 1.0))


def _newton_refit(
    table: PairTable, n: np.ndarray, s: np.ndarray, theta: np.ndarray, rounds: np.ndarray, out: np.ndarray
) -> None:
    """Fit `rounds` (columns of n and s) with newton_fit from theta, into the same columns of `out`."""
    # newton_fit holds an m x m Hessian per round: a few rounds at a time when the models are many.
    chunk = max(1, BATCH_HESSIAN_CELLS // (table.m * table.m))
    for begin in range(0, len(rounds), chunk):
        part = rounds[begin : begin + chunk]
        start = np.repeat(theta[None, :], len(part), 0)
        out[:, part] = newton_fit(table, n[:, part].T, s[:, part].T, start).T


@compiled
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

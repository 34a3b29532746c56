"""Multinomial resamples of the vote counts for the bootstrap, many rounds at once (Resampler)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.special import gammaln

from .compiled import compiled

# The resampler draws Poisson counts whose total falls short of the votes by
# this many standard deviations, so that a round overshoots (and is drawn again) about once in
# 740, and tops the rest up vote by vote; its tables leave out Poisson tails of less than
# e^-37.5 (5e-17), below the resolution of a double-precision uniform (2^-53, 1.1e-16).
POISSON_SHORTFALL_SD = 3.0
POISSON_TAIL_LOG = 37.5
# Guide-table bins per standard deviation of each cell's Poisson count.
GUIDE_BINS_PER_SD = 16
# Resampler.draw_batches walks the tables in blocks of cells of about this many guide entries
# (1 MB of guide and thresholds), which stay in the processor's caches while every batch's
# uniforms for those cells are looked up.
GUIDE_BLOCK_ENTRIES = 65_536


class Resampler:
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

    The work per value and per draw runs in compiled loops (see compiled.py): numpy needs some
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


@compiled
def _poisson_log_pmf(low, width, first, log_mu, mu, log_factorial):
    """log pmf = value log mu - mu - log(value!) of each cell's values low .. low + width - 1,
    the cells laid end to end from `first`; log(value!) is looked up."""
    out = np.empty(first[-1] + width[-1])
    for c in range(len(low)):
        for k in range(width[c]):
            value = low[c] + k
            out[first[c] + k] = value * log_mu[c] - mu[c] - log_factorial[value]
    return out


@compiled
def _poisson_guide(pmf, sums, first, last, bins, guide_first):
    """(cdf, guide, threshold): the cells' cumulative distributions and guide tables, from the
    pmf laid end to end (see Resampler._build_tables)."""
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


@compiled
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


@compiled
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


@compiled
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

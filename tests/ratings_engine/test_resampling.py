"""The bootstrap's resampler: exact multinomial draws, and compiled loops that draw exactly
what their numpy formulation draws, seed for seed."""

import numpy as np
import pytest
from scipy.special import gammaln

from ratings_engine import resampling
from ratings_engine.resampling import Resampler


def test_the_resampler_draws_multinomial_resamples_with_the_exact_total():
    # Cells from one vote to tens of thousands, as in a real counts table.
    cell_n = np.array([1, 1, 2, 3, 7, 40, 300, 2_500, 30_000, 60_000])
    total = int(cell_n.sum())
    draws = Resampler(cell_n).draw(np.random.default_rng(1), 20_000)
    assert draws.shape == (len(cell_n), 20_000)
    assert (draws.sum(axis=0) == total).all() and (draws == np.round(draws)).all() and (draws >= 0).all()
    p = cell_n / total
    # Means, variances and the negative covariance of the multinomial, within Monte Carlo error.
    assert (np.abs(draws.mean(axis=1) - total * p) <= 5 * np.sqrt(total * p * (1 - p) / 20_000)).all()
    assert draws.var(axis=1) / (total * p * (1 - p)) == pytest.approx(np.ones(len(cell_n)), abs=0.06)
    covariance = np.cov(draws[-1], draws[-2])[0, 1]
    assert covariance == pytest.approx(-total * p[-1] * p[-2], rel=0.06)
    # A one-vote cell is left out with probability (1 - 1/N)^N.
    assert (draws[0] == 0).mean() == pytest.approx((1 - 1 / total) ** total, abs=0.01)


def test_the_resampler_handles_a_handful_of_votes():
    # So few votes that the Poisson part has mean 0: every vote is drawn one at a time.
    draws = Resampler(np.array([2, 1])).draw(np.random.default_rng(2), 30_000)
    assert (draws.sum(axis=0) == 3).all()
    assert np.bincount(draws[1].astype(int), minlength=4) / 30_000 == pytest.approx(
        [8 / 27, 12 / 27, 6 / 27, 1 / 27], abs=0.01
    )


def test_the_resampler_inverts_each_cells_poisson_cdf():
    from scipy.stats import poisson

    mu = np.array([0.3, 4.5, 145.2, 31_000.0])
    resampler = Resampler(np.ones(4))
    resampler._build_tables(mu)
    rng = np.random.default_rng(3)
    # Uniforms everywhere, in the far tails and right at guide-bin edges.
    u = np.concatenate([rng.random(20_000), 10.0 ** -rng.uniform(1, 15, 2_000), 1 - 10.0 ** -rng.uniform(1, 15, 2_000)])
    u = np.concatenate([u, np.arange(1, 400) / 400])
    values = resampler._poisson(np.repeat(u[None, :], len(mu), axis=0))
    expected = poisson.ppf(u[None, :], mu[:, None])
    # The tables' probabilities are exact to about 1e-12 (for a mean of 31,000, the rounding
    # of log-probabilities near 3e5): a uniform within that of a step of the cdf, or of 0 or 1,
    # may get another value than scipy's, which happens with probability about 1e-12 a draw.
    resolved = (u >= 1e-9) & (u <= 1 - 1e-9)
    assert (values[:, resolved] == expected[:, resolved]).all()
    assert (values == expected).mean() > 0.98


class NumpyResampler(Resampler):
    """The resampler as it was written in numpy, whole-array pass by pass: the reference that
    the compiled loops must match exactly, table for table and draw for draw (the same seed
    must keep giving the same bootstrap)."""

    def _build_tables(self, mu):
        cells, tail = len(mu), resampling.POISSON_TAIL_LOG
        low = np.maximum(0, np.floor(mu - np.sqrt(2 * tail * mu))).astype(np.int64)
        high = np.ceil(mu + tail / 3 + np.sqrt((tail / 3) ** 2 + 2 * tail * mu)).astype(np.int64)
        width = high - low + 1
        first = np.zeros(cells, np.int64)
        np.cumsum(width[:-1], out=first[1:])
        last = first + width - 1
        value = np.arange(int(width.sum())) - np.repeat(first - low, width)
        with np.errstate(divide="ignore"):
            log_mu = np.where(mu > 0, np.log(mu), 0.0)
        log_factorial = gammaln(np.arange(int(high.max()) + 1) + 1.0)
        pmf = value * np.repeat(log_mu, width)
        pmf -= np.repeat(mu, width)
        pmf -= np.take(log_factorial, value)
        np.exp(pmf, out=pmf)
        sums = np.add.reduceat(pmf, first)
        pmf[first[1:]] -= sums[:-1]
        cdf = np.clip(np.cumsum(pmf), 0.0, 1.0)
        cdf[last] = 1.0
        bins = np.ceil(resampling.GUIDE_BINS_PER_SD * np.sqrt(mu)).astype(np.int64) + resampling.GUIDE_BINS_PER_SD
        before = np.concatenate([[0.0], cdf[:-1]])
        before[first] = 0.0
        per_value = np.repeat(bins, width)
        begins = np.ceil(before * per_value).astype(np.int64)
        begins[first] = 0
        ends_at = np.minimum(np.ceil(cdf * per_value).astype(np.int64), per_value)
        entries = np.maximum(ends_at - begins, 0)
        entries[last] += 1
        self.guide = np.repeat(np.arange(len(cdf)), entries)
        self.guide_first = np.zeros(cells, np.int64)
        np.cumsum(bins[:-1] + 1, out=self.guide_first[1:])
        per_entry = np.repeat(bins, bins + 1)
        bin_index = np.arange(len(self.guide)) - np.repeat(self.guide_first, bins + 1)
        upper = (bin_index + 1) / per_entry
        after = np.take(cdf, np.minimum(self.guide + 1, len(cdf) - 1))
        is_last = np.zeros(len(cdf), dtype=bool)
        is_last[last] = True
        after[is_last[self.guide]] = 2.0
        self.threshold = np.where(after >= upper, np.take(cdf, self.guide), np.nan)
        self.bins = bins.astype(float)
        self.cdf = cdf
        self.offset = first - low

    def _build_alias(self, p):
        k = len(p)
        prob = p * k
        alias = np.arange(k)
        small = list(np.flatnonzero(prob < 1.0))
        large = list(np.flatnonzero(prob >= 1.0))
        while small and large:
            less, more = small.pop(), large.pop()
            alias[less] = more
            prob[more] -= 1.0 - prob[less]
            (small if prob[more] < 1.0 else large).append(more)
        prob[small + large] = 1.0
        self.alias_prob, self.alias = prob, alias

    def draw(self, rng, rounds):
        out = np.empty((self.cells, rounds))
        filled = 0
        while filled < rounds:
            counts = self._poisson(rng.random((self.cells, rounds - filled)))
            totals = counts.sum(axis=0)
            fits = totals <= self.total
            if not fits.all():
                counts, totals = counts[:, fits], totals[fits]
            missing = (self.total - totals).astype(np.int64)
            if missing.any():
                x = rng.random(int(missing.sum())) * self.cells
                k = x.astype(np.int64)
                cell = np.where(x - k < self.alias_prob[k], k, self.alias[k])
                column = np.repeat(np.arange(counts.shape[1]), missing)
                counts += np.bincount(cell * counts.shape[1] + column, minlength=counts.size).reshape(counts.shape)
            out[:, filled : filled + counts.shape[1]] = counts
            filled += counts.shape[1]
        return out

    def _poisson(self, u):
        index = (u * self.bins[:, None]).astype(np.int64)
        index += self.guide_first[:, None]
        value = np.take(self.guide, index)
        threshold = np.take(self.threshold, index)
        value += u > threshold
        searched = np.flatnonzero(np.isnan(threshold))
        if len(searched):
            flat = value.reshape(-1)
            target = u.reshape(-1)[searched]
            low = flat[searched]
            high = np.take(self.guide, index.reshape(-1)[searched] + 1)
            while len(searched):
                middle = (low + high) >> 1
                above = np.take(self.cdf, middle) >= target
                high = np.where(above, middle, high)
                low = np.where(above, low, middle + 1)
                done = low >= high
                flat[searched[done]] = low[done]
                keep = ~done
                searched, target, low, high = searched[keep], target[keep], low[keep], high[keep]
        value -= self.offset[:, None]
        return value.astype(float)


def random_cells(rng):
    """A counts table's cells: from single votes to tens of thousands, as in the arena's."""
    return np.concatenate([rng.integers(1, 4, 30), rng.integers(4, 300, 40), rng.integers(300, 60_000, 30)])


def test_the_compiled_resampler_builds_the_numpy_formulations_tables_exactly():
    rng = np.random.default_rng(21)
    for cell_n in [random_cells(rng) for _ in range(4)] + [np.array([1]), np.array([2, 1]), np.array([5, 3_000_000])]:
        compiled, reference = Resampler(cell_n), NumpyResampler(cell_n)
        for name in ("guide", "guide_first", "threshold", "cdf", "bins", "offset", "alias", "alias_prob"):
            ours, theirs = getattr(compiled, name), getattr(reference, name)
            assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs, equal_nan=True), name


def test_the_compiled_resampler_draws_what_the_numpy_formulation_draws(monkeypatch):
    rng = np.random.default_rng(22)
    for cell_n in [random_cells(rng), np.array([2, 1]), np.array([40, 1, 1, 7])]:
        compiled, reference = Resampler(cell_n), NumpyResampler(cell_n)
        for seed in range(3):
            ours = compiled.draw(np.random.default_rng(seed), 700)
            theirs = reference.draw(np.random.default_rng(seed), 700)
            assert np.array_equal(ours, theirs)
    # A shortfall of half a standard deviation makes about a third of the rounds overshoot, so
    # rounds are dropped and drawn again, from the same stream, in both.
    monkeypatch.setattr(resampling, "POISSON_SHORTFALL_SD", 0.5)
    cell_n = random_cells(rng)
    compiled, reference = Resampler(cell_n), NumpyResampler(cell_n)
    assert np.array_equal(compiled.draw(np.random.default_rng(5), 300), reference.draw(np.random.default_rng(5), 300))


def test_the_compiled_inversion_matches_the_numpy_formulation_in_bins_that_need_a_search():
    # Small and large means, whose tails hold bins with several values (threshold NaN): a
    # uniform in one of those is found by binary search.
    mu = np.array([0.02, 0.3, 4.5, 145.2, 31_000.0, 2e6])
    compiled, reference = Resampler(np.ones(len(mu))), NumpyResampler(np.ones(len(mu)))
    compiled._build_tables(mu)
    reference._build_tables(mu)
    rng = np.random.default_rng(23)
    columns = [rng.random((len(mu), 5_000)), np.repeat((np.arange(1, 400) / 400)[None, :], len(mu), axis=0)]
    # For each cell, uniforms inside its searched bins, at their edges and in between, and
    # uniforms equal to values of its cdf (which must give that value, not the next).
    searched, exact = [], []
    for c in range(len(mu)):
        bins = int(compiled.bins[c])
        thresholds = compiled.threshold[compiled.guide_first[c] : compiled.guide_first[c] + bins]
        nan_bins = np.flatnonzero(np.isnan(thresholds))
        assert len(nan_bins), c
        at = np.repeat(nan_bins, 20)
        searched.append((at + np.tile(np.r_[0.0, rng.random(18), 1 - 1e-12], len(nan_bins))) / bins)
        values = np.arange(compiled.guide[compiled.guide_first[c]], compiled.guide[compiled.guide_first[c] + bins])
        exact.append(np.concatenate([thresholds[~np.isnan(thresholds)], compiled.cdf[values]]))
    for parts in (searched, exact):
        width = min(len(s) for s in parts)
        columns.append(np.stack([rng.choice(s, width, replace=False) for s in parts]))
    u = np.concatenate(columns, axis=1)
    ours, theirs = compiled._poisson(u), reference._poisson(u)
    assert np.array_equal(ours, theirs)
    index = (u * compiled.bins[:, None]).astype(np.int64) + compiled.guide_first[:, None]
    assert np.isnan(compiled.threshold[index]).sum() > 1_000  # the search path was taken


def test_drawing_batches_together_gives_each_generator_its_own_draw(monkeypatch):
    # Small blocks, so the tables are walked in many pieces; a shorter last batch, as in the bootstrap.
    monkeypatch.setattr(resampling, "GUIDE_BLOCK_ENTRIES", 500)
    cell_n = random_cells(np.random.default_rng(24))
    compiled, reference = Resampler(cell_n), NumpyResampler(cell_n)
    assert len(compiled.blocks) > 10
    seeds = np.random.SeedSequence(9).spawn(4)
    sizes = [60, 60, 60, 17]
    together = compiled.draw_batches([np.random.default_rng(seed) for seed in seeds], sizes)
    for seed, size, draws in zip(seeds, sizes, together, strict=True):
        assert np.array_equal(draws, reference.draw(np.random.default_rng(seed), size))

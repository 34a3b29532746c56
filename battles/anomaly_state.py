"""What the anomalous-voter test keeps between runs, so a run re-reads only what changed.
Pure numpy (and pandas' hashing), no Django: battles/anomaly_detection.py reads the votes and the notes, this module
keeps the arrays and computes every voter's evidence from them.

The sequential test (battles/integrity.py) judges each voter's first votes against everyone
else's votes on the same pairs, as they stand now. So a voter who cast nothing new can still
cross the threshold, or fall back, as the population's votes arrive: the evidence of every
voter has to be computed again on each run to decide as the full test does. What makes that
cheap is what the evidence depends on:

- the population's counts per pair and outcome (kept here, updated from the notes of the
  votes written since);
- each tested voter's first votes: their pairs and outcomes, which do not change once the
  voter has `max_votes` of them (kept here: a voter is read from the database again only
  when their first votes may have changed);
- the voter's own counted votes on those pairs, left out of the reference (kept here,
  updated from the notes too).

A vote's factor depends only on the counts of everyone else's votes on its pair (the pair's
counts minus the voter's own) and on its outcome, and most voters have one or two votes per
pair, so there are far fewer distinct "everyone else" counts than votes. Each run computes
the factors once per distinct counts (with integrity._log_factors, so each is the same number
the full test computes), then gathers them for every kept vote and takes each voter's
running maxima: a pass over the kept votes in memory, with no read of them and no sort.

Layout: voters in any order, each a contiguous block of its first votes (`seq_*`, in time
order) and of its voter-pairs (`vp_*`, sorted by pair); `seq_vp` indexes the voter's own
voter-pairs.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from . import integrity

FORMAT = 1
# A pair's key: the lower model id in the high half, the higher in the low half.
PAIR_SHIFT = 32


@dataclass
class State:
    pair_keys: np.ndarray  # int64 (pairs,), in index order (indices are stable between runs)
    pair_counts: np.ndarray  # int64 (pairs, 3): population votes per canonical level (2: lower id won)
    labels: np.ndarray  # object (voters,): the judge, or address:<id>
    total: np.ndarray  # int64 (voters,): the voter's tested votes, all of them
    last_created: np.ndarray  # int64 (voters,): the last kept vote's time (microseconds)
    last_id: np.ndarray  # int64 (voters,): and its id, which breaks ties as the full read's order does
    seq_start: np.ndarray  # int64 (voters + 1,)
    seq_vp: np.ndarray  # int64 (kept votes,): the vote's voter-pair, counted from the voter's first
    seq_level: np.ndarray  # int8 (kept votes,): canonical level
    vp_start: np.ndarray  # int64 (voters + 1,)
    vp_pair: np.ndarray  # int64 (voter-pairs,)
    vp_own: np.ndarray  # int64 (voter-pairs, 3): the voter's own population votes on the pair

    @classmethod
    def empty(cls) -> State:
        i = np.array([], dtype=np.int64)
        return cls(i, np.zeros((0, 3), np.int64), np.array([], dtype=object), i, i, i, np.zeros(1, np.int64),
                   i, np.array([], dtype=np.int8), np.zeros(1, np.int64), i, np.zeros((0, 3), np.int64))  # fmt: skip

    @property
    def kept_votes(self) -> int:
        return len(self.seq_vp)

    def pair_index(self, model_a: np.ndarray, model_b: np.ndarray) -> np.ndarray:
        """Each vote's pair index, adding the pairs not seen before."""
        low, high = np.minimum(model_a, model_b), np.maximum(model_a, model_b)
        keys = (low.astype(np.int64) << PAIR_SHIFT) | high.astype(np.int64)
        order = np.argsort(self.pair_keys, kind="stable")
        known = self.pair_keys[order]
        at = np.searchsorted(known, keys)
        found = at < len(known)
        found[found] = known[at[found]] == keys[found]
        index = np.empty(len(keys), dtype=np.int64)
        index[found] = order[at[found]]
        if not found.all():
            new, inverse = np.unique(keys[~found], return_inverse=True)
            index[~found] = len(self.pair_keys) + inverse.reshape(-1)
            self.pair_keys = np.concatenate([self.pair_keys, new])
            self.pair_counts = np.concatenate([self.pair_counts, np.zeros((len(new), 3), np.int64)])
        return index

    def add_population(self, pair: np.ndarray, level: np.ndarray, delta: np.ndarray) -> None:
        np.add.at(self.pair_counts, (pair, level), delta)

    def index_of(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels.tolist())}

    def replace_voters(self, remove: np.ndarray, block: State) -> None:
        """Drop the voters at `remove` and append the voters of `block` (built on this state's
        pairs, with build())."""
        keep = np.ones(len(self.labels), dtype=bool)
        keep[remove] = False
        seq_len, vp_len = np.diff(self.seq_start), np.diff(self.vp_start)
        seq_keep, vp_keep = np.repeat(keep, seq_len), np.repeat(keep, vp_len)
        self.labels = np.concatenate([self.labels[keep], block.labels])
        for name in ("total", "last_created", "last_id"):
            setattr(self, name, np.concatenate([getattr(self, name)[keep], getattr(block, name)]))
        self.seq_vp = np.concatenate([self.seq_vp[seq_keep], block.seq_vp])
        self.seq_level = np.concatenate([self.seq_level[seq_keep], block.seq_level])
        self.vp_pair = np.concatenate([self.vp_pair[vp_keep], block.vp_pair])
        self.vp_own = np.concatenate([self.vp_own[vp_keep], block.vp_own])
        self.seq_start = _starts(np.concatenate([seq_len[keep], np.diff(block.seq_start)]))
        self.vp_start = _starts(np.concatenate([vp_len[keep], np.diff(block.vp_start)]))

    def add_own(self, voter: np.ndarray, pair: np.ndarray, level: np.ndarray, delta: np.ndarray) -> None:
        """Counted votes of kept voters that arrived or left: their own counts on the pairs of
        their first votes (votes on other pairs never enter their test)."""
        if not len(voter):
            return
        vp_voter = np.repeat(np.arange(len(self.labels), dtype=np.int64), np.diff(self.vp_start))
        keys = (vp_voter << PAIR_SHIFT) | self.vp_pair  # sorted: voters in order, pairs sorted within
        wanted = (voter.astype(np.int64) << PAIR_SHIFT) | pair
        at = np.minimum(np.searchsorted(keys, wanted), max(len(keys) - 1, 0))
        hit = (at < len(keys)) & (keys[at] == wanted) if len(keys) else np.zeros(len(wanted), dtype=bool)
        np.add.at(self.vp_own, (at[hit], level[hit]), delta[hit])

    def consistent(self) -> bool:
        return bool((self.pair_counts >= 0).all() and (self.vp_own >= 0).all()) and bool(
            (self.pair_counts[self.vp_pair] >= self.vp_own).all()
        )


def _starts(lengths: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64)


def canonical_levels(model_a: np.ndarray, model_b: np.ndarray, level: np.ndarray) -> np.ndarray:
    """The level seen from the pair's lower model id (integrity.sequential_test's orientation)."""
    return np.where(model_a < model_b, level, 2 - level).astype(np.int64)


def build(
    voter: np.ndarray,
    labels: np.ndarray,
    pair: np.ndarray,
    clevel: np.ndarray,
    counted: np.ndarray,
    created: np.ndarray,
    vote_id: np.ndarray,
    *,
    min_votes: int,
    max_votes: int,
) -> State:
    """The kept arrays of the voters of these votes (every tested vote of each of them):
    voter codes index `labels`, pairs are indices of the state's pairs (State.pair_index) and
    levels canonical. Voters with fewer than `min_votes` are left out, as the full test does
    not test them."""
    n = len(voter)
    if n == 0:
        return State.empty()
    order = np.lexsort((vote_id, created, voter))
    voter, pair, clevel = voter[order], pair[order], clevel[order]
    counted, created, vote_id = counted[order], created[order], vote_id[order]
    starts = np.flatnonzero(np.r_[True, voter[1:] != voter[:-1]])
    lengths = np.diff(np.r_[starts, n])
    kept_voter = lengths >= min_votes
    # Dense codes of the kept voters, per vote (-1: not kept).
    dense = np.full(len(starts), -1, dtype=np.int64)
    dense[kept_voter] = np.arange(int(kept_voter.sum()))
    row_voter = np.repeat(dense, lengths)
    position = np.arange(n) - np.repeat(starts, lengths)
    in_seq = (row_voter >= 0) & (position < max_votes)

    # Voter-pairs of the first votes, sorted by (voter, pair).
    seq_keys = (row_voter[in_seq] << PAIR_SHIFT) | pair[in_seq]
    vp_keys, seq_vp_global = np.unique(seq_keys, return_inverse=True)
    vp_voter = vp_keys >> PAIR_SHIFT
    vp_counts = np.bincount(vp_voter, minlength=len(dense[kept_voter]))
    vp_start = _starts(vp_counts)
    seq_voter = row_voter[in_seq]
    seq_vp = seq_vp_global.reshape(-1) - vp_start[seq_voter]

    own = _own_counts(vp_keys, row_voter, pair, clevel, counted)
    seq_lengths = np.minimum(lengths[kept_voter], max_votes)
    last = starts[kept_voter] + seq_lengths - 1
    return State(
        pair_keys=np.array([], dtype=np.int64),  # a block of voters: the pairs are the state's
        pair_counts=np.zeros((0, 3), np.int64),
        labels=np.asarray(labels, dtype=object)[voter[starts[kept_voter]]],
        total=lengths[kept_voter].astype(np.int64),
        last_created=created[last].astype(np.int64),
        last_id=vote_id[last].astype(np.int64),
        seq_start=_starts(seq_lengths),
        seq_vp=seq_vp.astype(np.int64),
        seq_level=clevel[in_seq].astype(np.int8),
        vp_start=vp_start,
        vp_pair=(vp_keys & ((1 << PAIR_SHIFT) - 1)).astype(np.int64),
        vp_own=own,
    )


def _own_counts(
    vp_keys: np.ndarray, row_voter: np.ndarray, pair: np.ndarray, clevel: np.ndarray, counted: np.ndarray
) -> np.ndarray:
    """Per voter-pair of `vp_keys` (sorted), the kept voter's own counted votes on that pair
    by level: all of the voter's votes, not only the first ones the sequence holds."""
    own = np.zeros((len(vp_keys), 3), dtype=np.int64)
    mine = (row_voter >= 0) & counted
    keys = (row_voter[mine] << PAIR_SHIFT) | pair[mine]
    at = np.searchsorted(vp_keys, keys)
    hit = at < len(vp_keys)
    hit[hit] = vp_keys[at[hit]] == keys[hit]
    np.add.at(own, (at[hit], clevel[mine][hit]), 1)
    return own


def extended(
    state: State,
    voter: np.ndarray,
    pair: np.ndarray,
    clevel: np.ndarray,
    counted: np.ndarray,
    created: np.ndarray,
    vote_id: np.ndarray,
    *,
    min_votes: int,
    max_votes: int,
) -> tuple[np.ndarray, State]:
    """(the voters, a block replacing them) for kept voters with fewer than `max_votes` votes
    and new votes all later than their kept ones: their kept votes are all their votes, so the
    new ones are appended without reading the old ones again. `voter` holds state indices."""
    chosen = np.unique(voter)
    if not len(chosen):
        return chosen, State.empty()
    seq_len = np.diff(state.seq_start)[chosen]
    code = np.repeat(np.arange(len(chosen)), seq_len)
    position = np.arange(len(code)) - np.repeat(np.r_[0, np.cumsum(seq_len)[:-1]], seq_len)
    rows = state.seq_start[chosen][code] + position
    old_pair = state.vp_pair[state.vp_start[chosen][code] + state.seq_vp[rows]]
    # The kept votes sort before the new ones, in their order; their own counts are added after.
    first = np.iinfo(np.int64).min
    block = build(
        np.concatenate([code, np.searchsorted(chosen, voter)]),
        state.labels[chosen],
        np.concatenate([old_pair, pair]),
        np.concatenate([state.seq_level[rows].astype(np.int64), clevel]),
        np.concatenate([np.zeros(len(code), dtype=bool), counted.astype(bool)]),
        np.concatenate([first + position, created]),
        np.concatenate([np.zeros(len(code), dtype=np.int64), vote_id]),
        min_votes=min_votes,
        max_votes=max_votes,
    )
    vp_len = np.diff(state.vp_start)[chosen]
    vp_code = np.repeat(np.arange(len(chosen)), vp_len)
    vp_rows = state.vp_start[chosen][vp_code] + (
        np.arange(len(vp_code)) - np.repeat(np.r_[0, np.cumsum(vp_len)[:-1]], vp_len)
    )
    for level in range(3):
        block.add_own(vp_code, state.vp_pair[vp_rows], np.full(len(vp_code), level), state.vp_own[vp_rows, level])
    return chosen, block


def joined(blocks: list[State]) -> State:
    """Blocks of voters, one after another."""
    blocks = [b for b in blocks if len(b.labels)]
    if not blocks:
        return State.empty()
    if len(blocks) == 1:
        return blocks[0]

    def cat(name):
        return np.concatenate([getattr(b, name) for b in blocks])

    return State(
        pair_keys=np.array([], dtype=np.int64),
        pair_counts=np.zeros((0, 3), np.int64),
        labels=cat("labels"),
        total=cat("total"),
        last_created=cat("last_created"),
        last_id=cat("last_id"),
        seq_start=_starts(np.concatenate([np.diff(b.seq_start) for b in blocks])),
        seq_vp=cat("seq_vp"),
        seq_level=cat("seq_level"),
        vp_start=_starts(np.concatenate([np.diff(b.vp_start) for b in blocks])),
        vp_pair=cat("vp_pair"),
        vp_own=cat("vp_own"),
    )


@dataclass(frozen=True)
class Evidence:
    labels: np.ndarray
    votes: np.ndarray
    log_up: np.ndarray
    log_down: np.ndarray

    def result(self, alpha: float) -> integrity.SequentialTestResult:
        return integrity.SequentialTestResult(
            np.arange(len(self.labels)), self.votes, self.log_up, self.log_down, alpha
        )


def evidence(state: State, *, max_votes: int) -> Evidence:
    """Every kept voter's running maxima in both directions, against the pairs' counts now."""
    votes = np.minimum(state.total, max_votes)
    if not len(state.labels):
        empty = np.array([])
        return Evidence(state.labels, votes, empty, empty)
    others = state.pair_counts[state.vp_pair] - state.vp_own
    distinct, which = _distinct_rows(others)
    # The factors of each distinct reference, at each canonical level, oriented by the crowd
    # as the full test orients them (level 2: the outcome most of the others voted for).
    flip = distinct[:, 2] < distinct[:, 0]
    oriented = np.where(flip[:, None], distinct[:, ::-1], distinct)
    rows = np.repeat(oriented, 3, axis=0)
    canonical = np.tile(np.arange(3), len(distinct))
    h = np.where(np.repeat(flip, 3), 2 - canonical, canonical)
    up, down = integrity._log_factors(rows, h)
    up, down = up.reshape(-1, 3), down.reshape(-1, 3)

    seq_voter_start = np.repeat(state.vp_start[:-1], np.diff(state.seq_start))
    combo = which[seq_voter_start + state.seq_vp]
    level = state.seq_level.astype(np.int64)
    starts = state.seq_start[:-1]
    log_up = integrity._segment_max_running_sum(up[combo, level], starts)
    log_down = integrity._segment_max_running_sum(down[combo, level], starts)
    return Evidence(state.labels, votes, log_up, log_down)


def _distinct_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of an (n, 3) array of counts, and each row's index among them."""
    if len(rows) and rows.max() < (1 << 21) and rows.min() >= 0:
        packed = (rows[:, 0] << 42) | (rows[:, 1] << 21) | rows[:, 2]
        # By hash, not by sort: this runs over every kept voter-pair on every run.
        which, keys = pd.factorize(packed)
        mask = (1 << 21) - 1
        return np.stack([keys >> 42, (keys >> 21) & mask, keys & mask], axis=1), which.astype(np.int64)
    distinct, which = np.unique(rows, axis=0, return_inverse=True)
    return distinct, which.reshape(-1)


# Stored in the narrowest unsigned type their values fit (own counts are mostly 0 to 3, a
# voter's voter-pairs at most 100, pairs fewer than 65,536): the state is written on every
# run that has something to add, so its size is much of such a run's time.
NARROW = ("seq_vp", "seq_level", "vp_pair", "vp_own", "total")


def _narrow(values: np.ndarray) -> np.ndarray:
    if values.size and values.min() < 0:
        raise ValueError("negative values in a kept array")
    top = int(values.max()) if values.size else 0
    for dtype in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dtype).max:
            return values.astype(dtype)
    return values.astype(np.int64)


def dumps(state: State) -> bytes:
    encoded = [label.encode() for label in state.labels.tolist()]
    arrays = {f.name: getattr(state, f.name) for f in fields(State) if f.name != "labels"}
    for name in NARROW:
        arrays[name] = _narrow(arrays[name])
    arrays["label_bytes"] = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    arrays["label_lengths"] = np.array([len(e) for e in encoded], dtype=np.int64)
    arrays["format"] = np.array([FORMAT])
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def loads(data: bytes) -> State:
    """The state written by dumps(); ValueError when it is not one."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as stored:
            if int(stored["format"][0]) != FORMAT:
                raise ValueError("another format")
            values = {f.name: stored[f.name] for f in fields(State) if f.name != "labels"}
            for name in NARROW:
                values[name] = values[name].astype(np.int8 if name == "seq_level" else np.int64)
            raw = stored["label_bytes"].tobytes()
            ends = np.cumsum(stored["label_lengths"])
    except (OSError, KeyError, EOFError) as exc:
        raise ValueError(str(exc)) from exc
    starts = np.r_[0, ends[:-1]] if len(ends) else ends
    labels = np.array([raw[s:e].decode() for s, e in zip(starts.tolist(), ends.tolist(), strict=True)], dtype=object)
    state = State(labels=labels, **values)
    voters = len(labels)
    if not (
        len(state.seq_start) == len(state.vp_start) == voters + 1
        and len(state.total) == voters
        and state.seq_start[-1] == len(state.seq_vp) == len(state.seq_level)
        and state.vp_start[-1] == len(state.vp_pair) == len(state.vp_own)
        and len(state.pair_keys) == len(state.pair_counts)
    ):
        raise ValueError("arrays of different lengths")
    return state

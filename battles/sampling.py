"""Choosing the two models of an anonymous battle, and the share each model should get.

Pure: candidates in, an ordered pair out. The database side (which models are in the
pool, their weights and targets) is battles/arena_pool.py.

Each candidate k has an effective weight w_k > 0 and a set of battle targets; only
targets that are themselves candidates count, and never k itself. Write W for the sum
of all weights, T_k for k's eligible targets, W(T_k) for their weight, and t for the
target share (ARENA_BATTLE_TARGET_SHARE), with t_k = t when T_k is not empty, else 0.

Two models still under codenames (in the blind test, never listed) never meet: their
votes would rank two unknowns against each other, and a provider testing several
variants could have them play one another. Write E_i for the opponents model i may
meet: every other candidate, or, when i is under a codename, every other candidate that
is not; T_i only keeps targets in E_i, and W(E_i) is the weight of E_i.

A pair is drawn in three steps:

1. the first model i, with probability  w_i / W;
2. its opponent j in E_i, with probability
       P(j | i) = (1 - t_i) * w_j / W(E_i)  +  t_i * [j in T_i] * w_j / W(T_i)
   (by weight among the models i may meet, or, with probability t_i, among i's targets);
3. the sides: (i, j) or (j, i) with probability 1/2 each, so that position A or B says
   nothing about which model was drawn first.

So the probability that model k takes part in a battle is

    P(k) = w_k / W  +  sum over i with k in E_i of  (w_i / W) * P(k | i)

and it is model_a (or model_b) with probability P(k) / 2. The P(k) sum to 2 over the
pool, since every battle has two models. Without targets or codenames this is

    P(k) = (w_k / W) * (1 + sum over i != k of  w_i / (W - w_i)),

which grows less than linearly with w_k: a model cannot be its own opponent, so a heavy
model's second-step chances are spread over the others. Two models take part in every
battle whatever their weights; with n equal weights each has 2/n. For example ten listed
models of weight 1 and one new model boosted to 5: the new model is in 4/7 = 57% of the
battles and each listed one in 1/7 = 14%, four times as often, not five.

`expected_shares` computes P(k) for every candidate; the published shares are these, and
the served shares recorded per day should agree with them within sampling noise.
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class NotEnoughModels(Exception):
    """Fewer than two models can be sampled, so no anonymous battle is possible right now."""

    def __init__(self, available: int):
        self.available = available
        super().__init__(f"An anonymous battle needs two models in the pool; {available} available.")


@dataclass(frozen=True)
class Candidate(Generic[K]):
    """A model that may be drawn: its key (a model id), effective weight and battle targets."""

    key: K
    weight: float
    targets: frozenset[K] = field(default_factory=frozenset)
    codename: bool = False  # still under a codename: never meets another such candidate


def effective_weight(
    sampling_weight: float, *, in_initial_rating: bool, votes_counted: int, boost: float, boost_votes: int
) -> float:
    """The weight a model is drawn with: its own, times `boost` while it is in initial rating
    with fewer than `boost_votes` counted votes (the boost ends at the threshold itself)."""
    boosted = in_initial_rating and votes_counted < boost_votes
    return sampling_weight * boost if boosted else sampling_weight


@dataclass(frozen=True)
class _Pool(Generic[K]):
    keys: list[K]
    weights: list[float]
    total: float
    codename: list[bool]
    # The weight of the visible (not codename) candidates: W(E_i) of a codename candidate.
    visible_total: float
    # Eligible targets of each candidate, by index into keys: opponents it may meet only.
    targets: list[list[int]]

    def may_meet(self, i: int, j: int) -> bool:
        return i != j and not (self.codename[i] and self.codename[j])

    def opponents_weight(self, i: int) -> float:
        return self.visible_total if self.codename[i] else self.total - self.weights[i]


def _prepare(candidates: Iterable[Candidate[K]], target_share: float) -> _Pool[K]:
    if not 0 <= target_share <= 1:
        raise ValueError(f"The target share must be a probability from 0 to 1, got {target_share!r}.")
    candidates = list(candidates)
    index: dict[K, int] = {}
    for i, candidate in enumerate(candidates):
        if candidate.key in index:
            raise ValueError(f"Candidate {candidate.key!r} is listed twice.")
        if not (math.isfinite(candidate.weight) and candidate.weight > 0):
            raise ValueError(f"Candidate {candidate.key!r} has weight {candidate.weight!r}; weights must be above 0.")
        index[candidate.key] = i
    # Every battle needs a visible model: codename candidates alone cannot make a pair.
    if len(candidates) < 2 or all(c.codename for c in candidates):
        raise NotEnoughModels(len(candidates) if len(candidates) < 2 else 1)
    weights = [c.weight for c in candidates]
    total = math.fsum(weights)
    if not math.isfinite(total):
        raise ValueError("The weights are too large to add up.")
    codename = [c.codename for c in candidates]
    pool = _Pool(
        keys=[c.key for c in candidates],
        weights=weights,
        total=total,
        codename=codename,
        visible_total=math.fsum(w for w, hidden in zip(weights, codename, strict=True) if not hidden),
        targets=[],
    )
    for i, c in enumerate(candidates):
        # sorted: seeded draws are reproducible
        pool.targets.append(sorted(index[t] for t in c.targets if t in index and pool.may_meet(i, index[t])))
    return pool


def choose_pair(candidates: Sequence[Candidate[K]], rng: random.Random, *, target_share: float) -> tuple[K, K]:
    """Draw (model_a, model_b) as the module docstring describes; never the same model twice,
    never two codename models.

    Raises NotEnoughModels with fewer than two candidates (or no visible one), ValueError for bad weights,
    duplicate keys or a target share outside [0, 1]. Given the same candidates in the same
    order and a generator in the same state, the pair is the same.
    """
    pool = _prepare(candidates, target_share)
    n = len(pool.keys)
    first = rng.choices(range(n), weights=pool.weights)[0]
    targets = pool.targets[first]
    if targets and rng.random() < target_share:
        second = rng.choices(targets, weights=[pool.weights[j] for j in targets])[0]
    else:
        others = [j for j in range(n) if pool.may_meet(first, j)]
        second = rng.choices(others, weights=[pool.weights[j] for j in others])[0]
    pair = (pool.keys[first], pool.keys[second])
    return pair if rng.random() < 0.5 else (pair[1], pair[0])


def expected_shares(candidates: Sequence[Candidate[K]], *, target_share: float) -> dict[K, float]:
    """P(k) of the module docstring for every candidate: the probability that a battle
    includes it. The values add up to 2; half of P(k) is the chance of being model_a.

    Takes time linear in the number of candidates plus the number of target links.
    """
    pool = _prepare(candidates, target_share)
    w, total, hidden = pool.weights, pool.total, pool.codename
    first = [wi / total for wi in w]
    # The untargeted part of P(k | i) is u_i * w_k / first_i with u_i = first_i * c_i / W(E_i)
    # and c_i = 1 - t_i. A visible k is met by every i != k: w_k * (U - u_k), U the sum over
    # all i. A codename k is met by the visible i only: w_k * (sum of u_i over visible i).
    untargeted = [
        first[i] * (1 - target_share if pool.targets[i] else 1.0) / pool.opponents_weight(i) for i in range(len(w))
    ]
    spread = math.fsum(untargeted)
    spread_visible = math.fsum(u for u, h in zip(untargeted, hidden, strict=True) if not h)
    shares = [first[k] + w[k] * (spread_visible if hidden[k] else spread - untargeted[k]) for k in range(len(w))]
    for i, targets in enumerate(pool.targets):
        if targets:
            target_weight = math.fsum(w[j] for j in targets)
            for j in targets:
                shares[j] += first[i] * target_share * w[j] / target_weight
    return dict(zip(pool.keys, shares, strict=True))

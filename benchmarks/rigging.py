"""Vote rigging against the defences, simulated: how much can an adversary move a model,
and how much of it do the sequential test and the daily caps take back?

    .venv/bin/python benchmarks/rigging.py                        # 1M honest votes; 100, 1k, 10k adversarial
    .venv/bin/python benchmarks/rigging.py --honest 200000 --adversarial 100,1000

Seeded synthetic data with known true strengths, in memory, through the same pure modules
the site runs (battles/integrity.py for the test, ratings_engine/bradley_terry.py for the
fit): no database.

Honest voters follow Bradley-Terry: 30 models with true ratings drawn from N(1000, 80)
Elo, pairs drawn uniformly, sides at random, 30% ties. Voters' activity is heavy-tailed
(lognormal weights over 120,000 voters, so most vote a few times and some hundreds of
times); each voter has a personal taste, an offset per model drawn from N(0, 50 Elo), so
honest voters disagree with the crowd as real ones do (a pure Bradley-Terry voter would
make the false-positive rate look better than it is; `--taste 0` shows that case). Each
honest voter sits on one of 20,000 networks; votes are spread over 30 days.

Adversaries (after Min et al. 2025, "Improving your model ranking on Chatbot Arena by vote
rigging") use accounts of `--votes-per-account` votes each, all from one network, within a
7-day window, and recognise a model from its answer with probability `--recognition`
(the de-anonymisation classifiers of Huang et al. 2025 reach about 95%); unrecognised,
they vote as an honest voter would:
- target-only: votes only in battles with the target, always for the target;
- omnipresent: votes in every battle: for the target when it is there, otherwise so
  that the target's neighbours on the public leaderboard lose (of two models above it,
  the stronger wins; of two below it, the weaker; across it, the one below), which
  moves the target through the rating coupling;
- random: votes at random (A, B, tie or both bad) in every battle: an apathetic voter.
The target is the model ranked 15th of 30 by true strength.

Defences, as the site applies them: the sequential test at alpha (every vote of a flagged
voter excluded), the per-voter daily cap (ARENA_VOTER_DAILY_VOTES) and the per-network daily
cap (ARENA_NETWORK_DAILY_VOTES), both applied in arrival order. Reported per scenario and
size: the share of adversarial accounts flagged (true positives), the share of
adversarial votes excluded by any defence, the share of tested honest voters flagged
(false positives), the share of honest votes excluded, and the target's rating and rank
(point estimates, by rating) without the adversary, with it, and with it after the
defences. A second table sweeps alpha.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from battles.integrity import sequential_test  # noqa: E402
from ratings_engine.bradley_terry import compute_ratings  # noqa: E402

ELO = 400 / math.log(10)  # Elo points per natural-log unit of strength
MODELS = 30
TARGET_RANK = 15
TIE_SHARE = 0.30
HONEST_VOTERS = 120_000
HONEST_NETWORKS = 20_000
DAYS = 30
ATTACK_DAYS = 7
WINNERS = np.array(["model_b", "tie", "model_a"])  # by level


@dataclass
class Votes:
    voter: np.ndarray
    network: np.ndarray
    a: np.ndarray
    b: np.ndarray
    level: np.ndarray
    day: np.ndarray  # float, days since the start

    def __len__(self) -> int:
        return len(self.voter)

    @staticmethod
    def join(first: Votes, second: Votes) -> Votes:
        return Votes(*(np.concatenate([getattr(first, f), getattr(second, f)]) for f in Votes.__dataclass_fields__))

    def take(self, index) -> Votes:
        return Votes(*(getattr(self, f)[index] for f in Votes.__dataclass_fields__))


def random_pairs(rng, n: int) -> tuple[np.ndarray, np.ndarray]:
    a = rng.integers(0, MODELS, n)
    b = (a + rng.integers(1, MODELS, n)) % MODELS
    return a, b


def bt_levels(rng, strength_a: np.ndarray, strength_b: np.ndarray) -> np.ndarray:
    """Bradley-Terry outcomes with a fixed share of ties: 2 (A won), 1 (tie), 0 (B won)."""
    won = rng.random(len(strength_a)) < 1 / (1 + np.exp(strength_b - strength_a))
    return np.where(rng.random(len(strength_a)) < TIE_SHARE, 1, np.where(won, 2, 0))


def honest_votes(rng, n: int, strength: np.ndarray, taste_elo: float) -> Votes:
    weights = rng.lognormal(0.0, 1.5, HONEST_VOTERS)
    voter = rng.choice(HONEST_VOTERS, size=n, p=weights / weights.sum())
    taste = rng.normal(0.0, taste_elo / ELO, (HONEST_VOTERS, MODELS)) if taste_elo else np.zeros((1, MODELS))
    who = voter if taste_elo else np.zeros(n, dtype=np.int64)
    a, b = random_pairs(rng, n)
    level = bt_levels(rng, strength[a] + taste[who, a], strength[b] + taste[who, b])
    network = rng.integers(0, HONEST_NETWORKS, HONEST_VOTERS)[voter]
    return Votes(voter, network, a, b, level, rng.uniform(0, DAYS, n))


def adversarial_votes(
    rng, scenario: str, n: int, *, strength, public, target, per_account: int, recognition: float, first_voter: int
) -> Votes:
    accounts = max(1, math.ceil(n / per_account))
    voter = first_voter + np.arange(n) // per_account
    if scenario == "target-only":
        opponent = (target + rng.integers(1, MODELS, n)) % MODELS
        target_first = rng.random(n) < 0.5
        a = np.where(target_first, target, opponent)
        b = np.where(target_first, opponent, target)
    else:
        a, b = random_pairs(rng, n)
    honest = bt_levels(rng, strength[a], strength[b])
    recognised = rng.random(n) < recognition
    if scenario == "random":
        level = rng.choice([2, 0, 1, 1], size=n)
    else:
        with_target = (a == target) | (b == target)
        for_target = np.where(a == target, 2, 0)
        # Without the target: make the target's rating neighbours lose. Both above it: the
        # stronger wins (the one just above drops); both below: the weaker wins (the one just
        # below does not rise); one on each side: the one below wins (the one above drops).
        above_a, above_b = public[a] > public[target], public[b] > public[target]
        farther_a = np.abs(public[a] - public[target]) > np.abs(public[b] - public[target])
        a_wins = np.where(above_a == above_b, farther_a, above_b)
        rigged = np.where(with_target, for_target, np.where(a_wins, 2, 0))
        level = np.where(recognised, rigged, honest)
    # The attack lasts ATTACK_DAYS; each account casts its votes within one day of it.
    window = rng.uniform(0, DAYS - ATTACK_DAYS)
    account_day = window + rng.integers(0, ATTACK_DAYS, accounts)
    day = account_day[voter - first_voter] + rng.uniform(0, 1, n)
    network = np.full(n, -1, dtype=np.int64)  # one network for the whole attack
    return Votes(voter, network, a, b, level, day)


def daily_cap_excess(keys: np.ndarray, day: np.ndarray, cap: int) -> np.ndarray:
    """Votes (in arrival order) beyond the first `cap` of each key and UTC day."""
    if cap <= 0:
        return np.zeros(len(keys), dtype=bool)
    whole_day = np.floor(day).astype(np.int64)
    group = (keys - keys.min()) * (DAYS + 1) + whole_day
    order = np.lexsort((day, group))
    sorted_group = group[order]
    starts = np.flatnonzero(np.r_[True, sorted_group[1:] != sorted_group[:-1]])
    rank = np.empty(len(keys), dtype=np.int64)
    rank[order] = np.arange(len(keys)) - np.repeat(starts, np.diff(np.r_[starts, len(keys)]))
    return rank >= cap


def fit(votes: Votes) -> pd.Series:
    frame = pd.DataFrame(
        {"model_a": votes.a.astype(str), "model_b": votes.b.astype(str), "winner": WINNERS[votes.level]}
    )
    counts = frame.groupby(["model_a", "model_b", "winner"], sort=False).size().rename("n").reset_index()
    table = compute_ratings(counts, bootstrap_rounds=0).ratings["rating"]
    return table.rename(index=int).sort_index()


def rank_of(ratings: pd.Series, model: int) -> int:
    return int((ratings > ratings[model]).sum()) + 1


@dataclass
class Defended:
    excluded: np.ndarray  # per vote
    flagged_voters: np.ndarray  # voter ids flagged
    tested_voters: np.ndarray
    log_stat: np.ndarray  # per tested voter, the larger log running product


def defend(votes: Votes, *, alpha: float, voter_cap: int, network_cap: int) -> Defended:
    order = np.argsort(votes.day, kind="stable")
    ordered = votes.take(order)
    over_voter = daily_cap_excess(ordered.voter, ordered.day, voter_cap)
    over_network = daily_cap_excess(ordered.network, ordered.day, network_cap)
    capped = over_voter | over_network
    # The test reads the votes that count (not capped), in time order.
    counted = ~capped
    result = sequential_test(
        ordered.voter[counted], ordered.a[counted], ordered.b[counted], ordered.level[counted], alpha=alpha
    )
    flagged = result.voters[result.flagged]
    excluded_ordered = capped | np.isin(ordered.voter, flagged)
    excluded = np.empty(len(votes), dtype=bool)
    excluded[order] = excluded_ordered
    return Defended(excluded, flagged, result.voters, np.maximum(result.log_up, result.log_down))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--honest", type=int, default=1_000_000)
    parser.add_argument("--adversarial", default="100,1000,10000")
    parser.add_argument("--votes-per-account", type=int, default=50)
    parser.add_argument("--recognition", type=float, default=0.95)
    parser.add_argument("--taste", type=float, default=50.0, help="sd of honest voters' personal taste, Elo")
    parser.add_argument("--alpha", type=float, default=0.02)
    parser.add_argument("--voter-cap", type=int, default=100)
    parser.add_argument("--network-cap", type=int, default=1000)
    parser.add_argument("--sweep", default="0.1,0.05,0.02,0.01,0.005,0.001")
    parser.add_argument("--seed", type=int, default=2025)
    args = parser.parse_args()
    sizes = [int(x) for x in args.adversarial.split(",") if x]
    alphas = [float(x) for x in args.sweep.split(",") if x]
    started = time.monotonic()
    rng = np.random.default_rng(args.seed)

    true_elo = np.sort(rng.normal(0, 80, MODELS))[::-1]  # model 0 strongest
    strength = true_elo / ELO
    target = TARGET_RANK - 1
    honest = honest_votes(rng, args.honest, strength, args.taste)
    base = fit(honest)
    public = base.reindex(range(MODELS)).to_numpy()
    base_defended = defend(honest, alpha=args.alpha, voter_cap=args.voter_cap, network_cap=args.network_cap)
    base_after = fit(honest.take(~base_defended.excluded))
    print(
        f"{args.honest:,} honest votes, {len(base_defended.tested_voters):,} voters with >= 5 votes tested; "
        f"taste sd {args.taste:g} Elo; target: model ranked {TARGET_RANK} (true {true_elo[target] + 1000:.0f}, "
        f"fitted {base[target]:.1f}); recognition {args.recognition:.0%}; {args.votes_per_account} votes per "
        f"adversarial account, one network; alpha {args.alpha:g}, caps {args.voter_cap}/voter/day, "
        f"{args.network_cap}/network/day"
    )
    print(
        f"honest only: FPR {len(base_defended.flagged_voters) / len(base_defended.tested_voters):.2%} of tested "
        f"voters, {base_defended.excluded.mean():.2%} of honest votes excluded, target after defences "
        f"{base_after[target]:.1f} (rank {rank_of(base_after, target)})\n"
    )

    header = (
        "| scenario | adversarial votes | accounts | accounts flagged (TPR) | adversarial votes excluded "
        "| honest voters flagged (FPR) | honest votes excluded | target Δ rating, no defence "
        "| target Δ rating, defended | target rank: honest → attacked → defended |"
    )
    print(header)
    print("|" + "---|" * 10)
    sweep_rows = {}
    for scenario in ("target-only", "omnipresent", "random"):
        for n in sizes:
            adv = adversarial_votes(
                rng,
                scenario,
                n,
                strength=strength,
                public=public,
                target=target,
                per_account=args.votes_per_account,
                recognition=args.recognition,
                first_voter=HONEST_VOTERS,
            )
            both = Votes.join(honest, adv)
            is_adv = np.r_[np.zeros(len(honest), dtype=bool), np.ones(len(adv), dtype=bool)]
            attacked = fit(both)
            defended = defend(both, alpha=args.alpha, voter_cap=args.voter_cap, network_cap=args.network_cap)
            after = fit(both.take(~defended.excluded))
            accounts = np.unique(adv.voter)
            tested_honest = defended.tested_voters < HONEST_VOTERS
            flagged_honest = np.sum(defended.flagged_voters < HONEST_VOTERS)
            tpr = np.isin(accounts, defended.flagged_voters).mean()
            print(
                f"| {scenario} | {n:,} | {len(accounts)} | {tpr:.0%} | {defended.excluded[is_adv].mean():.0%} "
                f"| {flagged_honest / tested_honest.sum():.2%} | {defended.excluded[~is_adv].mean():.2%} "
                f"| {attacked[target] - base[target]:+.1f} | {after[target] - base[target]:+.1f} "
                f"| {rank_of(base, target)} → {rank_of(attacked, target)} → {rank_of(after, target)} |"
            )
            if n == 1000 or n == sizes[0]:
                # The sweep re-thresholds this run's statistics: no new test needed.
                stats = defended.log_stat
                adv_tested = defended.tested_voters >= HONEST_VOTERS
                sweep_rows[scenario] = (
                    stats[tested_honest],
                    stats[adv_tested],
                    defended.tested_voters[adv_tested],
                    accounts,
                )
    print()
    print("alpha sweep (1,000 adversarial votes; FPR over tested honest voters, TPR over all adversarial accounts):\n")
    print("| alpha | honest FPR | target-only TPR | omnipresent TPR | random TPR |")
    print("|---|---|---|---|---|")
    for alpha in alphas:
        threshold = math.log(1 / alpha)
        honest_stats = sweep_rows["target-only"][0]
        cells = [f"{(honest_stats >= threshold).mean():.2%}"]
        for scenario in ("target-only", "omnipresent", "random"):
            _, adv_stats, adv_tested, accounts = sweep_rows[scenario]
            cells.append(f"{np.sum(adv_stats >= threshold) / len(accounts):.0%}")
        print(f"| {alpha:g} | " + " | ".join(cells) + " |")
    print(f"\n{time.monotonic() - started:.0f} s, {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()

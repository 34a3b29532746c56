"""Anomalous voters on the database: run the sequential test, exclude, review.

The test itself is pure (battles/integrity.py); this module reads the votes for it,
records the voters it flags (FlaggedVoter), excludes their votes with `flagged_user`, and
carries out staff decisions (confirm, clear, ban), each logged as a VoterDecision.
Detection runs before every rating recomputation (leaderboard/tasks.py), from the
`detect_anomalous_voters` command, and as the Celery task battles.tasks.detect_anomalous_voters.

A voter is a session or an account. A script that clears its cookies before every vote makes
sessions too short to test (fewer than the test's minimum of votes each); the votes of such
short sessions are therefore tested together per client address, as one voter named
`address:<address id>`. Flagging, reviewing and excluding such a voter acts on the
anonymous votes of that address (votes_of).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import transaction
from django.db.models import Count, QuerySet

from arenasite import clock
from providers.models import ArenaModel

from . import integrity
from .models import ExclusionReason, FlaggedVoter, Vote, VoterDecision, VoterState
from .voters import ADDRESS_VOTER

logger = logging.getLogger(__name__)

FLAGGED_USER = ExclusionReason.FLAGGED_USER
# Judges per UPDATE ... WHERE judge IN (...): keeps each statement's parameter list small.
JUDGE_BATCH = 500


def votes_of(judge: str) -> QuerySet:
    """The votes of a tested voter: a session's or account's, or for `address:<id>` the
    anonymous votes of that client address."""
    if judge.startswith(ADDRESS_VOTER):
        return Vote.objects.filter(address=judge.removeprefix(ADDRESS_VOTER))
    return Vote.objects.filter(judge=judge)


class DecisionError(Exception):
    """A review decision that cannot be made; nothing was changed."""


@dataclass(frozen=True)
class FlaggedRow:
    judge: str
    votes: int
    statistic: float
    direction: str
    state: str
    new: bool


@dataclass(frozen=True)
class DetectionReport:
    tested: int
    flagged: list[FlaggedRow]
    votes_excluded: int
    alpha: float


def tested_votes() -> QuerySet:
    """The votes the test reads: anonymous ones that count, or were excluded only for the
    voter being flagged (so a flagged voter keeps being tested on the same votes)."""
    return Vote.objects.filter(anony=True, excluded_reason__in=["", FLAGGED_USER]).exclude(judge="")


def detect_anomalous_voters(*, alpha: float | None = None) -> DetectionReport:
    """Test every voter, flag those who cross 1/alpha, and exclude the votes of every voter
    under a flag (flagged, confirmed or banned), including those cast since the last run.

    Idempotent: a second run on the same votes flags nobody new and changes no vote. A
    voter staff cleared is not flagged again. A flagged voter whose evidence later falls
    below the threshold stays flagged until reviewed: the flag is a human's to lift.
    """
    alpha = settings.ARENA_ANOMALY_ALPHA if alpha is None else alpha
    judges, model_a, model_b, level, counted = _read_votes()
    if len(judges):
        voter, labels = integrity.codes(judges)
        result = integrity.sequential_test(
            voter,
            model_a,
            model_b,
            level,
            population=counted,
            alpha=alpha,
            min_votes=integrity.DEFAULT_MIN_VOTES,
            max_votes=integrity.DEFAULT_MAX_VOTES,
        )
    else:
        labels = np.array([], dtype=object)
        result = integrity.sequential_test([], [], [], [], alpha=alpha)
    now = clock.now()
    crossed = {
        str(labels[code]): (int(votes), float(statistic), str(direction))
        for code, votes, statistic, direction, flag in zip(
            result.voters, result.votes, result.statistic, result.direction, result.flagged, strict=True
        )
        if flag
    }
    with transaction.atomic():
        known = {v.judge: v for v in FlaggedVoter.objects.select_for_update().filter(judge__in=list(crossed))}
        new = [
            FlaggedVoter(
                judge=judge,
                votes_tested=votes,
                statistic=statistic,
                direction=direction,
                alpha=alpha,
                flagged_at=now,
                tested_at=now,
            )
            for judge, (votes, statistic, direction) in crossed.items()
            if judge not in known
        ]
        # Two runs at once: the other one's rows win, and this one reads them below.
        FlaggedVoter.objects.bulk_create(new, ignore_conflicts=True)
        for judge, voter in known.items():
            voter.votes_tested, voter.statistic, voter.direction = crossed[judge]
            voter.alpha, voter.tested_at = alpha, now
        FlaggedVoter.objects.bulk_update(
            known.values(), ["votes_tested", "statistic", "direction", "alpha", "tested_at"], batch_size=500
        )
        # Locked, so a staff decision (which locks the row too) cannot interleave with the
        # exclusion below and have its cleared votes excluded again.
        excluding = list(
            FlaggedVoter.objects.select_for_update()
            .filter(state__in=FlaggedVoter.EXCLUDING)
            .values_list("judge", flat=True)
        )
        excluded = _exclude(excluding)
    new_judges = {v.judge for v in new}
    states = dict(FlaggedVoter.objects.filter(judge__in=list(crossed)).values_list("judge", "state"))
    flagged = [
        FlaggedRow(judge, votes, statistic, direction, states.get(judge, VoterState.FLAGGED), judge in new_judges)
        for judge, (votes, statistic, direction) in sorted(crossed.items(), key=lambda item: -item[1][1])
        if states.get(judge) != VoterState.CLEARED
    ]
    logger.info(
        "anomalous voters: %d tested, %d over the threshold, %d new, %d votes excluded",
        len(result.voters),
        len(flagged),
        len(new_judges),
        excluded,
    )
    return DetectionReport(tested=len(result.voters), flagged=flagged, votes_excluded=excluded, alpha=alpha)


def _read_votes():
    """(voter, model_a, model_b, level, counts) arrays of the tested votes, oldest first. The
    voter is the judge, or for a session too short to test alone, its client address."""
    rows = (
        tested_votes()
        .order_by("created_at", "id")
        .values_list("judge", "address", "model_a_id", "model_b_id", "winner", "excluded_reason")
    )
    judges, addresses, model_a, model_b, level, counted = [], [], [], [], [], []
    for judge, address, a, b, winner, reason in rows.iterator(chunk_size=20_000):
        judges.append(judge)
        addresses.append(address)
        model_a.append(a)
        model_b.append(b)
        level.append(integrity.LEVELS[winner])
        counted.append(not reason)
    return (
        _voters(np.array(judges, dtype=object), np.array(addresses, dtype=object)),
        np.array(model_a, dtype=np.int64),
        np.array(model_b, dtype=np.int64),
        np.array(level, dtype=np.int64),
        np.array(counted, dtype=bool),
    )


def _voters(judges: np.ndarray, addresses: np.ndarray) -> np.ndarray:
    """Each vote's tested voter: its judge, unless the judge has too few votes to be tested
    and the vote has a client address, when the address's short sessions are one voter."""
    if not len(judges):
        return judges
    unique, inverse, counts = np.unique(judges.astype(str), return_inverse=True, return_counts=True)
    short = (counts[inverse] < integrity.DEFAULT_MIN_VOTES) & (addresses != "")
    voters = judges.copy()
    voters[short] = ADDRESS_VOTER + addresses[short].astype(object)
    return voters


def _exclude(judges: list[str]) -> int:
    """Exclude every counting vote of these voters with `flagged_user`; the number changed.
    Votes already excluded for another reason keep it, so clearing restores only these."""
    changed = 0
    addresses = [judge.removeprefix(ADDRESS_VOTER) for judge in judges if judge.startswith(ADDRESS_VOTER)]
    judges = [judge for judge in judges if not judge.startswith(ADDRESS_VOTER)]
    for field, values in (("judge", judges), ("address", addresses)):
        for start in range(0, len(values), JUDGE_BATCH):
            batch = values[start : start + JUDGE_BATCH]
            changed += Vote.objects.filter(**{f"{field}__in": batch}, excluded_reason="").update(
                excluded_reason=FLAGGED_USER
            )
    return changed


DECISION_STATES = {
    VoterDecision.Decision.CONFIRM: VoterState.CONFIRMED,
    VoterDecision.Decision.CLEAR: VoterState.CLEARED,
    VoterDecision.Decision.BAN: VoterState.BANNED,
}


def flagged_voter_decide(*, voter_id: int, decision: str, actor, reason: str) -> VoterDecision:
    """Confirm, clear or ban a flagged voter, and log it with who and why.

    confirm: the votes stay excluded (and later ones are excluded by each detection run).
    clear: the votes excluded as `flagged_user` count again; the test will not flag the
    voter again. ban: the votes are excluded, and later ones as they arrive.
    Raises DecisionError (changing nothing) for an unknown decision, an empty reason, or a
    decision that would not change the state. The next recomputation reflects it.
    """
    if decision not in DECISION_STATES:
        raise DecisionError(f"Unknown decision {decision!r}; choose confirm, clear or ban.")
    reason = (reason or "").strip()
    if not reason:
        raise DecisionError("Say why: every decision is logged with its reason.")
    target = DECISION_STATES[decision]
    with transaction.atomic():
        # Locked, so two reviewers (or a review and a detection run) cannot interleave.
        voter = FlaggedVoter.objects.select_for_update().get(pk=voter_id)
        if voter.state == target:
            raise DecisionError(f"{voter} is already {voter.get_state_display().lower()}.")
        if target == VoterState.CLEARED:
            changed = votes_of(voter.judge).filter(excluded_reason=FLAGGED_USER).update(excluded_reason="")
        else:
            changed = _exclude([voter.judge])
        logged = VoterDecision.objects.create(
            voter=voter,
            decision=decision,
            from_state=voter.state,
            to_state=target,
            actor=actor,
            reason=reason,
            votes_changed=changed,
            created_at=clock.now(),
        )
        voter.state, voter.decided_at = target, logged.created_at
        voter.save(update_fields=["state", "decided_at"])
    return logged


def voter_votes(voter: FlaggedVoter) -> QuerySet:
    return votes_of(voter.judge).select_related("battle", "model_a", "model_b").order_by("created_at")


@dataclass(frozen=True)
class RatingEffect:
    model: str
    votes: int  # the voter's votes on battles with this model
    with_voter: float | None
    without_voter: float | None
    rank_with: int | None
    rank_without: int | None

    @property
    def change(self) -> float | None:
        if self.with_voter is None or self.without_voter is None:
            return None
        return self.with_voter - self.without_voter


def rating_effect(voter: FlaggedVoter) -> list[RatingEffect]:
    """Each model's overall rating with the voter's votes and without them, on today's counted
    votes: what removing the voter changes. Point estimates (no bootstrap), so it is quick
    enough for an admin page; raises ValueError when the votes cannot be rated together."""
    # The rating engine is a pure module (numpy, no Django state); reading it here is
    # the same use as the benchmarks', not a dependency on the leaderboard's tables.
    from leaderboard import ratings

    mine = votes_of(voter.judge).values("pk")
    others = _pair_counts(Vote.objects.filter(anony=True, excluded_reason="").exclude(pk__in=mine))
    own = _pair_counts(tested_votes().filter(pk__in=mine))
    if not own:
        return []
    with_voter = dict(others)
    for key, n in own.items():
        with_voter[key] = with_voter.get(key, 0) + n

    def table(counts: dict) -> dict[str, tuple[float, int]]:
        if not counts:
            return {}
        frame = _counts_frame(counts)
        rated = ratings.compute_ratings(frame, bootstrap_rounds=0).ratings
        return {name: (float(row.rating), int(row["rank"])) for name, row in rated.iterrows()}

    before, after = table(with_voter), table(others)
    touched: dict[str, int] = {}
    for (a, b, _), n in own.items():
        touched[a] = touched.get(a, 0) + n
        touched[b] = touched.get(b, 0) + n
    names = dict(ArenaModel.objects.filter(pk__in=[int(k) for k in before]).values_list("pk", "name"))
    rows = [
        RatingEffect(
            model=names.get(int(key), key),
            votes=touched.get(key, 0),
            with_voter=before[key][0],
            without_voter=after.get(key, (None, None))[0],
            rank_with=before[key][1],
            rank_without=after.get(key, (None, None))[1],
        )
        for key in before
    ]
    return sorted(rows, key=lambda row: -abs(row.change or 0.0))


def _pair_counts(votes: QuerySet) -> dict[tuple[str, str, str], int]:
    rows = votes.values_list("model_a_id", "model_b_id", "winner").annotate(n=Count("id")).order_by()
    return {(str(a), str(b), winner): n for a, b, winner, n in rows}


def _counts_frame(counts: dict) -> pd.DataFrame:
    keys = list(counts)
    return pd.DataFrame(
        {
            "model_a": [k[0] for k in keys],
            "model_b": [k[1] for k in keys],
            "winner": [k[2] for k in keys],
            "n": np.array([counts[k] for k in keys], dtype=np.int64),
        }
    )

"""Staff review of flagged voters: confirm, clear or ban, each logged as a VoterDecision,
and what removing a voter's votes does to each model's rating.

Detection (battles/anomaly_detection.py) flags the voters; the review decides, in admin
(battles/admin.py), and each decision changes the voter's votes at once
(battles/anomaly_votes.py). The next rating recomputation reflects it.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count, QuerySet

from arenasite import clock
from providers.models import ArenaModel

from .anomaly_votes import FLAGGED_USER, exclude_votes_of, tested_votes, votes_of
from .models import FlaggedVoter, Vote, VoterDecision, VoterState


class DecisionError(Exception):
    """A review decision that cannot be made; nothing was changed."""


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
            changed = exclude_votes_of([voter.judge])
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
    mine = votes_of(voter.judge).values("pk")
    others = _pair_counts(Vote.objects.filter(anony=True, excluded_reason="").exclude(pk__in=mine))
    own = _pair_counts(tested_votes().filter(pk__in=mine))
    if not own:
        return []
    with_voter = dict(others)
    for key, n in own.items():
        with_voter[key] = with_voter.get(key, 0) + n

    before, after = _rate(with_voter), _rate(others)
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


def _rate(counts: dict[tuple[str, str, str], int]) -> dict[str, tuple[float, int]]:
    """(rating, rank) of each model, a point estimate, from counts per (model_a, model_b, winner)."""
    if not counts:
        return {}
    # The engine (numpy, pandas, scipy) is imported here, when a review page asks for the
    # effect, not with this module: the admin imports it, and so every process that loads admin.
    import numpy as np
    import pandas as pd

    from ratings_engine import bradley_terry

    keys = list(counts)
    frame = pd.DataFrame(
        {
            "model_a": [k[0] for k in keys],
            "model_b": [k[1] for k in keys],
            "winner": [k[2] for k in keys],
            "n": np.array([counts[k] for k in keys], dtype=np.int64),
        }
    )
    rated = bradley_terry.compute_ratings(frame, bootstrap_rounds=0).ratings
    return {name: (float(row.rating), int(row["rank"])) for name, row in rated.iterrows()}

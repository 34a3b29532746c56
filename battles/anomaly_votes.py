"""The votes of the anomalous-voter test: which it reads, which are one tested voter's, and
excluding them while the voter is under a flag.

Detection (battles/anomaly_detection.py) and staff review (battles/anomaly_review.py) both
act on these votes. A voter is a session or an account, or for `address:<address id>` the
anonymous votes of one client address whose sessions are too short to test alone (see
battles/anomaly_detection.py).
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import QuerySet

from .models import Battle, ExclusionReason, Vote
from .voters import ADDRESS_VOTER

FLAGGED_USER = ExclusionReason.FLAGGED_USER
# Judges per UPDATE ... WHERE judge IN (...): keeps each statement's parameter list small.
JUDGE_BATCH = 500
SCOPE_ALL, SCOPE_ARENA = "all", "arena"


def votes_of(judge: str) -> QuerySet:
    """The votes of a tested voter: a session's or account's, or for `address:<id>` the
    anonymous votes of that client address."""
    if judge.startswith(ADDRESS_VOTER):
        return Vote.objects.filter(address=judge.removeprefix(ADDRESS_VOTER))
    return Vote.objects.filter(judge=judge)


def tested_votes(scope: str | None = None) -> QuerySet:
    """The votes the test reads: anonymous ones that count, or were excluded only for the
    voter being flagged (so a flagged voter keeps being tested on the same votes). With the
    scope "arena" (ARENA_ANOMALY_TEST_SCOPE), only votes cast on this site: imported votes
    are neither tested nor compared with."""
    votes = Vote.objects.filter(anony=True, excluded_reason__in=["", FLAGGED_USER]).exclude(judge="")
    if (scope or settings.ARENA_ANOMALY_TEST_SCOPE) == SCOPE_ARENA:
        votes = votes.filter(battle__source=Battle.Source.ARENA)
    return votes


def exclude_votes_of(judges: list[str]) -> int:
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

"""What waits for staff: the counts the admin index opens on ("needs attention"), each linking
to the admin list filtered to those rows. Only the lists the signed-in user may view are shown."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django.urls import reverse

from arenasite import clock


@dataclass(frozen=True)
class Item:
    label: str
    count: int
    url: str


def _url(name: str, **filters) -> str:
    url = reverse(f"admin:{name}_changelist")
    return f"{url}?{urlencode(filters)}" if filters else url


def items(user) -> list[Item]:
    from battles.models import FlaggedVoter
    from leaderboard import fairness
    from providers.models import ArenaModel, ChangeRequest
    from releases.models import DataRelease, DataSharingAgreement

    now = clock.now()
    checks = [
        (
            "providers.view_arenamodel",
            "Submissions waiting for admission",
            lambda: ArenaModel.objects.filter(status=ArenaModel.Status.SUBMITTED).count(),
            lambda: _url("providers_arenamodel", status__exact=ArenaModel.Status.SUBMITTED),
        ),
        (
            "providers.view_changerequest",
            "Access or endpoint changes waiting",
            lambda: ChangeRequest.objects.filter(state=ChangeRequest.State.PENDING).count(),
            lambda: _url("providers_changerequest", state__exact=ChangeRequest.State.PENDING),
        ),
        (
            "providers.view_arenamodel",
            "Models offline inside their listing window",
            lambda: ArenaModel.objects.offline_in_listing_window(now).count(),
            lambda: _url("providers_arenamodel", health="alert"),
        ),
        (
            "providers.view_arenamodel",
            "Retirements scheduled (carried out when due)",
            lambda: ArenaModel.objects.filter(status=ArenaModel.Status.LISTED, retire_after__isnull=False).count(),
            lambda: _url("providers_arenamodel", scheduled="retirement"),
        ),
        (
            "leaderboard.view_retirementcandidate",
            "Retirement candidates to decide",
            lambda: len(fairness.retirement_candidates(now)),
            lambda: _url("leaderboard_retirementcandidate"),
        ),
        (
            "battles.view_flaggedvoter",
            "Flagged voters to review",
            lambda: FlaggedVoter.objects.filter(state=FlaggedVoter.State.FLAGGED).count(),
            lambda: _url("battles_flaggedvoter", state__exact=FlaggedVoter.State.FLAGGED),
        ),
        (
            "releases.view_datasharingagreement",
            "Data-sharing agreements waiting",
            lambda: DataSharingAgreement.objects.filter(state=DataSharingAgreement.State.PENDING).count(),
            lambda: _url("releases_datasharingagreement", state__exact=DataSharingAgreement.State.PENDING),
        ),
        (
            "releases.view_datarelease",
            "Releases built, ready to review and publish",
            lambda: DataRelease.objects.filter(state=DataRelease.State.BUILT).count(),
            lambda: _url("releases_datarelease", state__exact=DataRelease.State.BUILT),
        ),
    ]
    return [Item(label, count(), url()) for perm, label, count, url in checks if user.has_perm(perm)]

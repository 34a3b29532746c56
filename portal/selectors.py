"""What the portal's pages read. Nothing here decides anything: the dates and thresholds
come from the model's record and the policy settings the lifecycle applies."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db.models import QuerySet

from leaderboard.models import ModelRating, RatingRun
from providers import access
from providers.models import ArenaModel, LifecycleEvent, Membership, Provider
from releases.models import DataSharingAgreement, ProviderShare

Status = ArenaModel.Status


def memberships_of(user) -> QuerySet[Membership]:
    return Membership.objects.filter(user=user).select_related("provider").order_by("provider__name")


def next_step(model: ArenaModel) -> str:
    """One sentence: what happens next to the model, and who acts."""
    match model.status:
        case Status.DRAFT:
            if not (model.has_endpoint or model.is_demo):
                return "Add the endpoint's base URL and model id, test it, then submit the model."
            return "Test the endpoint, then submit the model for admission."
        case Status.SUBMITTED:
            return "Waiting for the arena's staff to admit or reject it."
        case Status.INITIAL_RATING:
            if model.list_after:
                return f"Staff decided to list it; listing takes effect {model.list_after:%Y-%m-%d %H:%M} UTC."
            needed = settings.ARENA_LISTING_MIN_VOTES
            return (
                f"In the blind test: {model.votes_counted} of the {needed} counted votes listing needs. "
                "Staff decide on listing; you may withdraw it until then."
            )
        case Status.LISTED:
            if model.retire_after:
                return f"Retirement scheduled for {model.retire_after:%Y-%m-%d %H:%M} UTC."
            return f"On the leaderboard; it stays in the arena at least until {model.listing_window_ends_at:%Y-%m-%d}."
        case Status.REJECTED:
            return "Rejected by staff; see the reason in its history."
        case Status.WITHDRAWN:
            return "Withdrawn before listing."
        case Status.RETIRED:
            return "Retired."
    return ""


@dataclass(frozen=True)
class HistoryRow:
    event: LifecycleEvent
    actor: str | None


def history(model: ArenaModel, viewer) -> list[HistoryRow]:
    """The lifecycle log, with actors named as the API names them to the viewer (staff as "staff")."""
    rows = []
    for event in model.events.select_related("actor"):
        actor = access.actor_label(event.actor, viewer=viewer)
        if event.actor is not None and actor != "staff":
            actor = event.actor.email or actor  # people log in with their address; name them by it
        rows.append(HistoryRow(event, actor))
    return rows


@dataclass(frozen=True)
class PrivateRatings:
    run: RatingRun | None
    ratings: list[ModelRating]


def private_ratings(model: ArenaModel) -> PrivateRatings:
    """The model's ratings in the latest published run (what GET /api/v1/models/{id}/rating/
    returns), overall first. For a model in initial rating only its provider sees these."""
    run = RatingRun.objects.latest_published()
    if run is None:
        return PrivateRatings(None, [])
    ratings = sorted(run.ratings.filter(arena_model=model), key=lambda r: (r.category != "overall", r.category))
    return PrivateRatings(run, ratings)


def latest_agreement(provider: Provider) -> DataSharingAgreement | None:
    return DataSharingAgreement.objects.filter(provider=provider).order_by("-accepted_at", "-id").first()


def shares_of(provider: Provider) -> QuerySet[ProviderShare]:
    shares = ProviderShare.objects.filter(provider=provider).select_related("requested_by")
    return shares.order_by("-requested_at", "-id")

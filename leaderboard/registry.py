"""The public model registry (/models/): every model that ever entered the arena and is public.

Read in a constant number of queries: the models (with provider and kept rating), their
lifecycle events, and the current ratings of the public ones still in initial rating.
Models that are not public yet (under codename, before their delay) are read to find their
family's listings but never leave this module: the rows are built from public models only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, Q

from providers import changes
from providers.models import ArenaModel, LifecycleEvent, RetirementRule

from . import fairness
from .models import ModelRating, RatingRun

Status = ArenaModel.Status

# Reasons are written "for the public record" (providers.lifecycle); these are the decisions
# whose reason the registry shows. Admission and listing reasons are notes for staff.
_EXPLAINED_ACTIONS = {"withdraw", "request-retirement", "retire", "reject"}


@dataclass
class RegistryEvent:
    at: datetime
    action: str
    scheduled: bool
    to_status: str
    rule: str = ""
    reason: str = ""


@dataclass
class RegistryRow:
    model: ArenaModel
    public_since: datetime
    events: list[RegistryEvent] = field(default_factory=list)
    current_rating: float | None = None  # public, never listed, still in initial rating

    @property
    def kept(self):
        return getattr(self.model, "kept_rating", None)

    @property
    def exit_event(self) -> RegistryEvent | None:
        """The retirement or withdrawal, with its rule and reason: why the model left."""
        done = [e for e in self.events if not e.scheduled and e.to_status in (Status.RETIRED, Status.WITHDRAWN)]
        return done[-1] if done else None


def entered_the_arena():
    """Models admitted to initial rating at some point (or imported as listed)."""
    return ArenaModel.objects.filter(Q(admitted_at__isnull=False) | Q(listed_at__isnull=False))


def registry_rows(now: datetime) -> list[RegistryRow]:
    """The public rows, by provider and then by when each model entered the arena."""
    models = list(entered_the_arena().select_related("provider", "kept_rating"))
    listings = fairness.family_listings(models)
    rows = []
    for model in models:
        since = fairness.public_from(model, fairness.family_listed_at(model, listings))
        if since is not None and since <= now:
            rows.append(RegistryRow(model=model, public_since=since))
    rows.sort(key=lambda r: (r.model.provider.name, r.model.admitted_at or r.model.listed_at, r.model.pk))
    _add_events_and_ratings({row.model.pk: row for row in rows})
    return rows


def registry_row(pk: int, now: datetime) -> RegistryRow | None:
    """One model's row, as the registry shows it; None unless the model is public (a model's card)."""
    model = entered_the_arena().select_related("provider", "kept_rating").filter(pk=pk).first()
    if model is None:
        return None
    # Only another listed model of the family can make a never-listed model public before its withdrawal.
    family = [model]
    if model.family:
        family = list(entered_the_arena().filter(provider_id=model.provider_id, family=model.family))
    since = fairness.public_from(model, fairness.family_listed_at(model, fairness.family_listings(family)))
    if since is None or since > now:
        return None
    row = RegistryRow(model=model, public_since=since)
    _add_events_and_ratings({model.pk: row})
    return row


def _add_events_and_ratings(by_id: dict[int, RegistryRow]) -> None:
    """The public lifecycle events of the rows' models, and the current rating of those still in initial rating."""
    if not by_id:
        return
    # Requests, withdrawals and refusals of access or endpoint changes, and key rotations, are
    # between the provider and staff; an approved change stays on the public record.
    events = (
        LifecycleEvent.objects.filter(arena_model_id__in=by_id)
        .exclude(action__in=changes.PRIVATE_ACTIONS)
        .order_by("created_at", "id")
    )
    for model_id, action, kind, to_status, rule, reason, effective_at in events.values_list(
        "arena_model_id", "action", "kind", "to_status", "rule", "reason", "effective_at"
    ):
        by_id[model_id].events.append(
            RegistryEvent(
                at=effective_at,
                action=action,
                scheduled=kind == LifecycleEvent.Kind.SCHEDULED,
                to_status=to_status,
                rule=RetirementRule(rule).label if rule else "",
                reason=reason if action in _EXPLAINED_ACTIONS else "",
            )
        )
    testing = [pk for pk, row in by_id.items() if row.model.status == Status.INITIAL_RATING]
    if testing:
        latest = RatingRun.objects.published().order_by("-published_at", "-id").values("pk")[:1]
        for model_id, rating in ModelRating.objects.filter(
            run__in=latest, category="overall", arena_model_id__in=testing
        ).values_list("arena_model_id", "rating"):
            by_id[model_id].current_rating = rating


def variants_tested(provider_ids=None) -> dict[int, int]:
    """Per provider, the models that entered initial rating (public counts, no names)."""
    query = ArenaModel.objects.filter(admitted_at__isnull=False)
    if provider_ids is not None:
        query = query.filter(provider_id__in=provider_ids)
    return dict(query.values("provider_id").annotate(n=Count("id")).order_by().values_list("provider_id", "n"))

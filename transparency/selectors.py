"""Reading what /transparency/ shows: per provider, never per model, so nothing of a model
under codename is revealed. Each function is one or two grouped queries, whatever the
number of providers or days.

A model counts towards its provider only once it is public (leaderboard.fairness: from its
listing, or ARENA_RETRACTION_DELAY_DAYS after its withdrawal or a sibling's listing). Until
then its battles, predicted share and place among the variants are counted together with
every other provider's hidden models, under no provider: a provider's figures moving when a
new codename enters the blind test would tie the codename to the provider before the delay.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.db.models import Count, Sum

from arenasite import clock
from battles.models import SamplingShare
from leaderboard import fairness
from leaderboard.registry import entered_the_arena
from providers.models import LifecycleEvent, Provider, RetirementRule
from releases.models import Download, ProviderShare

from .models import ExpectedShare, ExpectedShareSnapshot, PolicyChange

# How far back the daily shares reach.
DAYS = 30

# The key of the models not public yet in the page's plots: a dot, which no provider slug has.
HIDDEN_KEY = "not.public"
HIDDEN_LABEL = "Models not public yet (all providers)"


@dataclass
class ProviderDay:
    day: date
    battles: int  # appearances of the provider's models in the day's battles (a battle between two counts twice)
    day_total: int  # appearances of all models that day: two per battle
    served: float | None  # share of model appearances in the day's battles; None: no battles that day
    expected: float | None  # the same share as the weights predicted; None: no snapshot that day


@dataclass
class ProviderSummary:
    provider: Provider | None  # None: the models not public yet, of all providers together
    variants: int = 0
    shares: int = 0  # early-access shares built for it
    shared_battles: int = 0  # battles in those shares
    downloads: int = 0  # files its members downloaded
    days: list[ProviderDay] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.provider.slug if self.provider is not None else HIDDEN_KEY

    @property
    def label(self) -> str:
        return self.provider.name if self.provider is not None else HIDDEN_LABEL

    @property
    def served_total(self) -> float | None:
        """Its share of all model appearances over the window."""
        total = sum(d.day_total for d in self.days)
        return sum(d.battles for d in self.days) / total if total else None

    @property
    def served_percent(self) -> float | None:
        return None if self.served_total is None else 100 * self.served_total

    @property
    def expected_percent(self) -> float | None:
        return None if self.expected_total is None else 100 * self.expected_total

    @property
    def expected_total(self) -> float | None:
        """The predicted share over the window, each day weighted by its battles like the served one."""
        days = [d for d in self.days if d.day_total and d.expected is not None]
        total = sum(d.day_total for d in days)
        return sum(d.expected * d.day_total for d in days) / total if total else None


def window(today: date, days: int = DAYS) -> list[date]:
    return [today - timedelta(days=n) for n in range(days - 1, -1, -1)]


def _owners(now: datetime) -> tuple[dict[int, int | None], dict[int, int]]:
    """Model id -> the provider its figures count for (None while the model is not public),
    and provider id -> its public models that entered initial rating ("variants tested")."""
    models = list(entered_the_arena().only("id", "provider_id", "family", "admitted_at", "listed_at", "withdrawn_at"))
    listings = fairness.family_listings(models)
    owners: dict[int, int | None] = {}
    variants: dict[int, int] = defaultdict(int)
    for model in models:
        public = fairness.is_public(model, fairness.family_listed_at(model, listings), now)
        owners[model.pk] = model.provider_id if public else None
        if model.admitted_at is not None:
            variants[model.provider_id if public else None] += 1
    return owners, variants


def provider_summaries(today: date, days: int = DAYS, *, now: datetime | None = None) -> list[ProviderSummary]:
    """Providers with a public model that entered the arena or was served, with their counts and
    days, then (provider None) the models not public yet, of all providers, if there are any."""
    owners, variants = _owners(now or clock.now())
    dates = window(today, days)
    served, day_totals = _served(owners, dates[0], today)
    expected, snapshots = _expected(owners, dates[0], today)
    shares = _ready_shares()
    downloads = _share_downloads()
    shown = (set(variants) | {provider_id for provider_id, _ in served}) - {None}
    summaries = [
        ProviderSummary(
            provider=provider,
            variants=variants.get(provider.pk, 0),
            shares=shares.get(provider.pk, (0, 0))[0],
            shared_battles=shares.get(provider.pk, (0, 0))[1],
            downloads=downloads.get(provider.pk, 0),
        )
        for provider in Provider.objects.filter(pk__in=shown).order_by("name")
    ]
    if None in variants or any(provider_id is None for provider_id, _ in served):
        # Early access is the provider's own business with its own data: counted per provider,
        # never here.
        summaries.append(ProviderSummary(provider=None, variants=variants.get(None, 0)))
    for summary in summaries:
        provider_id = summary.provider.pk if summary.provider is not None else None
        for day in dates:
            appearances = served.get((provider_id, day), 0)
            total = day_totals.get(day, 0)
            # Shares of appearances: P(k) adds up to 2 per battle, so each is halved to add up to 1.
            summary.days.append(
                ProviderDay(
                    day=day,
                    battles=appearances,
                    day_total=total,
                    served=appearances / total if total else None,
                    expected=expected.get((provider_id, day), 0.0) / (2 * snapshots[day]) if day in snapshots else None,
                )
            )
    return summaries


def _served(
    owners: dict[int, int | None], start: date, today: date
) -> tuple[dict[tuple[int | None, date], int], dict[date, int]]:
    """Appearances in battles by (provider, day), and each day's total (two per battle)."""
    served: defaultdict[tuple[int | None, date], int] = defaultdict(int)
    day_totals: defaultdict[date, int] = defaultdict(int)
    for day, model_id, battles in (
        SamplingShare.objects.filter(day__gte=start, day__lte=today)
        .values("day", "arena_model_id")
        .annotate(n=Sum("battles"))
        .order_by()
        .values_list("day", "arena_model_id", "n")
    ):
        served[owners.get(model_id), day] += battles
        day_totals[day] += battles
    return served, day_totals


def _expected(
    owners: dict[int, int | None], start: date, today: date
) -> tuple[dict[tuple[int | None, date], float], dict[date, int]]:
    """The expected share by (provider, day), summed over the day's snapshots, and the count of
    each day's snapshots (what the sum is averaged over)."""
    snapshots = dict(
        ExpectedShareSnapshot.objects.filter(day__gte=start, day__lte=today)
        .values("day")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("day", "n")
    )
    expected: defaultdict[tuple[int | None, date], float] = defaultdict(float)
    for day, model_id, share in (
        ExpectedShare.objects.filter(snapshot__day__gte=start, snapshot__day__lte=today)
        .values("snapshot__day", "arena_model_id")
        .annotate(s=Sum("share"))
        .order_by()
        .values_list("snapshot__day", "arena_model_id", "s")
    ):
        expected[owners.get(model_id), day] += share
    return expected, snapshots


def _ready_shares() -> dict[int, tuple[int, int]]:
    """provider id -> (ready shares, battles in them)."""
    return {
        provider_id: (count, battles or 0)
        for provider_id, count, battles in ProviderShare.objects.filter(state=ProviderShare.State.READY)
        .values("provider_id")
        .annotate(n=Count("id"), b=Sum("battle_count"))
        .order_by()
        .values_list("provider_id", "n", "b")
    }


def _share_downloads() -> dict[int, int]:
    """provider id -> downloads of its shares."""
    return dict(
        Download.objects.filter(provider__isnull=False, share__isnull=False)
        .values("provider_id")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("provider_id", "n")
    )


def retirements_by_rule() -> dict[str, int]:
    """How many retirements were made under each rule (label -> count), for the public record."""
    counts = (
        LifecycleEvent.objects.filter(to_status="retired", kind=LifecycleEvent.Kind.DONE)
        .exclude(rule="")
        .values("rule")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("rule", "n")
    )
    return {RetirementRule(rule).label: n for rule, n in counts}


def policy_changes():
    return PolicyChange.objects.all()

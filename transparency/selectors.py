"""Reading what /transparency/ shows: per provider, never per model, so nothing of a model
under codename is revealed. Each function is one or two grouped queries, whatever the
number of providers or days."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.db.models import Count, Sum

from battles.models import SamplingShare
from leaderboard.registry import variants_tested
from providers.models import LifecycleEvent, Provider, RetirementRule
from releases.models import Download, ProviderShare

from .models import ExpectedShare, ExpectedShareSnapshot, PolicyChange

# How far back the daily shares reach.
DAYS = 30


@dataclass
class ProviderDay:
    day: date
    battles: int  # appearances of the provider's models in the day's battles (a battle between two counts twice)
    day_total: int  # appearances of all models that day: two per battle
    served: float | None  # share of model appearances in the day's battles; None: no battles that day
    expected: float | None  # the same share as the weights predicted; None: no snapshot that day


@dataclass
class ProviderSummary:
    provider: Provider
    variants: int = 0
    shares: int = 0  # early-access shares built for it
    shared_battles: int = 0  # battles in those shares
    downloads: int = 0  # files its members downloaded
    days: list[ProviderDay] = field(default_factory=list)

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


def provider_summaries(today: date, days: int = DAYS) -> list[ProviderSummary]:
    """Providers with a model that entered the arena or was served, with their counts and days."""
    dates = window(today, days)
    start = dates[0]
    served = defaultdict(int)  # (provider, day) -> appearances
    day_totals = defaultdict(int)  # day -> appearances (two per battle)
    for day, provider_id, battles in (
        SamplingShare.objects.filter(day__gte=start, day__lte=today)
        .values("day", "arena_model__provider_id")
        .annotate(n=Sum("battles"))
        .order_by()
        .values_list("day", "arena_model__provider_id", "n")
    ):
        served[provider_id, day] += battles
        day_totals[day] += battles
    snapshots = dict(
        ExpectedShareSnapshot.objects.filter(day__gte=start, day__lte=today)
        .values("day")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("day", "n")
    )
    expected = defaultdict(float)  # (provider, day) -> summed share over the day's snapshots
    for day, provider_id, share in (
        ExpectedShare.objects.filter(snapshot__day__gte=start, snapshot__day__lte=today)
        .values("snapshot__day", "arena_model__provider_id")
        .annotate(s=Sum("share"))
        .order_by()
        .values_list("snapshot__day", "arena_model__provider_id", "s")
    ):
        expected[provider_id, day] += share

    variants = variants_tested()
    shares = {
        provider_id: (count, battles or 0)
        for provider_id, count, battles in ProviderShare.objects.filter(state=ProviderShare.State.READY)
        .values("provider_id")
        .annotate(n=Count("id"), b=Sum("battle_count"))
        .order_by()
        .values_list("provider_id", "n", "b")
    }
    downloads = dict(
        Download.objects.filter(provider__isnull=False, share__isnull=False)
        .values("provider_id")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("provider_id", "n")
    )
    shown = set(variants) | {provider_id for provider_id, _ in served}
    summaries = []
    for provider in Provider.objects.filter(pk__in=shown).order_by("name"):
        summary = ProviderSummary(
            provider=provider,
            variants=variants.get(provider.pk, 0),
            shares=shares.get(provider.pk, (0, 0))[0],
            shared_battles=shares.get(provider.pk, (0, 0))[1],
            downloads=downloads.get(provider.pk, 0),
        )
        for day in dates:
            appearances = served.get((provider.pk, day), 0)
            total = day_totals.get(day, 0)
            # Shares of appearances: P(k) adds up to 2 per battle, so each is halved to add up to 1.
            summary.days.append(
                ProviderDay(
                    day=day,
                    battles=appearances,
                    day_total=total,
                    served=appearances / total if total else None,
                    expected=expected.get((provider.pk, day), 0.0) / (2 * snapshots[day]) if day in snapshots else None,
                )
            )
        summaries.append(summary)
    return summaries


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

"""The fairness rules that need ratings (docs/lifecycle.md, docs/transparency.md).

- No retraction: the rating a model had when it left initial rating is kept (KeptRating),
  written in the transaction of the transition; a never-listed model becomes public
  ARENA_RETRACTION_DELAY_DAYS after its withdrawal or the listing of a model of its family.
  Whether it is public is computed from the recorded dates whenever it is asked, so no
  task has to flip a flag at the right moment.
- Provisional scores: a listed score is provisional until ARENA_PROVISIONAL_VOTES counted
  votes were collected after listing.
- The rating rule for retirement: a listed model past its listing window, with at least
  ARENA_RETIRE_MIN_VOTES counted votes, rated below the ARENA_RETIRE_PERCENTILE-th
  percentile of the listed models of its access kind that also have that many votes.

The lifecycle itself lives in providers, which cannot import this app: it sends
`transition_done`, and reads the percentile rule through `register_rule_check`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings

from arenasite import clock
from battles.models import Vote
from providers.models import ArenaModel, LifecycleEvent, RetirementRule

from .models import KeptRating, ModelRating, RatingRun

Status = ArenaModel.Status


# -- no retraction ---------------------------------------------------------------------


def keep_rating(sender, *, model: ArenaModel, event: LifecycleEvent, **kwargs) -> None:
    """Receiver of providers' transition_done: keep the rating of a model leaving initial rating.

    The rating is the model's overall rating in the latest published run at that moment (runs
    are made every hour, so it is at most that old). Idempotent: a model leaves initial rating
    once, and a second call finds the kept rating there and leaves it as it is.
    """
    if event.from_status != Status.INITIAL_RATING or KeptRating.objects.filter(arena_model=model).exists():
        return
    run = RatingRun.objects.latest_published()
    rating = None
    if run is not None:
        rating = ModelRating.objects.filter(run=run, category="overall", arena_model=model).first()
    KeptRating.objects.create(
        arena_model=model,
        left_at=event.effective_at,
        left_to=event.to_status,
        run=run if rating is not None else None,
        rating=rating.rating if rating else None,
        ci_lower=rating.ci_lower if rating else None,
        ci_upper=rating.ci_upper if rating else None,
        rated_votes=rating.votes if rating else None,
        votes_before=counted_votes_of(model.pk),
    )


def counted_votes_of(model_id: int) -> int:
    """Counted votes (anonymous, not excluded) the model took part in so far.

    Two counts rather than one with OR: each side has its own index, an OR would read every vote.
    """
    counted = Vote.objects.filter(anony=True, excluded_reason="")
    return counted.filter(model_a_id=model_id).count() + counted.filter(model_b_id=model_id).count()


def public_from(model: ArenaModel, family_listed_at: datetime | None) -> datetime | None:
    """When the model and its kept rating are (or become) public; None while nothing makes them so.

    A model that was listed is public from its listing. One never listed becomes public
    ARENA_RETRACTION_DELAY_DAYS after the first of: its withdrawal, or the listing of another
    model of its provider's family (`family_listed_at`, the earliest such listing) once it had
    itself entered the arena.
    """
    if model.listed_at is not None:
        return model.listed_at
    triggers = []
    if model.withdrawn_at is not None:
        triggers.append(model.withdrawn_at)
    if family_listed_at is not None and model.admitted_at is not None:
        triggers.append(max(family_listed_at, model.admitted_at))
    if not triggers:
        return None
    return min(triggers) + timedelta(days=settings.ARENA_RETRACTION_DELAY_DAYS)


def family_listings(models) -> dict[tuple[int, str], list[tuple[datetime, int]]]:
    """(provider id, family) -> [(listed_at, model id)] of the listed models among `models`."""
    listings: dict[tuple[int, str], list[tuple[datetime, int]]] = {}
    for model in models:
        if model.family and model.listed_at is not None:
            listings.setdefault((model.provider_id, model.family), []).append((model.listed_at, model.pk))
    return listings


def family_listed_at(model: ArenaModel, listings: dict[tuple[int, str], list[tuple[datetime, int]]]):
    """The earliest listing of another model of `model`'s family, from family_listings()."""
    if not model.family:
        return None
    others = [at for at, pk in listings.get((model.provider_id, model.family), []) if pk != model.pk]
    return min(others, default=None)


def is_public(model: ArenaModel, family_listed: datetime | None, now: datetime) -> bool:
    moment = public_from(model, family_listed)
    return moment is not None and moment <= now


# -- provisional scores ----------------------------------------------------------------


def votes_after_listing(model: ArenaModel) -> int:
    """Counted votes collected after the model left initial rating for the leaderboard.

    `votes_counted` is the latest run's count, so this lags by at most one run and a score
    stays provisional a little longer rather than a little shorter. Models listed before
    kept ratings existed (or imported as listed) count every vote.
    """
    kept = getattr(model, "kept_rating", None)
    before = kept.votes_before if kept is not None else 0
    return max(model.votes_counted - before, 0)


def is_provisional(model: ArenaModel) -> bool:
    if model.listed_at is None:
        return True
    return votes_after_listing(model) < settings.ARENA_PROVISIONAL_VOTES


# -- the rating rule for retirement ---------------------------------------------------


@dataclass(frozen=True)
class ClassThreshold:
    access_kind: str
    models: int  # listed models of the kind with enough votes: the population of the percentile
    threshold: float | None  # None with fewer than two such models: no one is below the others


@dataclass(frozen=True)
class Candidate:
    model: ArenaModel
    rating: float
    votes: int
    threshold: ClassThreshold

    def evidence(self, run: RatingRun) -> str:
        kind = ArenaModel.AccessKind(self.threshold.access_kind).label.lower()
        return (
            f"Rated {self.rating:.0f} with {self.votes} votes in rating run {run.pk}, below "
            f"{settings.ARENA_RETIRE_PERCENTILE:g}th percentile {self.threshold.threshold:.0f} of the "
            f"{self.threshold.models} listed {kind} models with at least {settings.ARENA_RETIRE_MIN_VOTES} votes."
        )


def percentile_rule(run: RatingRun | None = None, now: datetime | None = None):
    """(thresholds by access kind, candidates by model id) under the rating rule, from `run`
    (default: the latest published one). One query. The same rule for every access kind: only
    the population each model is compared with differs."""
    run = run or RatingRun.objects.latest_published()
    if run is None:
        return {}, {}
    now = now or clock.now()
    minimum = settings.ARENA_RETIRE_MIN_VOTES
    rows = list(
        ModelRating.objects.filter(
            run=run, category="overall", arena_model__status=Status.LISTED, votes__gte=minimum
        ).select_related("arena_model__provider")
    )
    by_kind: dict[str, list[ModelRating]] = {}
    for row in rows:
        by_kind.setdefault(row.arena_model.access_kind, []).append(row)
    thresholds, candidates = {}, {}
    window = timedelta(days=settings.ARENA_MIN_LISTED_DAYS)
    for kind, members in by_kind.items():
        value = None
        if len(members) >= 2:
            value = float(np.percentile([m.rating for m in members], settings.ARENA_RETIRE_PERCENTILE))
        thresholds[kind] = threshold = ClassThreshold(kind, len(members), value)
        if value is None:
            continue
        for member in members:
            model = member.arena_model
            past_window = model.listed_at is not None and model.listed_at + window <= now
            if past_window and member.rating < value:
                candidates[model.pk] = Candidate(model, member.rating, member.votes, threshold)
    return thresholds, candidates


def check_below_percentile(model: ArenaModel, now: datetime) -> str | None:
    """The rule check providers.lifecycle runs before a `below_percentile` retirement."""
    run = RatingRun.objects.latest_published()
    _, candidates = percentile_rule(run, now)
    if model.pk in candidates:
        return None
    return (
        f"{model.name} does not meet the rating rule in the latest run: a listed model past its "
        f"{settings.ARENA_MIN_LISTED_DAYS}-day window with at least {settings.ARENA_RETIRE_MIN_VOTES} votes, rated "
        f"below the {settings.ARENA_RETIRE_PERCENTILE:g}th percentile of its access kind."
    )


def retirement_candidates(now: datetime | None = None) -> dict[int, tuple[str, str]]:
    """Listed models that meet a retirement rule, by id: (rule, evidence), for staff to decide.

    Both rules, for every access kind; a model already scheduled to retire is left out. A model
    that meets both is listed under the offline rule, which needs no rating to check.
    """
    now = now or clock.now()
    found: dict[int, tuple[str, str]] = {}
    run = RatingRun.objects.latest_published()
    _, candidates = percentile_rule(run, now)
    for pk, candidate in candidates.items():
        if candidate.model.retire_after is None:
            found[pk] = (RetirementRule.BELOW_PERCENTILE, candidate.evidence(run))
    offline = ArenaModel.objects.filter(
        status=Status.LISTED, retirement_candidate_since__isnull=False, retire_after__isnull=True
    ).values_list("pk", "endpoint_offline_since", "endpoint_last_error")
    for pk, since, error in offline:
        found[pk] = (
            RetirementRule.OFFLINE,
            f"Endpoint offline since {since:%Y-%m-%d %H:%M} UTC, more than {settings.ARENA_OFFLINE_RETIREMENT_DAYS} "
            f"days after its listing window; last error: {error or 'none recorded'}",
        )
    return found

"""Rating recomputation: counted votes -> pair counts (in SQL) -> engine -> a published run."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta

import pandas as pd
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Q

from arenasite import clock
from battles.models import Vote
from providers.models import ArenaModel

from . import ratings
from .models import ModelRating, RatingRun

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Category:
    name: str
    label: str
    votes: Q  # a filter on counted votes


def categories() -> list[Category]:
    """The published categories. Each is the same computation on a subset of the counted votes."""
    found = [
        Category("overall", "Overall", Q()),
        Category("multi_turn", "Multi-turn", Q(battle__turn__gt=1)),
        Category("long_prompt", "Long prompts", Q(battle__prompt_chars__gte=settings.ARENA_LONG_PROMPT_CHARS)),
    ]
    for language in settings.ARENA_LANGUAGE_CATEGORIES:
        found.append(Category(f"lang_{language.lower()}", language, Q(battle__language=language)))
    return found


def counted_votes(*, last_vote_id: int):
    """Anonymous votes that are not excluded, up to a fixed vote id so a run sees a stable set."""
    return Vote.objects.filter(anony=True, excluded_reason="", id__lte=last_vote_id)


def pair_counts(votes) -> pd.DataFrame:
    """One row per (model A, model B, outcome) with its count; the database does the pass over votes."""
    rows = votes.values_list("model_a_id", "model_b_id", "winner").annotate(n=Count("id")).order_by()
    frame = pd.DataFrame(list(rows), columns=["model_a", "model_b", "winner", "n"])
    # The engine works on names; ids as strings keep it independent of renames.
    frame["model_a"] = frame["model_a"].astype(str)
    frame["model_b"] = frame["model_b"].astype(str)
    return frame


def _fit(counts: pd.DataFrame, *, bootstrap_rounds: int, seed: int, anchor) -> tuple[ratings.RatingTable, list]:
    try:
        return ratings.compute_ratings(counts, bootstrap_rounds=bootstrap_rounds, seed=seed, anchor=anchor), []
    except ratings.DisconnectedComparisons as exc:
        # Ratings are only comparable inside one connected group: rate the largest, name the rest.
        keep = set(exc.components[0])
        left_out = sorted(name for component in exc.components[1:] for name in component)
        subset = counts[counts["model_a"].isin(keep) & counts["model_b"].isin(keep)]
        if anchor is not None and anchor[0] not in keep:
            anchor = None
        table = ratings.compute_ratings(subset, bootstrap_rounds=bootstrap_rounds, seed=seed, anchor=anchor)
        return table, left_out


def _anchor():
    name = settings.ARENA_RATING_ANCHOR_MODEL
    if not name:
        return None
    model_id = ArenaModel.objects.filter(name=name).values_list("pk", flat=True).first()
    return (str(model_id), settings.ARENA_RATING_ANCHOR_RATING) if model_id else None


def mark_interrupted_runs(now) -> int:
    """Runs still `running` long after any task could be alive were killed; say so."""
    stale = now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT * 2)
    return RatingRun.objects.filter(state=RatingRun.State.RUNNING, started_at__lt=stale).update(
        state=RatingRun.State.FAILED, error="Interrupted: the run never finished.", finished_at=now
    )


def recompute(*, bootstrap_rounds: int | None = None, seed: int | None = None) -> RatingRun:
    """Compute every category into a new run and publish it once complete.

    The previous published run stays in place until the last row of this one is written;
    a failure marks this run failed and leaves the leaderboard untouched.
    """
    now = clock.now()
    mark_interrupted_runs(now)
    bootstrap_rounds = settings.ARENA_BOOTSTRAP_ROUNDS if bootstrap_rounds is None else bootstrap_rounds
    seed = settings.ARENA_BOOTSTRAP_SEED if seed is None else seed
    anchor = _anchor()
    last_vote_id = Vote.objects.aggregate(last=Max("id"))["last"] or 0
    run = RatingRun.objects.create(
        cutoff=now,
        last_vote_id=last_vote_id,
        parameters={
            "bootstrap_rounds": bootstrap_rounds,
            "seed": seed,
            "anchor": settings.ARENA_RATING_ANCHOR_MODEL or None,
            "anchor_rating": settings.ARENA_RATING_ANCHOR_RATING,
            "scale": 400,
            "base": 10,
            "init": 1000,
            "ties": "half a win each way",
            "categories": [c.name for c in categories()],
        },
    )
    started = time.monotonic()
    try:
        statuses = dict(ArenaModel.objects.values_list("pk", "status"))
        rows, unrated, overall_votes, overall_total = [], {}, {}, 0
        base = counted_votes(last_vote_id=last_vote_id)
        for category in categories():
            counts = pair_counts(base.filter(category.votes))
            if counts.empty or counts["n"].sum() == 0:
                continue
            table, left_out = _fit(counts, bootstrap_rounds=bootstrap_rounds, seed=seed, anchor=anchor)
            if left_out:
                unrated[category.name] = [int(pk) for pk in left_out]
            if category.name == "overall":
                overall_total = table.total_votes
            intervals = table.ratings[["ci_lower", "ci_upper"]]
            if bootstrap_rounds == 0:  # no bootstrap asked for: the sandwich interval stands in
                sandwich = table.ratings[["sandwich_lower", "sandwich_upper"]]
                intervals = sandwich.set_axis(["ci_lower", "ci_upper"], axis=1)
            for model_key, row in table.ratings.iterrows():
                model_id = int(model_key)
                rows.append(
                    ModelRating(
                        run=run,
                        category=category.name,
                        arena_model_id=model_id,
                        model_status=statuses[model_id],
                        rating=row.rating,
                        ci_lower=intervals.at[model_key, "ci_lower"],
                        ci_upper=intervals.at[model_key, "ci_upper"],
                        sandwich_lower=row.sandwich_lower,
                        sandwich_upper=row.sandwich_upper,
                        rank=int(row["rank"]),
                        votes=int(row.votes),
                    )
                )
                if category.name == "overall":
                    overall_votes[model_id] = int(row.votes)
        ModelRating.objects.bulk_create(rows, batch_size=2000)
        with transaction.atomic():
            finished = clock.now()
            run.state = RatingRun.State.PUBLISHED
            run.finished_at = run.published_at = finished
            run.duration_seconds = time.monotonic() - started
            run.vote_count = overall_total
            run.parameters = {**run.parameters, "unrated": unrated}
            run.save()
            _store_vote_counts(overall_votes)
    except Exception as exc:
        RatingRun.objects.filter(pk=run.pk).update(
            state=RatingRun.State.FAILED,
            error=f"{type(exc).__name__}: {exc}"[:2000],
            finished_at=clock.now(),
            duration_seconds=time.monotonic() - started,
        )
        raise
    logger.info("ratings: run %s published, %d votes, %.2f s", run.pk, run.vote_count, run.duration_seconds)
    return run


def _store_vote_counts(votes_by_model: dict[int, int]) -> None:
    """Keep ArenaModel.votes_counted current: the listing rule reads it."""
    models = list(ArenaModel.objects.only("pk", "votes_counted"))
    for model in models:
        model.votes_counted = votes_by_model.get(model.pk, 0)
    ArenaModel.objects.bulk_update(models, ["votes_counted"], batch_size=500)

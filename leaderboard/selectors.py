"""Reading the stored runs. Nothing here computes ratings: pages and the API read a run."""

from __future__ import annotations

from django.db.models import F, Sum

from providers.models import ArenaModel

from . import fairness
from .models import ModelRating, PairCounts, RatingRun

PUBLIC_STATES = {
    "listed": (ArenaModel.Status.LISTED,),
    "with_retired": (ArenaModel.Status.LISTED, ArenaModel.Status.RETIRED),
}


# The columns of the leaderboard as CSV (the API's format=csv and export_leaderboard), in order.
CSV_COLUMNS = [
    "rank",
    "model",
    "rating",
    "ci_lower",
    "ci_upper",
    "votes",
    "online_elo",
    "state",
    "provider",
    "licence",
    "knowledge_cutoff",
    "provisional",
]


def board(run: RatingRun, category: str = "overall", *, include_retired: bool = False, all_models: bool = False):
    """Rows of one category of a run, best first, with ranks among the rows shown.

    Ranks are recomputed within what is shown, so a hidden model (in initial rating) leaves
    no gap that would give it away.
    """
    ratings = ModelRating.objects.filter(run=run, category=category).select_related(
        "arena_model__provider", "arena_model__kept_rating"
    )
    if not all_models:
        ratings = ratings.filter(arena_model__status__in=PUBLIC_STATES["with_retired" if include_retired else "listed"])
    rows = [_row(rating) for rating in ratings.order_by("-rating")]
    for row in rows:
        row["rank"] = 1 + sum(other["ci_lower"] > row["ci_upper"] for other in rows)
    return rows


def category_votes(run: RatingRun, category: str) -> int:
    """The counted votes of one category of a run (each vote counts once for each of its two models)."""
    if category == "overall":
        return run.vote_count
    total = ModelRating.objects.filter(run=run, category=category).aggregate(total=Sum("votes"))["total"]
    return (total or 0) // 2


def split_rated(rows: list[dict], *, min_votes: int) -> tuple[list[dict], list[dict]]:
    """The rows shown as rated (at least `min_votes` votes in the category), ranked among
    themselves, and the others with `votes_needed`, most votes first."""
    rated = [row for row in rows if row["votes"] >= min_votes]
    waiting = sorted((row for row in rows if row["votes"] < min_votes), key=lambda row: (-row["votes"], row["model"]))
    for row in rated:
        row["rank"] = 1 + sum(other["ci_lower"] > row["ci_upper"] for other in rated)
    for row in waiting:
        row["votes_needed"] = min_votes - row["votes"]
    return rated, waiting


def _row(rating: ModelRating) -> dict:
    model = rating.arena_model
    return {
        "model": model.name if model.is_public else model.codename,
        "model_id": model.pk,
        "rating": round(rating.rating, 2),
        "ci_lower": round(rating.ci_lower, 2),
        "ci_upper": round(rating.ci_upper, 2),
        "sandwich_lower": round(rating.sandwich_lower, 2),
        "sandwich_upper": round(rating.sandwich_upper, 2),
        # The arena shows the interval as +a/-b around the score.
        "ci_plus": round(rating.ci_upper - rating.rating, 1),
        "ci_minus": round(rating.rating - rating.ci_lower, 1),
        "votes": rating.votes,
        "online_elo": None if rating.online_elo is None else round(rating.online_elo, 1),
        "state": model.status,
        "provider": model.provider.name,
        "licence": model.licence,
        "knowledge_cutoff": model.knowledge_cutoff.isoformat() if model.knowledge_cutoff else None,
        # Provisional until enough votes were collected after listing (fairness.is_provisional).
        "provisional": fairness.is_provisional(model),
    }


def pair_counts(run: RatingRun, category: str) -> list[list[int]]:
    """The stored per-pair outcomes of one category of a run; empty for runs made before they were stored.

    They cover every rated model, hidden ones too: callers keep only the pairs of models they show.
    """
    return PairCounts.objects.filter(run=run, category=category).values_list("counts", flat=True).first() or []


def rating_history(category: str, model_ids: list[int], *, runs: int) -> list[tuple]:
    """(published_at, model id, rating) of the given models in the latest `runs` published runs, in one query.

    Only runs in which the model was already public count: its ratings from initial rating
    were private when they were made and stay private after it is listed.
    """
    recent = RatingRun.objects.published().order_by("-published_at", "-id").values("pk")[:runs]
    return list(
        ModelRating.objects.filter(
            run__in=recent,
            category=category,
            arena_model_id__in=model_ids,
            model_status__in=PUBLIC_STATES["with_retired"],
        )
        .order_by("run__published_at", "run_id")
        .values_list("run__published_at", "arena_model_id", "rating")
    )


def model_history(model_id: int, *, runs: int) -> list[dict]:
    """One model's overall rating in each of the latest `runs` published runs, oldest first.

    As in rating_history, only runs in which the model was already public count.
    """
    recent = RatingRun.objects.published().order_by("-published_at", "-id").values("pk")[:runs]
    return list(
        ModelRating.objects.filter(
            run__in=recent,
            category="overall",
            arena_model_id=model_id,
            model_status__in=PUBLIC_STATES["with_retired"],
        )
        .order_by("run__published_at", "run_id")
        .values("run_id", "rating", "ci_lower", "ci_upper", "votes", published_at=F("run__published_at"))
    )


def model_categories(run: RatingRun, model_id: int) -> list[dict]:
    """One model's ratings in every category of a run, if it was public when the run was made."""
    return list(
        ModelRating.objects.filter(
            run=run, arena_model_id=model_id, model_status__in=PUBLIC_STATES["with_retired"]
        ).values("category", "rating", "ci_lower", "ci_upper", "votes")
    )

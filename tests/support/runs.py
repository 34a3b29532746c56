"""Published rating runs written directly, for tests of what reads them (not of the engine)."""

from arenasite import clock
from leaderboard.models import ModelRating, RatingRun


def publish_ratings(ratings: dict, *, published_at=None, category: str = "overall") -> RatingRun:
    """A published run with `ratings`: {model: rating} or {model: (rating, votes)}; intervals of ±10."""
    published_at = published_at or clock.now()
    run = RatingRun.objects.create(state=RatingRun.State.PUBLISHED, cutoff=published_at, published_at=published_at)
    rows = []
    for rank, (model, value) in enumerate(sorted(ratings.items(), key=lambda item: -_rating(item[1])), start=1):
        rating, votes = value if isinstance(value, tuple) else (value, 100)
        rows.append(
            ModelRating(
                run=run,
                category=category,
                arena_model=model,
                model_status=model.status,
                rating=rating,
                ci_lower=rating - 10,
                ci_upper=rating + 10,
                sandwich_lower=rating - 10,
                sandwich_upper=rating + 10,
                rank=rank,
                votes=votes,
            )
        )
    ModelRating.objects.bulk_create(rows)
    return run


def _rating(value) -> float:
    return value[0] if isinstance(value, tuple) else value

"""A rating run: the counted votes -> their columns -> what each category fits -> the engine ->
a published run, as a few named steps (`recompute`).

The pipeline's other modules each do one job: leaderboard/categories.py says which votes
each category rates, leaderboard/votes.py reads the counted votes as columns (PostgreSQL's
fast path in leaderboard/postgres_votes.py), leaderboard/kept_columns.py keeps them in the
database for the next run, leaderboard/counting.py counts each category from them, and
the rating engine (ratings_engine/bradley_terry.py, style_control.py and elo.py) fits.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import transaction
from django.db.models import Max

from arenasite import clock
from battles.models import Vote
from providers.models import ArenaModel
from ratings_engine import bradley_terry, elo, style_control
from ratings_engine.likelihood import DisconnectedComparisons

from . import counting, kept_columns, votes
from .categories import Category, categories, duplicate_prompts
from .models import ModelRating, PairCounts, RatingRun

logger = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What a run has computed, gathered as its rows are built, for the run's own record."""

    rows: list[ModelRating] = field(default_factory=list)
    pairs: list[PairCounts] = field(default_factory=list)
    unrated: dict[str, list[int]] = field(default_factory=dict)
    style: dict[str, dict] = field(default_factory=dict)
    overall_votes: dict[int, int] = field(default_factory=dict)
    overall_total: int = 0


def recompute(
    *,
    bootstrap_rounds: int | None = None,
    seed: int | None = None,
    dedup: bool | None = None,
    rebuild_elo: bool = False,
    full_read: bool = False,
) -> RatingRun:
    """Compute every category into a new run and publish it once complete.

    The previous published run stays in place until the last row of this one is written;
    a failure marks this run failed and leaves the leaderboard untouched. The votes are read
    starting from the columns the previous run kept (leaderboard/kept_columns.py), unless
    `full_read`.
    """
    now = clock.now()
    mark_interrupted_runs(now)
    bootstrap_rounds = settings.ARENA_BOOTSTRAP_ROUNDS if bootstrap_rounds is None else bootstrap_rounds
    seed = settings.ARENA_BOOTSTRAP_SEED if seed is None else seed
    previous = RatingRun.objects.latest_published()
    chosen = categories(dedup=dedup)
    run = start_run(now, chosen, bootstrap_rounds=bootstrap_rounds, seed=seed)
    started = time.monotonic()
    try:
        elo_state = _online_elo(previous, last_vote_id=run.last_vote_id, rebuild=rebuild_elo)
        columns, kept = read_votes(previous, last_vote_id=run.last_vote_id, full_read=full_read)
        counted = votes.counted_votes(last_vote_id=run.last_vote_id)
        prepared = list(counting.category_data(chosen, columns, counted, duplicates=duplicate_prompts(counted)))
        rate = partial(_rate, bootstrap_rounds=bootstrap_rounds, seed=seed, anchor=_anchor())
        outcome = rated_rows(run, prepared, fit_categories(prepared, rate), elo_state)
        ModelRating.objects.bulk_create(outcome.rows, batch_size=2000)
        PairCounts.objects.bulk_create(outcome.pairs)
        publish(run, outcome, elo_state, kept.finish() if kept is not None else None, started)
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


def start_run(now, chosen: list[Category], *, bootstrap_rounds: int, seed: int) -> RatingRun:
    """The run's row, `running`, with the votes it will count (up to the last one now) and
    the parameters it is made with."""
    return RatingRun.objects.create(
        cutoff=now,
        last_vote_id=Vote.objects.aggregate(last=Max("id"))["last"] or 0,
        parameters={
            "bootstrap_rounds": bootstrap_rounds,
            "seed": seed,
            "anchor": settings.ARENA_RATING_ANCHOR_MODEL or None,
            "anchor_rating": settings.ARENA_RATING_ANCHOR_RATING,
            "scale": 400,
            "base": 10,
            "init": 1000,
            "ties": "half a win each way",
            "categories": [c.name for c in chosen],
            "per_voter_daily_cap": settings.ARENA_JUDGE_DAILY_CAP,
            "dedup_every_category": settings.ARENA_DEDUP_EVERY_CATEGORY,
            "dedup_percentile": settings.ARENA_DEDUP_PERCENTILE,
            "online_elo_k": settings.ARENA_ONLINE_ELO_K,
        },
    )


def read_votes(
    previous: RatingRun | None, *, last_vote_id: int, full_read: bool
) -> tuple[votes.VoteColumns, kept_columns.KeptColumns | None]:
    """The counted votes' columns: on PostgreSQL from the columns the previous run kept and
    the votes written since, elsewhere by reading every vote."""
    languages = tuple(settings.ARENA_LANGUAGE_CATEGORIES)
    if not kept_columns.enabled():
        return votes.VoteColumns(votes.read_columns(votes.Selection(last_vote_id, languages)), languages), None
    kept = kept_columns.KeptColumns(previous.parameters.get("kept_columns") if previous else None, full_read=full_read)
    columns = kept.read(last_vote_id=last_vote_id, languages=languages)
    return votes.VoteColumns(columns, languages), kept


def _online_elo(previous: RatingRun | None, *, last_vote_id: int, rebuild: bool) -> dict:
    """Online Elo of the overall category, continued from the previous run's state.

    Elo is sequential, so instead of replaying every vote each run, a run starts from the
    ratings the previous one ended with and plays only the votes after it. A vote excluded
    after it was played stays in; `recompute_ratings --rebuild-elo` replays from the start.
    """
    k = settings.ARENA_ONLINE_ELO_K
    state = previous.online_elo_state if previous is not None and not rebuild else {}
    if state.get("k") != k:
        state = {}
    new = votes.read_in_vote_order(after=state.get("last_vote_id", 0), last_vote_id=last_vote_id)
    played = elo.online_elo(new, k=k, initial=state.get("ratings"))
    return {"k": k, "last_vote_id": last_vote_id, "ratings": played.to_dict()}


def fit_categories(prepared: list[tuple[Category, object, pd.DataFrame]], rate) -> dict[str, tuple]:
    """(table, models left out) of each category by name.

    A category whose votes are exactly another's (the per-voter cap when no voter went over
    it, say) takes that one's table: the fit is deterministic for the same counts and seed,
    so fitting again could only repeat it. The bootstraps run one after another, each on
    every core (its batches share the resampler's tables in cache); the style-controlled fit
    runs beside them on a thread of its own, filling the gaps they leave. numpy's work
    releases the GIL."""
    twins: dict[str, str] = {}
    distinct: list[tuple[Category, object, pd.DataFrame]] = []
    for category, data, counts in prepared:
        if not category.style_control:
            twin = next((c.name for c, _, k in distinct if not c.style_control and k.equals(counts)), None)
            if twin is not None:
                twins[category.name] = twin
                continue
        distinct.append((category, data, counts))
    results: dict[str, tuple] = {}
    with bradley_terry.single_threaded_blas(), ThreadPoolExecutor(max_workers=1) as beside:
        style_fits = {c.name: beside.submit(rate, c, data) for c, data, _ in distinct if c.style_control}
        for category, data, _ in distinct:
            if not category.style_control:
                results[category.name] = rate(category, data)
        results.update({name: future.result() for name, future in style_fits.items()})
    results.update({name: results[twin] for name, twin in twins.items()})
    return results


def _rate(category: Category, data, *, bootstrap_rounds: int, seed: int, anchor, threads: int | None = None):
    """(table, models left out) of one category from its pair counts, or per-vote style rows.

    Ratings are only comparable inside one connected group of comparisons: when the votes
    fall apart, the largest group is rated and the rest are named."""

    def fit(subset, anchor):
        if category.style_control:
            return style_control.compute_style_controlled(subset, anchor=anchor)
        return bradley_terry.compute_ratings(
            subset, bootstrap_rounds=bootstrap_rounds, seed=seed, anchor=anchor, threads=threads
        )

    try:
        return fit(data, anchor), []
    except DisconnectedComparisons as exc:
        keep = set(exc.components[0])
        left_out = sorted(name for component in exc.components[1:] for name in component)
        if isinstance(data, style_control.StyleVotes):
            kept = np.array([name in keep for name in data.models])
            subset = data.subset(kept[data.a] & kept[data.b])
        else:
            subset = data[data["model_a"].isin(keep) & data["model_b"].isin(keep)]
        if anchor is not None and anchor[0] not in keep:
            anchor = None
        return fit(subset, anchor), left_out


def rated_rows(run: RatingRun, prepared, results: dict[str, tuple], elo_state: dict) -> Outcome:
    """The run's ModelRating and PairCounts rows, and what the run records of them."""
    outcome = Outcome()
    statuses = dict(ArenaModel.objects.values_list("pk", "status"))
    for category, _data, counts in prepared:
        table, left_out = results[category.name]
        outcome.pairs.append(PairCounts(run=run, category=category.name, counts=counting.pair_outcomes(counts)))
        if left_out:
            outcome.unrated[category.name] = [int(pk) for pk in left_out]
        if category.style_control:
            outcome.style[category.name] = table.parameters["style_coefficients"]
        overall = category.name == "overall"
        if overall:
            outcome.overall_total = table.total_votes
        intervals = table.ratings[["ci_lower", "ci_upper"]]
        if table.parameters["rank_interval"] == "sandwich":  # no bootstrap: the sandwich interval stands in
            intervals = table.ratings[["sandwich_lower", "sandwich_upper"]].set_axis(["ci_lower", "ci_upper"], axis=1)
        for model_key, row in table.ratings.iterrows():
            model_id = int(model_key)
            outcome.rows.append(
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
                    online_elo=elo_state["ratings"].get(model_key) if overall else None,
                )
            )
            if overall:
                outcome.overall_votes[model_id] = int(row.votes)
    return outcome


def publish(run: RatingRun, outcome: Outcome, elo_state: dict, kept_pointer: dict | None, started: float) -> None:
    """The run becomes the leaderboard, in one transaction with the models' counted votes."""
    with transaction.atomic():
        finished = clock.now()
        run.state = RatingRun.State.PUBLISHED
        run.finished_at = run.published_at = finished
        run.duration_seconds = time.monotonic() - started
        run.vote_count = outcome.overall_total
        run.online_elo_state = elo_state
        run.parameters = {**run.parameters, "unrated": outcome.unrated, "style_coefficients": outcome.style}
        if kept_columns.enabled():
            run.parameters["kept_columns"] = kept_pointer
        run.save()
        _store_vote_counts(outcome.overall_votes)
    if kept_columns.enabled():
        kept_columns.prune_parts(clock.now())


def _store_vote_counts(votes_by_model: dict[int, int]) -> None:
    """Keep ArenaModel.votes_counted current: the listing rule reads it."""
    models = list(ArenaModel.objects.only("pk", "votes_counted"))
    for model in models:
        model.votes_counted = votes_by_model.get(model.pk, 0)
    ArenaModel.objects.bulk_update(models, ["votes_counted"], batch_size=500)


def _anchor():
    name = settings.ARENA_RATING_ANCHOR_MODEL
    if not name:
        return None
    # Public names are unique among public models only: a hidden model may share the name.
    model_id = ArenaModel.objects.filter(name=name, listed_at__isnull=False).values_list("pk", flat=True).first()
    return (str(model_id), settings.ARENA_RATING_ANCHOR_RATING) if model_id else None


def mark_interrupted_runs(now) -> int:
    """Runs still `running` long after any task could be alive were killed; say so."""
    stale = now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT * 2)
    return RatingRun.objects.filter(state=RatingRun.State.RUNNING, started_at__lt=stale).update(
        state=RatingRun.State.FAILED, error="Interrupted: the run never finished.", finished_at=now
    )

"""Rating recomputation: counted votes -> pair counts (in SQL) -> engine -> a published run."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, timedelta
from functools import partial

import numpy as np
import pandas as pd
import psycopg
from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import Count, F, Max, Q, QuerySet, Window
from django.db.models.functions import RowNumber, TruncDate

from arenasite import clock
from battles.models import Vote
from providers.models import ArenaModel

from . import ratings, style_control
from .models import ModelRating, PairCounts, RatingRun

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Category:
    """One leaderboard: the same fit on a part of the counted votes, chosen in one of three ways.

    `condition`: a filter on the vote and its battle; all of these are counted in one pass
    over the votes. `excess`: the votes to take out of the overall counts (those over a cap),
    so that only the few votes over it are read, not all of them again. `style_control`:
    fitted per vote with the answers' style features, over the battles that have them.
    """

    name: str
    label: str
    condition: Q | None = None
    excess: Callable[[QuerySet], QuerySet] | None = None
    style_control: bool = False


def categories(*, dedup: bool | None = None) -> list[Category]:
    """The published categories."""
    found = [
        Category("overall", "Overall", Q()),
        Category("multi_turn", "Multi-turn", Q(battle__turn__gt=1)),
        Category("long_prompt", "Long prompts", Q(battle__prompt_chars__gte=settings.ARENA_LONG_PROMPT_CHARS)),
    ]
    for language in settings.ARENA_LANGUAGE_CATEGORIES:
        found.append(Category(f"lang_{language.lower()}", language, Q(battle__language=language)))
    cap = settings.ARENA_JUDGE_DAILY_CAP
    if cap > 0:
        found.append(
            Category("per_voter_cap", f"At most {cap} votes per voter a day", excess=partial(over_daily_cap, cap=cap))
        )
    if settings.ARENA_STYLE_CONTROL:
        found.append(Category("style_control", "Style control", Q(battle__style__isnull=False), style_control=True))
    if settings.ARENA_DEDUP_PROMPTS if dedup is None else dedup:
        found.append(
            Category(
                "deduplicated",
                "Duplicate prompts down-sampled",
                excess=partial(over_prompt_limit, percentile=settings.ARENA_DEDUP_PERCENTILE),
            )
        )
    return found


def category_labels() -> dict[str, str]:
    return {category.name: category.label for category in categories(dedup=True)}


def over_daily_cap(votes: QuerySet, *, cap: int) -> QuerySet:
    """The votes beyond the first `cap` of each voter and UTC day: a few heavy voters cannot
    outweigh everyone else. Only the votes of voters with a day over the cap are ranked.

    The heavy voters are read first and passed as a list: as a subquery inside the ranking,
    PostgreSQL may plan it as a loop over every vote when the tables have no statistics yet
    (right after a bulk import), which takes minutes instead of milliseconds."""
    day = TruncDate("created_at", tzinfo=UTC)
    heavy = list(
        votes.annotate(day=day)
        .values("judge", "day")
        .annotate(n=Count("id"))
        .filter(n__gt=cap)
        .order_by()
        .values_list("judge", flat=True)
        .distinct()
    )
    if not heavy:
        return votes.none()
    ranked = votes.filter(judge__in=heavy).annotate(
        judge_day_rank=Window(RowNumber(), partition_by=[F("judge"), day], order_by=F("id").asc())
    )
    return votes.filter(id__in=ranked.filter(judge_day_rank__gt=cap).values("id"))


def over_prompt_limit(votes: QuerySet, *, percentile: float) -> QuerySet:
    """High-frequency duplicate prompts down-sampled, as the arena does: a prompt asked more
    often than the `percentile` of prompt counts keeps only that many of its votes, and the
    rest are returned. Which are kept follows the order of the question ids, which are
    random, so no period of time is favoured. Votes without prompt text are never returned."""
    per_prompt = votes.exclude(battle__prompt_hash="").values("battle__prompt_hash").annotate(n=Count("id")).order_by()
    counts = np.fromiter(per_prompt.values_list("n", flat=True), dtype=np.int64)
    limit = max(1, int(np.percentile(counts, percentile))) if counts.size else 0
    flooded = per_prompt.filter(n__gt=limit).values("battle__prompt_hash")
    in_order = Window(RowNumber(), partition_by=[F("battle__prompt_hash")], order_by=F("battle__question_id").asc())
    ranked = votes.filter(battle__prompt_hash__in=flooded).annotate(prompt_rank=in_order)
    return votes.filter(id__in=ranked.filter(prompt_rank__gt=limit).values("id"))


def counted_votes(*, last_vote_id: int):
    """Anonymous votes that are not excluded, up to a fixed vote id so a run sees a stable set."""
    return Vote.objects.filter(anony=True, excluded_reason="", id__lte=last_vote_id)


def pair_counts(votes) -> pd.DataFrame:
    """One row per (model A, model B, outcome) with its count; the database does the pass over votes."""
    rows = votes.values_list("model_a_id", "model_b_id", "winner").annotate(n=Count("id")).order_by()
    frame = _frame(rows, ["model_a", "model_b", "winner", "n"])
    return _ids_as_names(frame)


def pair_counts_by_condition(votes, chosen: list[Category]) -> dict[str, pd.DataFrame]:
    """pair_counts of every category given by a condition, in one pass over the votes (one
    filtered count per category) rather than one pass each."""
    names = [c.name for c in chosen]
    counts = {c.name: Count("id", filter=c.condition) if c.condition else Count("id") for c in chosen}
    rows = votes.values_list("model_a_id", "model_b_id", "winner").annotate(**counts).order_by()
    frame = _ids_as_names(_frame(rows, ["model_a", "model_b", "winner", *names]))
    keys = frame[["model_a", "model_b", "winner"]]
    return {name: keys.assign(n=frame[name]).loc[frame[name] > 0].reset_index(drop=True) for name in names}


def minus(counts: pd.DataFrame, excess: pd.DataFrame) -> pd.DataFrame:
    """Pair counts with the counts of some of their votes taken out."""
    if excess.empty:
        return counts
    keys = ["model_a", "model_b", "winner"]
    merged = counts.merge(excess, on=keys, how="left", suffixes=("", "_excess"))
    merged["n"] = merged["n"] - merged["n_excess"].fillna(0).astype(np.int64)
    return merged.loc[merged["n"] > 0, [*keys, "n"]].reset_index(drop=True)


def style_rows(votes) -> pd.DataFrame:
    """One row per vote with its answers' style features, for the style-controlled fit."""
    columns = ["model_a", "model_b", "winner", *style_control.STYLE_COLUMNS]
    rows = votes.values_list(
        "model_a_id", "model_b_id", "winner", *(f"battle__style__{c}" for c in style_control.STYLE_COLUMNS)
    ).order_by()
    return _ids_as_names(_frame(rows, columns))


def _frame(rows: QuerySet, columns: list[str]) -> pd.DataFrame:
    """A values_list query into a frame, bypassing Django's per-row objects: over millions of
    rows (style control reads one per vote) building them would cost more than the query.
    PostgreSQL streams the result as CSV through COPY, which pandas parses in C; elsewhere
    the rows come from the cursor."""
    try:
        sql, params = rows.query.sql_with_params()
    except EmptyResultSet:  # a query Django knows to be empty, e.g. .none()
        return pd.DataFrame(columns=columns)
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return pd.DataFrame(cursor.fetchall(), columns=columns)
    connection.ensure_connection()
    raw = connection.connection
    # COPY takes no bound parameters, so they are bound client-side, with psycopg's quoting.
    query = psycopg.ClientCursor(raw).mogrify(sql, params)
    buffer = io.BytesIO()
    with raw.cursor() as cursor, cursor.copy(f"COPY ({query}) TO STDOUT WITH (FORMAT csv)") as copy:
        for block in copy:
            buffer.write(block)
    if not buffer.tell():
        return pd.DataFrame(columns=columns)
    buffer.seek(0)
    return pd.read_csv(buffer, names=columns, header=None, keep_default_na=False)


def _ids_as_names(frame: pd.DataFrame) -> pd.DataFrame:
    # The engine works on names; ids as strings keep it independent of renames.
    frame["model_a"] = frame["model_a"].astype(str)
    frame["model_b"] = frame["model_b"].astype(str)
    return frame


def pair_outcomes(counts: pd.DataFrame) -> list[list[int]]:
    """[low id, high id, low's wins, high's wins, ties] per compared pair, for the plots."""
    a = counts["model_a"].astype(int).to_numpy()
    b = counts["model_b"].astype(int).to_numpy()
    n = counts["n"].to_numpy(dtype=np.int64)
    winner = counts["winner"].to_numpy()
    low, high = np.minimum(a, b), np.maximum(a, b)
    low_won = ((winner == "model_a") & (a == low)) | ((winner == "model_b") & (b == low))
    high_won = ((winner == "model_a") & (a == high)) | ((winner == "model_b") & (b == high))
    frame = pd.DataFrame(
        {
            "low": low,
            "high": high,
            "low_wins": n * low_won,
            "high_wins": n * high_won,
            "ties": n * ~(low_won | high_won),
        }
    )
    summed = frame.groupby(["low", "high"], sort=True).sum().reset_index()
    return summed.to_numpy(dtype=np.int64).tolist()


def _online_elo(previous: RatingRun | None, votes, *, last_vote_id: int, rebuild: bool) -> dict:
    """Online Elo of the overall category, continued from the previous run's state.

    Elo is sequential, so instead of replaying every vote each run, a run starts from the
    ratings the previous one ended with and plays only the votes after it. A vote excluded
    after it was played stays in; `recompute_ratings --rebuild-elo` replays from the start.
    """
    k = settings.ARENA_ONLINE_ELO_K
    state = previous.online_elo_state if previous is not None and not rebuild else {}
    if state.get("k") != k:
        state = {}
    since = state.get("last_vote_id", 0)
    new = votes.filter(id__gt=since).order_by("created_at", "id").values_list("model_a_id", "model_b_id", "winner")
    frame = _ids_as_names(_frame(new, ["model_a", "model_b", "winner"]))
    elo = ratings.online_elo(frame, k=k, initial=state.get("ratings"))
    return {"k": k, "last_vote_id": last_vote_id, "ratings": elo.to_dict()}


def _rate(category: Category, data: pd.DataFrame, *, bootstrap_rounds: int, seed: int, anchor):
    """(table, models left out) of one category from its pair counts, or per-vote style rows.

    Ratings are only comparable inside one connected group of comparisons: when the votes
    fall apart, the largest group is rated and the rest are named."""

    def fit(subset, anchor):
        if category.style_control:
            return style_control.compute_style_controlled(subset, anchor=anchor)
        return ratings.compute_ratings(subset, bootstrap_rounds=bootstrap_rounds, seed=seed, anchor=anchor)

    try:
        return fit(data, anchor), []
    except ratings.DisconnectedComparisons as exc:
        keep = set(exc.components[0])
        left_out = sorted(name for component in exc.components[1:] for name in component)
        subset = data[data["model_a"].isin(keep) & data["model_b"].isin(keep)]
        if anchor is not None and anchor[0] not in keep:
            anchor = None
        return fit(subset, anchor), left_out


def category_data(chosen: list[Category], base: QuerySet):
    """Yield (category, data to fit, its pair counts) for each category with votes, reading
    each category's votes from the database as late as possible."""
    plain = [c for c in chosen if c.condition is not None and not c.style_control]
    by_condition = pair_counts_by_condition(base, plain)
    for category in chosen:
        if category.style_control:
            data = style_rows(base.filter(category.condition))
            counts = ratings.aggregate(data)
        elif category.excess is not None:
            data = counts = minus(by_condition["overall"], pair_counts(category.excess(base)))
        else:
            data = counts = by_condition[category.name]
        if not counts.empty and counts["n"].sum() > 0:
            yield category, data, counts


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


def recompute(
    *,
    bootstrap_rounds: int | None = None,
    seed: int | None = None,
    dedup: bool | None = None,
    rebuild_elo: bool = False,
) -> RatingRun:
    """Compute every category into a new run and publish it once complete.

    The previous published run stays in place until the last row of this one is written;
    a failure marks this run failed and leaves the leaderboard untouched.
    """
    now = clock.now()
    mark_interrupted_runs(now)
    bootstrap_rounds = settings.ARENA_BOOTSTRAP_ROUNDS if bootstrap_rounds is None else bootstrap_rounds
    seed = settings.ARENA_BOOTSTRAP_SEED if seed is None else seed
    anchor = _anchor()
    previous = RatingRun.objects.latest_published()
    last_vote_id = Vote.objects.aggregate(last=Max("id"))["last"] or 0
    chosen = categories(dedup=dedup)
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
            "categories": [c.name for c in chosen],
            "per_voter_daily_cap": settings.ARENA_JUDGE_DAILY_CAP,
            "online_elo_k": settings.ARENA_ONLINE_ELO_K,
        },
    )
    started = time.monotonic()
    try:
        statuses = dict(ArenaModel.objects.values_list("pk", "status"))
        rows, pairs, unrated, style, overall_votes, overall_total = [], [], {}, {}, {}, 0
        base = counted_votes(last_vote_id=last_vote_id)
        elo_state = _online_elo(previous, base, last_vote_id=last_vote_id, rebuild=rebuild_elo)
        for category, data, counts in category_data(chosen, base):
            table, left_out = _rate(category, data, bootstrap_rounds=bootstrap_rounds, seed=seed, anchor=anchor)
            pairs.append(PairCounts(run=run, category=category.name, counts=pair_outcomes(counts)))
            if left_out:
                unrated[category.name] = [int(pk) for pk in left_out]
            if category.style_control:
                style[category.name] = table.parameters["style_coefficients"]
            if category.name == "overall":
                overall_total = table.total_votes
            intervals = table.ratings[["ci_lower", "ci_upper"]]
            if table.parameters["rank_interval"] == "sandwich":  # no bootstrap: the sandwich interval stands in
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
                        online_elo=elo_state["ratings"].get(model_key) if category.name == "overall" else None,
                    )
                )
                if category.name == "overall":
                    overall_votes[model_id] = int(row.votes)
        ModelRating.objects.bulk_create(rows, batch_size=2000)
        PairCounts.objects.bulk_create(pairs)
        with transaction.atomic():
            finished = clock.now()
            run.state = RatingRun.State.PUBLISHED
            run.finished_at = run.published_at = finished
            run.duration_seconds = time.monotonic() - started
            run.vote_count = overall_total
            run.online_elo_state = elo_state
            run.parameters = {**run.parameters, "unrated": unrated, "style_coefficients": style}
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

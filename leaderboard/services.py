"""Rating recomputation: counted votes -> columns (one pass in SQL) -> counts per category ->
engine -> a published run."""

from __future__ import annotations

import io
import itertools
import logging
import operator
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

import numpy as np
import pandas as pd
import psycopg
from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import (
    BigIntegerField,
    Case,
    Count,
    ExpressionWrapper,
    F,
    Func,
    IntegerField,
    Max,
    Min,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.functions import Cast, Coalesce
from psycopg.adapt import Loader

from arenasite import clock
from battles.models import Vote
from providers.models import ArenaModel

from . import kept_columns, ratings, style_control
from .models import ModelRating, PairCounts, RatingRun

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Category:
    """One leaderboard: the same fit on a part of the counted votes, chosen in one of three ways.

    `condition`: a filter on the vote and its battle; every condition is evaluated in the one
    pass over the votes (vote_columns). `daily_cap`: the overall votes less those beyond the
    first `daily_cap` of each voter and UTC day, found from that pass too. `excess`: a
    function of the counted votes giving the ids of the (few) votes to take out of the
    overall counts. `style_control`: fitted per vote with the answers' style features, over the battles
    that have them (its condition).
    """

    name: str
    label: str
    condition: Q | None = None
    excess: Callable[[QuerySet], np.ndarray] | None = None
    style_control: bool = False
    daily_cap: int = 0


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
        found.append(Category("per_voter_cap", f"At most {cap} votes per voter a day", daily_cap=cap))
    if settings.ARENA_STYLE_CONTROL:
        found.append(Category("style_control", "Style control", Q(battle__style__isnull=False), style_control=True))
    # When every category is down-sampled already, the separate category would equal the
    # overall one: it is added only on an explicit request.
    if settings.ARENA_DEDUP_PROMPTS and not settings.ARENA_DEDUP_EVERY_CATEGORY if dedup is None else dedup:
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


def over_prompt_limit(votes: QuerySet, *, percentile: float) -> np.ndarray:
    """High-frequency duplicate prompts down-sampled, as the arena does: a prompt asked more
    often than the `percentile` of prompt counts keeps only that many of its votes, and the
    ids of the rest are returned. Which are kept follows the order of the question ids, which
    are random, so no period of time is favoured. Votes without prompt text are never returned.

    Three plain queries rather than one with a window over a subquery: the planner can get
    that one badly wrong on tables it has no statistics for yet (minutes instead of
    milliseconds), while these cannot go wrong. The flooded prompts are few by definition."""
    per_prompt = votes.exclude(battle__prompt_hash="").values("battle__prompt_hash").annotate(n=Count("id")).order_by()
    counts = np.fromiter(per_prompt.values_list("n", flat=True), dtype=np.int64)
    limit = max(1, int(np.percentile(counts, percentile))) if counts.size else 0
    if not (counts > limit).any():
        return np.empty(0, dtype=np.int64)
    flooded = list(per_prompt.filter(n__gt=limit).values_list("battle__prompt_hash", flat=True))
    rows = (
        votes.filter(battle__prompt_hash__in=flooded)
        .order_by("battle__prompt_hash", "battle__question_id")
        .values_list("id", "battle__prompt_hash")
    )
    excess = [
        vote_id
        for _, group in itertools.groupby(rows.iterator(), key=operator.itemgetter(1))
        for vote_id, _ in itertools.islice(group, limit, None)
    ]
    return np.array(excess, dtype=np.int64)


def counted_votes(*, last_vote_id: int):
    """Anonymous votes that are not excluded, up to a fixed vote id so a run sees a stable set."""
    return Vote.objects.filter(anony=True, excluded_reason="", id__lte=last_vote_id)


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


def _rate(category: Category, data, *, bootstrap_rounds: int, seed: int, anchor, threads: int | None = None):
    """(table, models left out) of one category from its pair counts, or per-vote style rows.

    Ratings are only comparable inside one connected group of comparisons: when the votes
    fall apart, the largest group is rated and the rest are named."""

    def fit(subset, anchor):
        if category.style_control:
            return style_control.compute_style_controlled(subset, anchor=anchor)
        return ratings.compute_ratings(
            subset, bootstrap_rounds=bootstrap_rounds, seed=seed, anchor=anchor, threads=threads
        )

    try:
        return fit(data, anchor), []
    except ratings.DisconnectedComparisons as exc:
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


def category_data(
    chosen: list[Category],
    base: QuerySet,
    *,
    duplicates: QuerySet | None = None,
    kept: kept_columns.KeptColumns | None = None,
    last_vote_id: int = 0,
):
    """Yield (category, data to fit, its pair counts) for each category with votes.

    The counted votes are read once (vote_columns), with one flag per condition, and every
    category is counted from those columns in memory: a pass over millions of votes costs
    the same whether it returns counts or columns, and only one is made.

    `duplicates`: votes to leave out of every category (the high-frequency prompts' votes
    over the limit, see over_prompt_limit). They are few, so they are read by id and masked
    out. The per-voter cap ranks a voter's votes of the day before that, so a vote is never
    taken out twice.

    `kept`: reuse the previous run's columns (vote_columns)."""
    columns = vote_columns(base, chosen, kept=kept, last_vote_id=last_vote_id)
    kept = np.ones(len(columns["id"]), dtype=bool)
    if duplicates is not None:
        kept &= ~_ids_in(columns["id"], duplicates)
    for category in chosen:
        mask = kept.copy()
        if category.condition is not None and category.condition:
            mask &= columns[_flag(chosen, category)]
        if category.daily_cap:
            mask &= ~over_daily_cap_mask(columns, base, cap=category.daily_cap)
        if category.excess is not None:
            mask &= ~_ids_in(columns["id"], category.excess(base))
        counts = _pair_counts_of(columns, mask)
        data = _style_votes(columns, mask) if category.style_control else counts
        if not counts.empty and counts["n"].sum() > 0:
            yield category, data, counts


# Reading the counted votes in one pass.

# With this many votes or more (by id), PostgreSQL reads them on two connections at once, half
# of the battle ids each (the join and the aggregation then use both cores).
PARALLEL_READ_VOTES = 500_000
# The per-voter cap's first, coarse count folds (voter, day) keys into this many buckets.
CAP_BUCKET_BITS = 22
CAP_BUCKETS = 1 << CAP_BUCKET_BITS
WINNER_CODES = {"model_a": 0, "model_b": 1, "tie": 2, "tie (bothbad)": 3}
WINNER_NAMES = np.array(list(WINNER_CODES), dtype=object)


def _flag(chosen: list[Category], category: Category) -> str:
    return f"flag_{chosen.index(category)}"


def vote_columns(
    votes: QuerySet, chosen: list[Category], *, kept: kept_columns.KeptColumns | None = None, last_vote_id: int = 0
) -> dict[str, np.ndarray]:
    """One array per column over the counted votes, in one pass: id, model_a, model_b,
    winner (WINNER_CODES), a boolean flag per category condition, and, when a category needs
    them, the voter (judge_key: equal for the same voter) and the UTC day, and the answers'
    style counts (0 where a battle has none; the style category's flag says which have).

    On PostgreSQL each column comes back as one array (array_agg, sent in binary and read
    straight into numpy): a row per vote through the driver, even by COPY, would cost more
    in Python than the query itself. With `kept` (PostgreSQL), the columns the previous run
    read are reused and only the votes written since are read (leaderboard/kept_columns.py);
    `votes` are then the counted votes up to `last_vote_id`."""
    conditions = [c for c in chosen if c.condition is not None and c.condition]
    need_voter = any(c.daily_cap for c in chosen)
    need_style = any(c.style_control for c in chosen)
    # Flags packed as bits beside the winner code: one array for all of them.
    code = Case(*(When(winner=name, then=Value(value)) for name, value in WINNER_CODES.items()), default=Value(3))
    for bit, category in enumerate(conditions):
        code = code + Case(When(category.condition, then=Value(4 << bit)), default=Value(0))
    fields: dict[str, object] = {"rc_code": ExpressionWrapper(code, output_field=BigIntegerField())}
    postgres = connection.vendor == "postgresql"
    if need_style:
        for feature in style_control.FEATURES:
            a, b = (Coalesce(F(f"battle__style__{feature}_{side}"), Value(0)) for side in "ab")
            # Both counts in one 64-bit number on PostgreSQL (they are 32-bit integers).
            packed = Cast(a, BigIntegerField()).bitleftshift(32).bitor(b)
            fields[f"rc_{feature}"] = ExpressionWrapper(packed, output_field=BigIntegerField()) if postgres else a
            if not postgres:
                fields[f"rc_{feature}_b"] = b
    if need_voter and postgres:
        # A 32-bit hash of the voter: equal voters share it, and the rare unequal ones that
        # collide are told apart before anything is taken out (over_daily_cap_mask).
        fields["rc_judge"] = Func(F("judge"), function="hashtext", output_field=IntegerField())
    if postgres:
        # Both models in one 64-bit number (their ids are far below 2^31; beyond, PostgreSQL
        # would stop with "bigint out of range" rather than return wrong pairs).
        fields["rc_pair"] = ExpressionWrapper(
            Cast(F("model_a_id"), BigIntegerField()).bitleftshift(32).bitor(F("model_b_id")),
            output_field=BigIntegerField(),
        )
    annotated = votes.annotate(**fields)
    names = ["id", *fields] if postgres else ["id", "model_a_id", "model_b_id", *fields]
    if need_voter:
        names.append("created_at")
        if not postgres:
            names.append("judge")
    if kept is not None:
        names.append("battle_id")
    query = annotated.values_list(*names).order_by()
    if postgres and kept is not None:
        conditions_used = [repr(c.condition) for c in conditions]
        fingerprint = kept_columns.definition([names, conditions_used, WINNER_CODES, style_control.FEATURES])
        raw = kept.read(
            query,
            names,
            fingerprint,
            read_all=partial(_columns_postgres, names=names),
            read_some=partial(_columns_postgres, names=names, parallel=False),
            last_vote_id=last_vote_id,
        )
    elif postgres:
        raw = _columns_postgres(query, names)
    else:
        raw = _columns_rows(query, names)
    if postgres:
        raw["model_a_id"], raw["model_b_id"] = raw["rc_pair"] >> 32, raw["rc_pair"] & 0xFFFFFFFF
    columns: dict[str, np.ndarray] = {
        "id": raw["id"].astype(np.int64, copy=False),
        "model_a": raw["model_a_id"].astype(np.int64, copy=False),
        "model_b": raw["model_b_id"].astype(np.int64, copy=False),
        "winner": (raw["rc_code"] & 3).astype(np.int8),
    }
    for bit, category in enumerate(conditions):
        columns[_flag(chosen, category)] = np.bitwise_and(raw["rc_code"], 4 << bit) != 0
    if need_style:
        for feature in style_control.FEATURES:
            if postgres:
                columns[f"{feature}_a"] = raw[f"rc_{feature}"] >> 32
                columns[f"{feature}_b"] = raw[f"rc_{feature}"] & 0xFFFFFFFF
            else:
                columns[f"{feature}_a"] = raw[f"rc_{feature}"].astype(np.int64)
                columns[f"{feature}_b"] = raw[f"rc_{feature}_b"].astype(np.int64)
    if need_voter:
        if postgres:
            columns["judge_key"] = raw["rc_judge"].astype(np.int64)
            # timestamptz in binary: microseconds since 2000-01-01 UTC.
            columns["day"] = raw["created_at"] // 86_400_000_000
        else:
            columns["judge_key"] = pd.factorize(pd.Series(raw["judge"], dtype=object))[0].astype(np.int64)
            stamps = pd.to_datetime(pd.Series(raw["created_at"], dtype=object), utc=True)
            epoch = pd.Timestamp("2000-01-01", tz="UTC")
            columns["day"] = ((stamps - epoch) // pd.Timedelta(days=1)).to_numpy(dtype=np.int64)
    return columns


def _columns_rows(query: QuerySet, names: list[str]) -> dict[str, np.ndarray]:
    try:
        sql, params = query.query.sql_with_params()
    except EmptyResultSet:
        return {name: np.array([], dtype=object if name in ("judge", "created_at") else np.int64) for name in names}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    out = {}
    for k, name in enumerate(names):
        values = [row[k] for row in rows]
        out[name] = (
            np.array(values, dtype=object) if name in ("judge", "created_at") else np.array(values, dtype=np.int64)
        )
    return out


class _ArrayBytes(Loader):
    """Loads a binary array result as a view of its bytes, for numpy to read (_parse_array)."""

    format = psycopg.pq.Format.BINARY

    def load(self, data):
        return data


# Element types of the arrays read, by PostgreSQL type oid: int2, int4, int8 and timestamptz.
_ARRAY_OIDS = {1005: ">i2", 1007: ">i4", 1016: ">i8", 1185: ">i8"}


def _parse_array(data: memoryview | bytes | None) -> np.ndarray:
    """A one-dimensional binary array without NULLs: a 20-byte header (dimensions, null flag,
    element type, length, lower bound), then per element its byte length and value."""
    if data is None:  # array_agg over no rows
        return np.array([], dtype=np.int64)
    dimensions, has_null, element = np.frombuffer(data, ">i4", 3)
    if dimensions != 1 or has_null:
        raise ValueError("expected a one-dimensional array without NULLs")
    size = {21: 2, 23: 4, 20: 8, 1184: 8}[int(element)]
    length = int(np.frombuffer(data, ">i4", 1, 12)[0])
    records = np.frombuffer(data, np.dtype([("bytes", ">i4"), ("value", f">i{size}")]), length, 20)
    if (records["bytes"] != size).any():
        raise ValueError("unexpected element size in a binary array")
    return records["value"].astype(np.int64)


def _columns_postgres(query: QuerySet, names: list[str], *, parallel: bool = True) -> dict[str, np.ndarray]:
    """The columns of `query`; with `parallel`, on two connections when the votes are many.
    (The few votes a run re-reads beside its kept columns go on one: see below.)"""
    try:
        sql, params = query.query.sql_with_params()
    except EmptyResultSet:
        return {name: np.array([], dtype=np.int64) for name in names}
    aliases = [f"c{k}" for k in range(len(names))]
    select = ", ".join(f"array_agg({alias})" for alias in aliases)

    def read(part: QuerySet, own_connection: bool) -> list[np.ndarray]:
        try:
            sql, params = part.query.sql_with_params()
            wrapped = f"SELECT {select} FROM ({sql}) AS votes ({', '.join(aliases)})"
            connection.ensure_connection()
            with psycopg.Cursor(connection.connection) as cursor:
                if own_connection:
                    # The query is one large pass: compiling it fully (JIT inlining and
                    # optimisation) pays for itself. Set on this thread's own connection only,
                    # which is closed after the read.
                    for setting in ("jit_above_cost", "jit_inline_above_cost", "jit_optimize_above_cost"):
                        cursor.execute(f"SET {setting} = 0")
                for oid in _ARRAY_OIDS:
                    cursor.adapters.register_loader(oid, _ArrayBytes)
                cursor.execute(wrapped, params, binary=True)
                # Parsed while the cursor holds the result: the loader hands out views of it.
                return [_parse_array(value) for value in cursor.fetchone()]
        finally:
            if own_connection:  # a worker thread's connection, opened for this read
                connection.close()

    # Bounds from the whole table's indexes (cheap), not from the counted votes (a pass).
    span = Vote.objects.aggregate(low=Min("battle_id"), high=Max("battle_id"), first=Min("id"), last=Max("id"))
    many = (span["last"] or 0) - (span["first"] or 0) >= PARALLEL_READ_VOTES
    if parallel and many and not connection.in_atomic_block:
        # Two halves of the battle id range (the order PostgreSQL joins votes, battles and
        # styles in), each on its own connection, a thread's own, so both cores work on the
        # join. Outside a transaction only: a second connection would not see uncommitted
        # rows. The halves are read at slightly different moments, as any two queries of a
        # run are; every vote counted is at most the run's last_vote_id either way.
        split = (span["low"] + span["high"]) // 2
        parts = [_battle_range(query, None, split), _battle_range(query, split, None)]
        with ThreadPoolExecutor(max_workers=2) as pool:
            halves = list(pool.map(read, parts, [True, True]))
        arrays = [np.concatenate(parts) for parts in zip(*halves, strict=True)]
    else:
        arrays = read(query, False)
    return dict(zip(names, arrays, strict=True))


def _battle_range(query: QuerySet, low: int | None, high: int | None) -> QuerySet:
    """The votes of battles with low < id <= high. The bounds go on the battles table too when
    the query joins it: PostgreSQL's merge join reads each side in id order from where its
    index scan starts, and a bound on the votes alone leaves the battles' scan at the first."""
    bounds = {} if low is None else {"battle_id__gt": low}
    if high is not None:
        bounds["battle_id__lte"] = high
    part = query.filter(**bounds)
    part.query.get_compiler(using=part.db).as_sql()  # sets up the joins, so their aliases are known
    alias = next(
        (
            a
            for a, join in part.query.alias_map.items()
            if join.table_name == "battles_battle" and part.query.alias_refcount[a]
        ),
        None,
    )
    if alias is None:
        return part
    column = f"{connection.ops.quote_name(alias)}.{connection.ops.quote_name('id')}"
    where = ([f"{column} > %s"] if low is not None else []) + ([f"{column} <= %s"] if high is not None else [])
    return part.extra(where=where, params=[b for b in (low, high) if b is not None])


def _ids_in(ids: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Which of `ids` are among the (few) vote ids `chosen`."""
    return np.isin(ids, chosen)


def over_daily_cap_mask(columns: dict[str, np.ndarray], votes: QuerySet, *, cap: int) -> np.ndarray:
    """The votes beyond the first `cap` of each voter and UTC day, in id order, as a mask over
    the columns: a few heavy voters cannot outweigh everyone else.

    The columns' judge_key may join two voters whose hashes collide (PostgreSQL), so groups
    over the cap by key are only candidates: their votes' voters are read by id and ranked
    exactly."""
    key = columns["judge_key"] * (1 << 40) + (columns["day"] - columns["day"].min(initial=0))
    # First a dense count of the keys folded into CAP_BUCKETS buckets: folding only merges
    # groups, so a group over the cap is in a bucket over it, and the few votes of such buckets
    # are grouped exactly next (a hash table over millions of keys would cost far more).
    # Fibonacci hashing: the top bits of key times 2^64 / golden ratio spread any keys evenly.
    spread = key.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    bucket = (spread >> np.uint64(64 - CAP_BUCKET_BITS)).astype(np.int64)
    crowded = np.flatnonzero(np.bincount(bucket, minlength=CAP_BUCKETS)[bucket] > cap)
    group = pd.factorize(key[crowded])[0]
    candidates = crowded[np.bincount(group)[group] > cap]
    over = np.zeros(len(key), dtype=bool)
    if not len(candidates):
        return over
    judges = dict(
        Vote.objects.filter(id__in=columns["id"][candidates].tolist()).values_list("id", "judge").iterator(5000)
    )
    frame = pd.DataFrame(
        {
            "row": candidates,
            "id": columns["id"][candidates],
            "judge": [judges[i] for i in columns["id"][candidates].tolist()],
            "day": columns["day"][candidates],
        }
    ).sort_values("id", kind="stable")
    rank = frame.groupby(["judge", "day"], sort=False).cumcount()
    over[frame["row"].to_numpy()[rank.to_numpy() >= cap]] = True
    return over


def _model_codes(columns: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(model ids in order, code of model_a, code of model_b), computed once per columns. Model
    ids are small integers, so a lookup table replaces a sort of millions of values."""
    if "model_ids" not in columns:
        a, b = columns["model_a"], columns["model_b"]
        present = np.zeros(int(max(a.max(initial=0), b.max(initial=0))) + 1, dtype=bool)
        present[a] = True
        present[b] = True
        code = np.cumsum(present) - 1
        columns["model_ids"] = np.flatnonzero(present)
        columns["a_code"], columns["b_code"] = code[a], code[b]
    return columns["model_ids"], columns["a_code"], columns["b_code"]


def _pair_counts_of(columns: dict[str, np.ndarray], mask: np.ndarray) -> pd.DataFrame:
    """pair_counts of the votes under the mask, counted in memory."""
    ids, a, b = _model_codes(columns)
    m = len(ids)
    if "cell" not in columns:  # (model A, model B, outcome) as one number, shared by every category
        columns["cell"] = (a * m + b) * 4 + columns["winner"]
    key = columns["cell"][mask]
    if m * m * 4 <= ratings.DENSE_COUNT_LIMIT:
        n = np.bincount(key, minlength=m * m * 4)
        key = np.flatnonzero(n)
        n = n[key]
    else:
        key, n = np.unique(key, return_counts=True)
    names = ids.astype(str).astype(object)
    return pd.DataFrame(
        {
            "model_a": names[key // (4 * m)],
            "model_b": names[(key // 4) % m],
            "winner": WINNER_NAMES[key % 4],
            "n": n.astype(np.int64),
        }
    )


def _style_votes(columns: dict[str, np.ndarray], mask: np.ndarray) -> style_control.StyleVotes:
    """The style-controlled fit's votes (those under the mask), as coded arrays."""
    ids, a, b = _model_codes(columns)
    return style_control.StyleVotes(
        models=[str(i) for i in ids],
        a=a[mask],
        b=b[mask],
        winner=columns["winner"][mask],
        style={column: columns[column][mask] for column in style_control.STYLE_COLUMNS},
    )


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
            "dedup_every_category": settings.ARENA_DEDUP_EVERY_CATEGORY,
            "dedup_percentile": settings.ARENA_DEDUP_PERCENTILE,
            "online_elo_k": settings.ARENA_ONLINE_ELO_K,
        },
    )
    started = time.monotonic()
    try:
        statuses = dict(ArenaModel.objects.values_list("pk", "status"))
        rows, pairs, unrated, style, overall_votes, overall_total = [], [], {}, {}, {}, 0
        base = counted_votes(last_vote_id=last_vote_id)
        elo_state = _online_elo(previous, base, last_vote_id=last_vote_id, rebuild=rebuild_elo)
        duplicates = (
            over_prompt_limit(base, percentile=settings.ARENA_DEDUP_PERCENTILE)
            if settings.ARENA_DEDUP_EVERY_CATEGORY
            else None
        )
        kept = (
            kept_columns.KeptColumns(previous.parameters.get("kept_columns") if previous else None, full_read=full_read)
            if kept_columns.enabled()
            else None
        )
        prepared = list(category_data(chosen, base, duplicates=duplicates, kept=kept, last_vote_id=last_vote_id))
        # A category whose votes are exactly another's (the per-voter cap when no voter went
        # over it, say) takes that one's table: the fit is deterministic for the same counts
        # and seed, so fitting again could only repeat it.
        twins: dict[str, str] = {}
        distinct: list[tuple[Category, object, pd.DataFrame]] = []
        for category, data, counts in prepared:
            if not category.style_control:
                twin = next((c.name for c, _, k in distinct if not c.style_control and k.equals(counts)), None)
                if twin is not None:
                    twins[category.name] = twin
                    continue
            distinct.append((category, data, counts))
        # The bootstraps run one after another, each on every core (its batches share the
        # resampler's tables in cache); the style-controlled fit runs beside them on a thread
        # of its own, filling the gaps they leave. numpy's work releases the GIL.
        rate = partial(_rate, bootstrap_rounds=bootstrap_rounds, seed=seed, anchor=anchor)
        results: dict[str, tuple] = {}
        with ratings.single_threaded_blas(), ThreadPoolExecutor(max_workers=1) as beside:
            style_fits = {c.name: beside.submit(rate, c, data) for c, data, _ in distinct if c.style_control}
            for category, data, _ in distinct:
                if not category.style_control:
                    results[category.name] = rate(category, data)
            results.update({name: future.result() for name, future in style_fits.items()})
        results.update({name: results[twin] for name, twin in twins.items()})
        for category, _data, counts in prepared:
            table, left_out = results[category.name]
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
        kept_pointer = kept.finish() if kept is not None else None
        with transaction.atomic():
            finished = clock.now()
            run.state = RatingRun.State.PUBLISHED
            run.finished_at = run.published_at = finished
            run.duration_seconds = time.monotonic() - started
            run.vote_count = overall_total
            run.online_elo_state = elo_state
            run.parameters = {**run.parameters, "unrated": unrated, "style_coefficients": style}
            if kept is not None:
                run.parameters["kept_columns"] = kept_pointer
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

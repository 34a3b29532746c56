"""The counted votes read from PostgreSQL in one statement each: the fast path of leaderboard/votes.py.

A row per vote through the driver would cost more in Python than the query itself at
millions of votes. So the statement returns each column as one value: `string_agg` of the
values' fixed-width binary forms (`int8send`), a bytea of big-endian integers that numpy reads
as it is. Related small values are packed into one 64-bit number (models, the battle's facts,
each pair of style counts) to make fewer aggregates, which is most of the statement's cost.

Above PARALLEL_READ_VOTES the two halves of the battle ids are read on two connections at
once, so both cores work on the join.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import psycopg
from django.db import connection
from django.db.models import Max, Min

from battles.models import Vote
from ratings_engine import style_control

from .votes import Selection

# With this many votes or more (by id), a full read runs on two connections at once.
PARALLEL_READ_VOTES = 500_000
BIGINT_MAX = 2**63 - 1

WINNER_CODE = (
    "CASE v.winner WHEN 'model_a' THEN 0 WHEN 'model_b' THEN 1 WHEN 'tie' THEN 2 WHEN 'tie (bothbad)' THEN 3 END"
)
STYLE_PAIRS = "".join(
    f",\n    string_agg(int8send((coalesce(s.{f}_a, 0)::int8 << 32) | coalesce(s.{f}_b, 0)), '')"
    for f in style_control.FEATURES
)
# The counted votes of the battles in (low, high], and of those, when `every` is false, only
# the votes after `after` or of the battles named. Model ids and style counts are 32-bit
# integers, the prompt length too, the turn a 16-bit one and the language code below 256, so
# each packed number holds its parts whole. The bounds go on the battles too: the merge join
# reads each side in id order from where its index scan starts.
COLUMNS_SQL = f"""
SELECT
    string_agg(int8send(v.id), ''),
    string_agg(int8send(v.battle_id), ''),
    string_agg(int8send((v.model_a_id::int8 << 32) | v.model_b_id), ''),
    string_agg(int8send(
        (b.prompt_chars::int8 << 32)
        | (b.turn::int8 << 16)
        | (coalesce(array_position(%(languages)s::text[], b.language::text), 0) << 8)
        | ((s.battle_id IS NOT NULL)::int << 2)
        | {WINNER_CODE}
    ), ''),
    string_agg(int4send(hashtext(v.judge)), ''),
    string_agg(int4send((v.created_at AT TIME ZONE 'UTC')::date - DATE '2000-01-01'), ''){STYLE_PAIRS}
FROM battles_vote AS v
JOIN battles_battle AS b ON b.id = v.battle_id
LEFT JOIN battles_battlestyle AS s ON s.battle_id = v.battle_id
WHERE v.anony AND v.excluded_reason = '' AND v.id <= %(last_vote_id)s
    AND v.battle_id > %(low)s AND v.battle_id <= %(high)s AND b.id > %(low)s AND b.id <= %(high)s
    AND (%(every)s OR v.id > %(after)s OR v.battle_id = ANY(%(battles)s::bigint[]))
"""
# The counted votes after `after` as 26-byte records: id, cast at (microseconds since 2000,
# timestamptz's binary form), models, winner code. Unordered: numpy sorts them, which costs
# less than an ordered aggregate's sort in the server.
VOTE_ORDER_SQL = f"""
SELECT string_agg(
    int8send(v.id) || timestamptz_send(v.created_at) || int8send((v.model_a_id::int8 << 32) | v.model_b_id)
    || int2send(({WINNER_CODE})::int2), '')
FROM battles_vote AS v
WHERE v.anony AND v.excluded_reason = '' AND v.id > %(after)s AND v.id <= %(last_vote_id)s
"""
VOTE_RECORD = np.dtype([("id", ">i8"), ("cast", ">i8"), ("models", ">i8"), ("winner", ">i2")])
# Transactions older than the snapshot's xmin had all ended: the index on xid leaves them out.
# A transaction's own writes are visible in its own snapshot, made before or after it was
# taken: notes of the run's own transaction (a run inside a larger one, followed by a staff
# decision in the same one) are taken as unseen too.
CHANGED_SINCE_SQL = """
SELECT DISTINCT battle_id FROM leaderboard_countedvotechange
WHERE (xid >= %(xmin)s AND NOT pg_visible_in_snapshot(xid::text::xid8, %(snapshot)s::pg_snapshot))
   OR xid = %(own)s
"""
KEPT_PARTS_SQL = "SELECT id, rows, layout, data FROM leaderboard_keptcolumnspart WHERE id = ANY(%(ids)s::bigint[])"


def read_columns(selection: Selection) -> dict[str, np.ndarray]:
    """votes.VOTE_COLUMNS of the selected votes, in no particular order."""
    if len(selection.languages) > 254:
        raise ValueError("at most 254 language categories fit the language code")
    params = {
        "languages": list(selection.languages),
        "last_vote_id": selection.last_vote_id,
        "every": selection.after is None,
        "after": selection.after or 0,
        "battles": list(selection.battles),
    }
    span = Vote.objects.aggregate(low=Min("battle_id"), high=Max("battle_id"), first=Min("id"), last=Max("id"))
    many = (span["last"] or 0) - (span["first"] or 0) >= PARALLEL_READ_VOTES
    if selection.after is None and many and not connection.in_atomic_block:
        # Each half on a connection of its own thread. Outside a transaction only: a second
        # connection would not see uncommitted rows. The halves are read at slightly different
        # moments, as any two queries of a run are; every vote counted is at most the run's
        # last_vote_id either way.
        split = (span["low"] + span["high"]) // 2
        halves = [{**params, "low": 0, "high": split}, {**params, "low": split, "high": BIGINT_MAX}]
        with ThreadPoolExecutor(max_workers=2) as pool:
            parts = list(pool.map(_read_on_own_connection, halves))
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    return _unpacked(_fetch(COLUMNS_SQL, {**params, "low": 0, "high": BIGINT_MAX}))


def read_in_vote_order(*, after: int, last_vote_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(model_a ids, model_b ids, winner codes) of the counted votes after `after`, in the
    order they were cast (time, then id)."""
    (data,) = _fetch(VOTE_ORDER_SQL, {"after": after, "last_vote_id": last_vote_id})
    records = np.frombuffer(data or b"", VOTE_RECORD)
    records = records[np.lexsort((records["id"], records["cast"]))]
    models = records["models"].astype(np.int64)
    return models >> 32, models & 0xFFFFFFFF, records["winner"].astype(np.int64)


def read_parts(ids: list[int]) -> dict[int, tuple[int, list, bytes]]:
    """The kept columns' parts (models.KeptColumnsPart) by id: (rows, layout, data)."""
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(KEPT_PARTS_SQL, {"ids": ids}, binary=True)
        return {part_id: (rows, layout, data) for part_id, rows, layout, data in cursor}


def current_snapshot() -> tuple[str, int, int | None]:
    """(the transactions visible now, as PostgreSQL's snapshot text; the oldest still in
    progress; this connection's own transaction when it has written, else None)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_current_snapshot()::text, pg_snapshot_xmin(pg_current_snapshot())::text::bigint, "
            "pg_current_xact_id_if_assigned()::text::bigint"
        )
        snapshot, xmin, own = cursor.fetchone()
        return snapshot, int(xmin), own


def battles_changed_since(snapshot: str, xmin: int, own: int | None = None) -> np.ndarray:
    """The battles noted (models.CountedVoteChange) by transactions the snapshot did not see:
    those in progress when it was taken, or begun after, and the snapshot's own (`own`)."""
    with connection.cursor() as cursor:
        cursor.execute(CHANGED_SINCE_SQL, {"snapshot": snapshot, "xmin": xmin, "own": own})
        return np.array([battle for (battle,) in cursor.fetchall()], dtype=np.int64)


def _read_on_own_connection(params: dict) -> dict[str, np.ndarray]:
    try:
        return _unpacked(_fetch(COLUMNS_SQL, params))
    finally:
        connection.close()  # this thread's connection, opened for this read


def _fetch(sql: str, params: dict) -> tuple:
    """The statement's one row, read in binary: bytea comes back as its bytes, not as hex.
    (Django's own cursors bind parameters on the client, which psycopg does only for text.)"""
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, binary=True)
        return cursor.fetchone()


def _unpacked(row: tuple) -> dict[str, np.ndarray]:
    def integers(data: bytes | None, width: int) -> np.ndarray:
        return np.frombuffer(data or b"", f">i{width}").astype(np.int64)

    ids, battles, models, facts, judges, days, *styles = row
    models, facts = integers(models, 8), integers(facts, 8)
    columns = {
        "id": integers(ids, 8),
        "battle_id": integers(battles, 8),
        "model_a": models >> 32,
        "model_b": models & 0xFFFFFFFF,
        "winner": facts & 3,
        "turn": (facts >> 16) & 0xFFFF,
        "prompt_chars": facts >> 32,
        "language": (facts >> 8) & 0xFF,
        "has_style": (facts >> 2) & 1,
        "judge_key": integers(judges, 4),
        "day": integers(days, 4),
    }
    for feature, packed in zip(style_control.FEATURES, styles, strict=True):
        pairs = integers(packed, 8)
        columns[f"{feature}_a"], columns[f"{feature}_b"] = pairs >> 32, pairs & 0xFFFFFFFF
    return columns

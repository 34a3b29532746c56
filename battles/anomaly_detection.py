"""The anomalous-voter test on the database, as the hourly run makes it: read the votes,
test every voter, flag those over the threshold, and exclude their votes.

The test itself is pure (battles/integrity.py); this module reads the votes for it,
records the voters it flags (FlaggedVoter) and excludes the votes of every voter under a flag
with `flagged_user` (battles/anomaly_votes.py). Staff decisions on flagged voters are
battles/anomaly_review.py. Detection runs before every rating recomputation
(leaderboard/tasks.py), from the `detect_anomalous_voters` command, and as the Celery task
battles.tasks.detect_anomalous_voters.

A run does not read every vote. On PostgreSQL it starts from what the last run kept
(battles/anomaly_state.py: the population's counts per pair, and each tested voter's first
votes and own counts) and reads only the votes written since, from notes that triggers add
as votes are written (migration 0012), plus the votes of the voters whose first votes those
may have changed. Every voter's evidence is still computed again, against the counts as they
are now, so a run decides exactly as one on every vote would. Without a usable state (none
yet, another scope, an unreadable one, a large change) the run reads every vote and keeps
the state for the next. Elsewhere (SQLite) every run reads every vote.

A voter is a session or an account. A script that clears its cookies before every vote makes
sessions too short to test (fewer than the test's minimum of votes each); the votes of such
short sessions are therefore tested together per client address, as one voter named
`address:<address id>`. Flagging, reviewing and excluding such a voter acts on the
anonymous votes of that address (anomaly_votes.votes_of).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import psycopg
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, QuerySet

from arenasite import clock

from . import anomaly_state, integrity
from .anomaly_votes import JUDGE_BATCH, SCOPE_ARENA, exclude_votes_of, tested_votes
from .models import FlaggedVoter, Vote, VoterState
from .voters import ADDRESS_VOTER

logger = logging.getLogger(__name__)

MIN_VOTES, MAX_VOTES = integrity.DEFAULT_MIN_VOTES, integrity.DEFAULT_MAX_VOTES
# More notes than this share of the kept votes (and at least LARGE_CHANGE_MIN, so a small
# arena still runs incrementally): a bulk import, say. Reading every vote is then cheaper.
LARGE_CHANGE = 0.25
LARGE_CHANGE_MIN = 10_000
# One run at a time keeps and updates the state (a PostgreSQL advisory lock key: "anom").
RUN_LOCK = 0x616E6F6D


@dataclass(frozen=True)
class FlaggedRow:
    judge: str
    votes: int
    statistic: float
    direction: str
    state: str
    new: bool


@dataclass(frozen=True)
class DetectionReport:
    tested: int
    flagged: list[FlaggedRow]
    votes_excluded: int
    alpha: float
    incremental: bool = False  # from the kept state, rather than from every vote
    votes_read: int = 0  # votes read from the database (notes included)


def detect_anomalous_voters(*, alpha: float | None = None, full: bool = False) -> DetectionReport:
    """Test every voter, flag those who cross 1/alpha, and exclude the votes of every voter
    under a flag (flagged, confirmed or banned), including those cast since the last run.

    Idempotent: a second run on the same votes flags nobody new and changes no vote. A
    voter staff cleared is not flagged again. A flagged voter whose evidence later falls
    below the threshold stays flagged until reviewed: the flag is a human's to lift.
    Incremental where it can be (see the module's docstring); `full` reads every vote.
    """
    alpha = settings.ARENA_ANOMALY_ALPHA if alpha is None else alpha
    started = time.monotonic()
    found, incremental, read = _evidence(full=full)
    result = found.result(alpha)
    crossed = {
        str(found.labels[code]): (int(votes), float(statistic), str(direction))
        for code, votes, statistic, direction, flag in zip(
            result.voters, result.votes, result.statistic, result.direction, result.flagged, strict=True
        )
        if flag
    }
    new_judges, excluded = _flag_and_exclude(crossed, alpha=alpha, now=clock.now())
    flagged = _flagged_rows(crossed, new_judges)
    logger.info(
        "anomalous voters: %d tested, %d over the threshold, %d new, %d votes excluded; %s, %d votes read, %.2f s",
        len(result.voters),
        len(flagged),
        len(new_judges),
        excluded,
        "incremental" if incremental else "every vote read",
        read,
        time.monotonic() - started,
    )
    return DetectionReport(
        tested=len(result.voters),
        flagged=flagged,
        votes_excluded=excluded,
        alpha=alpha,
        incremental=incremental,
        votes_read=read,
    )


def _flag_and_exclude(crossed: dict[str, tuple[int, float, str]], *, alpha: float, now) -> tuple[set[str], int]:
    """Flag the voters over the threshold not flagged before, bring the known ones' figures up
    to date, and exclude the votes of every voter under a flag: the judges newly flagged, and
    how many votes were excluded."""
    with transaction.atomic():
        known = {v.judge: v for v in FlaggedVoter.objects.select_for_update().filter(judge__in=list(crossed))}
        new = [
            FlaggedVoter(
                judge=judge,
                votes_tested=votes,
                statistic=statistic,
                direction=direction,
                alpha=alpha,
                flagged_at=now,
                tested_at=now,
            )
            for judge, (votes, statistic, direction) in crossed.items()
            if judge not in known
        ]
        # Two runs at once: the other one's rows win, and this one reads them below.
        FlaggedVoter.objects.bulk_create(new, ignore_conflicts=True)
        _update_tested(known, crossed, alpha=alpha, now=now)
        # Locked, so a staff decision (which locks the row too) cannot interleave with the
        # exclusion below and have its cleared votes excluded again.
        excluding = list(
            FlaggedVoter.objects.select_for_update()
            .filter(state__in=FlaggedVoter.EXCLUDING)
            .values_list("judge", flat=True)
        )
        excluded = exclude_votes_of(excluding)
    return {v.judge for v in new}, excluded


def _flagged_rows(crossed: dict[str, tuple[int, float, str]], new_judges: set[str]) -> list[FlaggedRow]:
    """The report's rows: the voters over the threshold, strongest evidence first, with the
    state each is in now; those staff cleared are left out (a clearing stands)."""
    states = dict(FlaggedVoter.objects.filter(judge__in=list(crossed)).values_list("judge", "state"))
    return [
        FlaggedRow(judge, votes, statistic, direction, states.get(judge, VoterState.FLAGGED), judge in new_judges)
        for judge, (votes, statistic, direction) in sorted(crossed.items(), key=lambda item: -item[1][1])
        if states.get(judge) != VoterState.CLEARED
    ]


def _update_tested(known: dict[str, FlaggedVoter], crossed: dict, *, alpha: float, now) -> None:
    """The known flagged voters' statistics from this run. On PostgreSQL one UPDATE from
    arrays: every run updates every such voter, and building a CASE per row and field (as
    bulk_update does) would cost more than the rest of a quiet run."""
    if connection.vendor != "postgresql":
        for judge, voter in known.items():
            voter.votes_tested, voter.statistic, voter.direction = crossed[judge]
            voter.alpha, voter.tested_at = alpha, now
        FlaggedVoter.objects.bulk_update(
            known.values(), ["votes_tested", "statistic", "direction", "alpha", "tested_at"], batch_size=500
        )
        return
    if not known:
        return
    ids = [voter.pk for voter in known.values()]
    votes, statistics, directions = zip(*(crossed[judge] for judge in known), strict=True)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {FlaggedVoter._meta.db_table} AS f SET votes_tested = v.votes, statistic = v.statistic, "
            "direction = v.direction, alpha = %s, tested_at = %s "
            "FROM unnest(%s::bigint[], %s::integer[], %s::double precision[], %s::text[]) "
            "AS v (id, votes, statistic, direction) WHERE f.id = v.id",
            [alpha, now, ids, list(votes), list(statistics), list(directions)],
        )


def _read_votes():
    """(voter, model_a, model_b, level, counts) arrays of the tested votes, oldest first, for
    integrity.sequential_test: the test on every vote, as it is defined. Runs use the kept
    state instead; the tests and benchmarks/anomalies.py compare the two. The voter is the
    judge, or for a session too short to test alone, its client address."""
    rows = (
        tested_votes()
        .order_by("created_at", "id")
        .values_list("judge", "address", "model_a_id", "model_b_id", "winner", "excluded_reason")
    )
    judges, addresses, model_a, model_b, level, counted = [], [], [], [], [], []
    for judge, address, a, b, winner, reason in rows.iterator(chunk_size=20_000):
        judges.append(judge)
        addresses.append(address)
        model_a.append(a)
        model_b.append(b)
        level.append(integrity.LEVELS[winner])
        counted.append(not reason)
    return (
        _voters(np.array(judges, dtype=object), np.array(addresses, dtype=object)),
        np.array(model_a, dtype=np.int64),
        np.array(model_b, dtype=np.int64),
        np.array(level, dtype=np.int64),
        np.array(counted, dtype=bool),
    )


def _voters(judges: np.ndarray, addresses: np.ndarray) -> np.ndarray:
    """Each vote's tested voter: its judge, unless the judge has too few votes to be tested
    and the vote has a client address, when the address's short sessions are one voter."""
    if not len(judges):
        return judges
    unique, inverse, counts = np.unique(judges.astype(str), return_inverse=True, return_counts=True)
    short = (counts[inverse] < integrity.DEFAULT_MIN_VOTES) & (addresses != "")
    voters = judges.copy()
    voters[short] = ADDRESS_VOTER + addresses[short].astype(object)
    return voters


# --- the kept state ---------------------------------------------------------------------------

STATE_TABLE = "battles_anomalyteststate"
NOTE_TABLE = "battles_anomalyvotenote"
_VOTE_COLUMNS = ["id", "judge", "address", "model_a_id", "model_b_id", "winner", "excluded_reason", "created_at"]


def _definition() -> str:
    """What a kept state was computed for: another scope or format is not used."""
    return f"{anomaly_state.FORMAT}:{settings.ARENA_ANOMALY_TEST_SCOPE}:{MIN_VOTES}:{MAX_VOTES}"


def keeps_state() -> bool:
    return connection.vendor == "postgresql"


def _evidence(*, full: bool) -> tuple[anomaly_state.Evidence, bool, int]:
    """(every tested voter's evidence, whether it came from the kept state, votes read)."""
    if not keeps_state():
        state, read = _build_all()
        return anomaly_state.evidence(state, max_votes=MAX_VOTES), False, read
    # The row exists before the snapshot below is taken, so every vote written after that
    # snapshot is noted (the triggers note only while it exists) and the next run sees it.
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {STATE_TABLE} (id) VALUES (1) ON CONFLICT DO NOTHING")
    with _run_lock(), _snapshot():
        # The state moves as binary (psycopg's %b, binary results): tens of megabytes at
        # millions of votes, which the text format would double and escape.
        connection.ensure_connection()
        with psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(f"SELECT definition, data FROM {STATE_TABLE} WHERE id = 1", binary=True)
            definition, data = cursor.fetchone()
        notes = _take_notes()
        state, read = None, len(notes["vote_id"])
        if not full and data is not None and definition == _definition():
            try:
                state = anomaly_state.loads(bytes(data))
            except ValueError as exc:
                logger.warning("anomalous voters: the kept state is unreadable (%s); reading every vote", exc)
            if state is not None:
                state, reread = _update(state, notes)
                read += reread
        incremental = state is not None
        if state is None:
            state, read = _build_all()
        elif not len(notes["vote_id"]):
            return anomaly_state.evidence(state, max_votes=MAX_VOTES), True, 0  # nothing to keep anew
        with psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(
                f"UPDATE {STATE_TABLE} SET definition = %s, data = %b, updated_at = now() WHERE id = 1",
                [_definition(), anomaly_state.dumps(state)],
            )
    return anomaly_state.evidence(state, max_votes=MAX_VOTES), incremental, read


def forget_state() -> None:
    """Drop the kept state and its notes: while detection is off nothing would read them, and
    without the state the triggers note nothing. The next run reads every vote."""
    if keeps_state():
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {STATE_TABLE}")
            cursor.execute(f"DELETE FROM {NOTE_TABLE}")


@contextmanager
def _run_lock() -> Iterator[None]:
    """One run at a time keeps the state; a second waits for the first."""
    with connection.cursor() as cursor:
        if connection.in_atomic_block:  # released with the caller's transaction
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [RUN_LOCK])
            yield
            return
        cursor.execute("SELECT pg_advisory_lock(%s)", [RUN_LOCK])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [RUN_LOCK])


@contextmanager
def _snapshot() -> Iterator[None]:
    """One transaction that sees the notes and the votes at the same moment: a vote written
    after the notes are taken must not be read as a voter's own vote before its note adds it
    to the pair's counts. (Inside a caller's transaction, that one's view is used.)"""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


def _take_notes() -> dict[str, np.ndarray]:
    """The notes of the votes written since the last run, consumed: each is applied once."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {NOTE_TABLE} RETURNING vote_id, judge, address, model_a_id, model_b_id, winner, "
            "(EXTRACT(EPOCH FROM created_at) * 1000000)::bigint, imported, tested, counted"
        )
        rows = cursor.fetchall()
    names = ["vote_id", "judge", "address", "model_a", "model_b", "winner", "created_at", "imported", "tested"]
    columns = dict(zip([*names, "counted"], map(list, zip(*rows, strict=True)), strict=True)) if rows else {}
    notes = {name: np.array(columns.get(name, []), dtype=object) for name in ["judge", "address", "imported"]}
    for name in ["vote_id", "model_a", "model_b", "tested", "counted"]:
        notes[name] = np.array(columns.get(name, []), dtype=np.int64)
    notes["level"] = np.array([integrity.LEVELS[w] for w in columns.get("winner", [])], dtype=np.int64)
    notes["created"] = np.array(columns.get("created_at", []), dtype=np.int64)
    return notes


def _microseconds(stamps) -> np.ndarray:
    if not len(stamps):
        return np.array([], dtype=np.int64)
    stamps = pd.to_datetime(pd.Series(list(stamps), dtype=object), utc=True).dt.as_unit("us")
    return stamps.astype("int64").to_numpy(np.int64)  # microseconds, as the notes give them


def _columns(votes: QuerySet) -> dict[str, np.ndarray]:
    """The tested votes' columns the kept state is built from."""
    rows = list(votes.values_list(*_VOTE_COLUMNS).iterator(chunk_size=20_000))
    raw = dict(zip(_VOTE_COLUMNS, map(list, zip(*rows, strict=True)), strict=True)) if rows else {}
    return {
        "id": np.array(raw.get("id", []), dtype=np.int64),
        "judge": np.array(raw.get("judge", []), dtype=object),
        "address": np.array(raw.get("address", []), dtype=object),
        "model_a": np.array(raw.get("model_a_id", []), dtype=np.int64),
        "model_b": np.array(raw.get("model_b_id", []), dtype=np.int64),
        "level": np.array([integrity.LEVELS[w] for w in raw.get("winner", [])], dtype=np.int64),
        "counted": np.array([not r for r in raw.get("excluded_reason", [])], dtype=bool),
        "created": _microseconds(raw.get("created_at", [])),
    }


def _take(columns: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    return {name: values[mask] for name, values in columns.items()}


def _block(state: anomaly_state.State, columns: dict[str, np.ndarray], voters: np.ndarray) -> anomaly_state.State:
    """The kept arrays of the voters (labels, one per vote) of these votes."""
    codes, labels = pd.factorize(pd.Series(voters, dtype=object))
    return anomaly_state.build(
        codes.astype(np.int64),
        np.asarray(labels, dtype=object),
        state.pair_index(columns["model_a"], columns["model_b"]),
        anomaly_state.canonical_levels(columns["model_a"], columns["model_b"], columns["level"]),
        columns["counted"],
        columns["created"],
        columns["id"],
        min_votes=MIN_VOTES,
        max_votes=MAX_VOTES,
    )


def _build_all() -> tuple[anomaly_state.State, int]:
    """The state from every tested vote: (state, votes read)."""
    columns = _columns(tested_votes())
    state = anomaly_state.State.empty()
    pair = state.pair_index(columns["model_a"], columns["model_b"])
    level = anomaly_state.canonical_levels(columns["model_a"], columns["model_b"], columns["level"])
    counted = columns["counted"]
    state.add_population(pair[counted], level[counted], np.ones(int(counted.sum()), dtype=np.int64))
    block = _block(state, columns, _voters(columns["judge"], columns["address"]))
    state.replace_voters(np.array([], dtype=np.int64), block)
    return state, len(columns["id"])


def _tested_counts(judges: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for start in range(0, len(judges), JUDGE_BATCH * 10):
        batch = judges[start : start + JUDGE_BATCH * 10]
        rows = tested_votes().filter(judge__in=batch).values_list("judge").annotate(n=Count("id")).order_by()
        counts.update(dict(rows))
    return counts


def _update(state: anomaly_state.State, notes: dict[str, np.ndarray]) -> tuple[anomaly_state.State | None, int]:
    """The state with the notes applied: (state, votes read again), or (None, 0) when every
    vote should be read instead."""
    if settings.ARENA_ANOMALY_TEST_SCOPE == SCOPE_ARENA:
        if any(imported is None for imported in notes["imported"]):
            return None, 0  # a vote whose battle is gone: which scope it was in is unknown
        notes = _take(notes, ~notes["imported"].astype(bool))
    if len(notes["vote_id"]) > max(LARGE_CHANGE * state.kept_votes, LARGE_CHANGE_MIN):
        return None, 0
    if not len(notes["vote_id"]):
        return state, 0

    # The population's counts.
    pair = state.pair_index(notes["model_a"], notes["model_b"])
    level = anomaly_state.canonical_levels(notes["model_a"], notes["model_b"], notes["level"])
    state.add_population(pair, level, notes["counted"])

    index = state.index_of()
    judges = notes["judge"].tolist()
    v = np.array([index.get(judge, -1) for judge in judges], dtype=np.int64)
    in_place, appended, reread_judges, reread_addresses = _sort_voters(state, notes, judges, v)
    # The sorting above reads the totals as they were: only now are they brought up to date.
    np.add.at(state.total, v[in_place], notes["tested"][in_place])
    state.add_own(v[in_place], pair[in_place], level[in_place], notes["counted"][in_place])
    extended, block = _append_later_votes(state, notes, v, pair, level, appended)
    removed, reread, read = _reread(state, index, reread_judges, reread_addresses)
    state.replace_voters(np.concatenate([extended, removed]), anomaly_state.joined([block, reread]))
    if not state.consistent():
        logger.warning("anomalous voters: the kept counts disagree with the notes; reading every vote")
        return None, 0
    return state, read


def _sort_voters(
    state: anomaly_state.State, notes: dict[str, np.ndarray], judges: list[str], v: np.ndarray
) -> tuple[np.ndarray, np.ndarray, set[str], set[str]]:
    """Which voters' kept votes may have changed (read again); which have all their votes kept
    and only gained later ones (appended); and which only gained or lost counted votes after
    their first ones, or on their pairs (updated in place). `v` is each note's voter in the
    state (-1: not in it). Returns the notes' rows updated in place, the rows appended, and
    the judges and addresses whose votes are read again."""
    known = v >= 0
    voters = len(state.labels)
    # Index 0 stands in for unknown judges (and a voter that cannot exist when there are none).
    kv = np.where(known, v, 0)
    tested = notes["tested"]
    padded = voters or 1
    last_created = np.resize(state.last_created, padded) if voters else np.zeros(1, np.int64)
    last_id = np.resize(state.last_id, padded) if voters else np.zeros(1, np.int64)
    later = (notes["created"] > last_created[kv]) | (
        (notes["created"] == last_created[kv]) & (notes["vote_id"] > last_id[kv])
    )

    def per_voter(values: np.ndarray) -> np.ndarray:
        return np.bincount(kv[known], weights=values[known].astype(float), minlength=voters) > 0

    full_first = np.diff(state.seq_start) >= MAX_VOTES
    below = state.total + np.bincount(kv[known], weights=tested[known], minlength=voters).astype(np.int64) < MIN_VOTES
    earlier = per_voter((tested != 0) & ~later)
    leaving = per_voter(tested < 0)
    arriving = per_voter(tested > 0)
    reread = np.resize(below | earlier | (~full_first & leaving), padded)
    extend = np.resize(~reread[:voters] & ~full_first & arriving, padded)
    reread_judges = set(np.array(judges, dtype=object)[known & reread[kv]].tolist())
    in_place = np.flatnonzero(known & ~reread[kv] & ~extend[kv])
    appended = np.flatnonzero(known & extend[kv])
    reread_addresses = _new_voters(notes, judges, known, reread_judges)
    return in_place, appended, reread_judges, reread_addresses


def _new_voters(
    notes: dict[str, np.ndarray], judges: list[str], known: np.ndarray, reread_judges: set[str]
) -> set[str]:
    """Judges not in the state: each one with enough tested votes now is added to
    `reread_judges` (a new voter, or a short session that reached the minimum); the others
    are still short, and are tested with their address's other short sessions, whose
    addresses are returned."""
    unknown = sorted(set(np.array(judges, dtype=object)[~known].tolist()))
    by_judge: dict[str, list[int]] = defaultdict(list)
    for k in np.flatnonzero(~known).tolist():
        by_judge[judges[k]].append(k)
    reread_addresses: set[str] = set()
    counts = _tested_counts(unknown)
    for judge in unknown:
        if counts.get(judge, 0) >= MIN_VOTES:
            reread_judges.add(judge)
        else:
            reread_addresses.update(a for a in notes["address"][by_judge[judge]].tolist() if a)
    return reread_addresses


def _append_later_votes(
    state: anomaly_state.State,
    notes: dict[str, np.ndarray],
    v: np.ndarray,
    pair: np.ndarray,
    level: np.ndarray,
    rows: np.ndarray,
) -> tuple[np.ndarray, anomaly_state.State]:
    """The voters of `rows` (who only gained later votes) with those votes appended: their
    codes in the state, and their block of kept arrays."""
    voter = v[rows]
    new = notes["tested"][rows] > 0
    extended, block = anomaly_state.extended(
        state,
        voter[new],
        pair[rows][new],
        level[rows][new],
        notes["counted"][rows][new] > 0,
        notes["created"][rows][new],
        notes["vote_id"][rows][new],
        min_votes=MIN_VOTES,
        max_votes=MAX_VOTES,
    )
    # Votes counted or no longer counted, without being added: on the block's pairs now.
    changed = ~new
    block.add_own(np.searchsorted(extended, voter[changed]), pair[rows][changed], level[rows][changed],
                  notes["counted"][rows][changed])  # fmt: skip
    return extended, block


def _among(values: np.ndarray, chosen: set[str]) -> np.ndarray:
    """Which values are in `chosen`, by hash (np.isin compares strings pairwise)."""
    return pd.Series(values, dtype=object).isin(chosen).to_numpy(dtype=bool)


def _reread(
    state: anomaly_state.State, index: dict[str, int], judges: set[str], addresses: set[str]
) -> tuple[np.ndarray, anomaly_state.State, int]:
    """Build again, from the database, the kept votes of these judges and addresses (and of
    the addresses a judge's votes move to or from when it crosses the minimum): (the voters
    they replace, the block replacing them, the votes read)."""
    if not judges and not addresses:
        return np.array([], dtype=np.int64), anomaly_state.State.empty(), 0
    by_judge = _columns(tested_votes().filter(judge__in=list(judges))) if judges else _columns(Vote.objects.none())
    totals = pd.Series(by_judge["judge"], dtype=object).value_counts().to_dict()
    tested_alone = {j for j in judges if totals.get(j, 0) >= MIN_VOTES}
    # A judge crossing the minimum either way moves its votes between its own test and its
    # addresses' tests: those addresses are built again too.
    crossed = {j for j in judges if (j in tested_alone) != (j in index)}
    moving = _among(by_judge["judge"], crossed) & (by_judge["address"] != "")
    addresses = addresses | set(by_judge["address"][moving].tolist())
    by_address = (
        _columns(tested_votes().filter(address__in=list(addresses))) if addresses else _columns(Vote.objects.none())
    )
    others = sorted(set(by_address["judge"].tolist()) - set(totals))
    totals.update(_tested_counts(others))
    short = np.array([totals.get(j, 0) < MIN_VOTES for j in by_address["judge"].tolist()], dtype=bool)
    mine = _among(by_judge["judge"], tested_alone)
    columns = {name: np.concatenate([by_judge[name][mine], by_address[name][short]]) for name in by_judge}
    voters = np.concatenate([by_judge["judge"][mine], ADDRESS_VOTER + by_address["address"][short].astype(object)])
    block = _block(state, columns, voters)
    labels = list(judges) + [ADDRESS_VOTER + a for a in addresses]
    remove = np.array([index[label] for label in labels if label in index], dtype=np.int64)
    return remove, block, len(by_judge["id"]) + len(by_address["id"])

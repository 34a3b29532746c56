"""Rating benchmark: our recomputation and rating engine against FastChat's and LMArena's code.

    .venv/bin/python benchmarks/ratings.py                     # 1M and 3M votes, 1000 bootstrap rounds
    .venv/bin/python benchmarks/ratings.py --votes 1000000 --methods recompute,engine
    .venv/bin/python benchmarks/ratings.py --votes 3000000 --methods hourly   # the task as the beat runs it

For each size it generates seeded synthetic battles (150 models, Zipf-skewed pair sampling
over overlapping model lifetimes, Davidson-style ties tuned to 35%, random side order) and,
on that same data in the same run, measures wall time and peak memory of:

* ours, full: ``leaderboard.services.recompute()`` on a dedicated PostgreSQL database holding
  the battles, their answers' style features and the votes (loaded with COPY beforehand;
  loading is reported, not counted): SQL pair counts for every category, the engine with
  1000 bootstrap rounds and sandwich intervals, the style-controlled fit, the online Elo, and
  the writes of a published RatingRun. Three runs: the first (which plays the online Elo over
  every vote), the next one as the hourly task makes it (continuing the online Elo), and the
  overall category alone;
* ours, the hourly task (``--methods hourly``): ``leaderboard.tasks.recompute_ratings`` as the
  beat's worker runs it, the anomalous-voter test and then ``recompute()``, with detection on,
  three times in one warm process: the first run (the test reads every vote and keeps its
  state, the recomputation replays the online Elo and keeps its columns), the next with
  nothing new, and the next after 1% more votes were cast (most by voters who voted before,
  some by new ones), each phase timed and the peak memory split between test and recompute;
* ours, engine alone: ``ratings_engine.counts.aggregate`` + ``bradley_terry.compute_ratings``
  on the in-memory battles (the same pandas frame the peers get), with 1000 bootstrap rounds
  and also with the sandwich interval only;
* FastChat (fschat 0.2.36 from PyPI): ``compute_elo_mle_with_tie`` and
  ``get_bootstrap_result``; its bootstrap refits a dense logistic regression per round, so a
  few rounds are timed and 1000 extrapolated linearly (labelled so);
* arena-rank (LMArena's package): ``BradleyTerry.compute_ratings_and_cis`` with the sandwich
  and with the bootstrap interval.

It prints a table with the maximum rating difference of each from the exact optimum (our
engine's Newton solution, checked against choix in the test suite), after centring all at
mean 1000 on the same scale (400 / base 10).

Every measured step runs in a fresh subprocess. "peak MiB" is the rise of that process's
peak resident set (VmHWM, reset through /proc/self/clear_refs just before the step) over its
resident set just before the step: the memory the computation adds on top of the loaded data.
PostgreSQL's own backend memory is not in the figure for the full recomputation; worker
processes a peer forks are reported in the notes.

The peers live in a benchmark-only virtualenv (benchmarks/.venv-peers, created on first
use with pip), never in the project's dependencies. The worker modes (``--worker``) are
internal: the script calls itself with them, under the project's or the peers' interpreter.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from support import ensure_database, progress

ROOT = Path(__file__).resolve().parent.parent
PEERS_VENV = ROOT / "benchmarks" / ".venv-peers"
DEFAULT_DATABASE_URL = "postgres://arenasite:arenasite@127.0.0.1:5432/arenasite_bench_ratings"
# The peers, pinned. fschat is installed without its dependencies (it pulls in a web server
# stack); the elo_analysis functions need numpy, pandas, scikit-learn (LogisticRegression),
# tqdm (bootstrap loop) and pytz (module level); numpy and pandas come with arena-rank.
PEER_NO_DEPS = ["fschat==0.2.36"]
PEER_PACKAGES = ["arena-rank==0.1.1", "scikit-learn", "tqdm", "pytz"]

MODELS = 150
TIE_SHARE = 0.35
BOTHBAD_SHARE = 0.45  # of ties
ZIPF_EXPONENT = 0.8
TIME_SLOTS = 60
LANGUAGES = {
    "English": 0.55,
    "Chinese": 0.12,
    "Russian": 0.06,
    "German": 0.04,
    "Spanish": 0.04,
    "French": 0.03,
    "Japanese": 0.03,
    "Portuguese": 0.02,
    "Korean": 0.02,
    "unknown": 0.09,
}
STYLE_COLUMNS = [f"{feature}_{side}" for feature in ("tokens", "headers", "list_items", "bold") for side in "ab"]
# Of the votes cast for a next run: every 10th is a new voter's, 6 votes each (the others'
# voters voted before); see cast_more_votes.
NEW_VOTER_EVERY, NEW_VOTER_VOTES = 10, 6
DATA_VERSION = 2  # bump when the generator changes, so a stored database is reloaded


# Measurement (stdlib only: this part runs under both interpreters).


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of this process; False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class Measure:
    """Wall time and peak-RSS rise of the block; see the module doc for the memory figure."""

    def __enter__(self) -> Measure:
        gc.collect()
        self.rss_before = _status_kib("VmRSS")
        self.peak_reset = _reset_peak()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self.start
        self.peak_rise_mib = max(0, _status_kib("VmHWM") - self.rss_before) / 1024
        self.children_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    def as_dict(self) -> dict:
        return {
            "wall": self.wall,
            "peak_mib": self.peak_rise_mib,
            "rss_before_mib": self.rss_before / 1024,
            "children_peak_mib": self.children_mib,
            "peak_reset": self.peak_reset,
        }


def _series(names, values) -> dict:
    return {str(k): float(v) for k, v in zip(names, values, strict=True)}


# Synthetic data (project interpreter).


def generate(votes: int, seed: int):
    """Seeded battles: a frame (model_a, model_b, winner) in time order, plus battle metadata."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    names = np.array([f"model-{k:03d}" for k in range(MODELS)])
    theta = rng.normal(0.0, 150.0, MODELS) * math.log(10) / 400  # true strengths, Elo sd 150
    # Popularity: Zipf weights over a random order, so some models get far more battles.
    popularity = 1.0 / (rng.permutation(MODELS) + 1.0) ** ZIPF_EXPONENT
    # Lifetimes: models enter and leave the arena, so only overlapping ones ever meet.
    start = rng.uniform(-0.3, 0.85, MODELS)
    end = start + rng.uniform(0.25, 0.8, MODELS)
    per_slot = rng.multinomial(votes, np.full(TIME_SLOTS, 1 / TIME_SLOTS))
    parts_a, parts_b, parts_t = [], [], []
    for slot in range(TIME_SLOTS):
        t0, t1 = slot / TIME_SLOTS, (slot + 1) / TIME_SLOTS
        middle = (t0 + t1) / 2
        active = np.flatnonzero((start <= middle) & (end > middle))
        if len(active) < 2:
            active = np.argsort(np.abs((start + end) / 2 - middle))[:2]
        i, j = np.triu_indices(len(active), 1)
        i, j = active[i], active[j]
        weight = popularity[i] * popularity[j]
        pick = rng.choice(len(i), size=per_slot[slot], p=weight / weight.sum())
        parts_a.append(i[pick])
        parts_b.append(j[pick])
        parts_t.append(rng.uniform(t0, t1, per_slot[slot]))
    a, b, t = np.concatenate(parts_a), np.concatenate(parts_b), np.concatenate(parts_t)
    order = np.argsort(t, kind="stable")
    a, b, t = a[order], b[order], t[order]
    swap = rng.random(votes) < 0.5  # random side order
    a, b = np.where(swap, b, a), np.where(swap, a, b)

    # Davidson's tie model: P(a) : P(tie) : P(b) = e^{d/2} : nu : e^{-d/2}, nu set for 35% ties.
    d = theta[a] - theta[b]
    nu = _davidson_nu(d[: min(votes, 200_000)], TIE_SHARE)
    up, down = np.exp(d / 2), np.exp(-d / 2)
    total = up + down + nu
    u = rng.random(votes)
    code = np.where(u < up / total, 0, np.where(u < (up + nu) / total, 2, 1))  # 0 a, 1 b, 2 tie
    code = np.where((code == 2) & (rng.random(votes) < BOTHBAD_SHARE), 3, code)
    winners = np.array(["model_a", "model_b", "tie", "tie (bothbad)"])
    battles = pd.DataFrame({"model_a": names[a], "model_b": names[b], "winner": winners[code]})

    languages = np.array(list(LANGUAGES))
    probabilities = np.array(list(LANGUAGES.values()))
    turn = np.where(rng.random(votes) < 0.82, 1, 2 + rng.geometric(0.5, votes) - 1).clip(1, 12)
    meta = {
        "a": a,
        "b": b,
        "t": t,
        "names": names,
        "language": languages[rng.choice(len(languages), size=votes, p=probabilities / probabilities.sum())],
        "turn": turn,
        "prompt_chars": np.exp(rng.normal(math.log(160), 1.2, votes)).round().clip(1, 30_000).astype(np.int64),
        "judge": rng.integers(0, max(1, votes // 6), votes),
        "nu": nu,
    }
    # Answer style, for the style-controlled category: each model has its own verbosity and
    # markdown habits (no style effect on the outcome is simulated; the fit's cost is the same).
    verbosity = rng.uniform(80, 700, MODELS)
    markdown = rng.uniform(0.0, 4.0, MODELS)
    for side, model in (("a", a), ("b", b)):
        meta[f"tokens_{side}"] = rng.poisson(verbosity[model])
        meta[f"headers_{side}"] = rng.poisson(markdown[model] / 2)
        meta[f"list_items_{side}"] = rng.poisson(markdown[model] * 2)
        meta[f"bold_{side}"] = rng.poisson(markdown[model])
    return battles, meta


def _davidson_nu(d, share: float) -> float:
    import numpy as np

    spread = np.exp(d / 2) + np.exp(-d / 2)
    low, high = 0.0, 100.0
    for _ in range(60):
        nu = (low + high) / 2
        if (nu / (spread + nu)).mean() < share:
            low = nu
        else:
            high = nu
    return (low + high) / 2


# The benchmark database (project interpreter).


def _django_environment(database_url: str) -> dict:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE="arenasite.settings",
        DEBUG="0",  # as in production: no query log
        SECRET_KEY=env.get("SECRET_KEY") or "benchmark-only-secret-key",
        LOG_LEVEL="WARNING",
    )
    return env


def _setup_django(database_url: str) -> None:
    os.environ.update(_django_environment(database_url))
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def load_database(database_url: str, battles, meta, fingerprint: str) -> dict:
    """Put the battles into the benchmark database: models by the ORM, battles and votes by COPY."""
    import numpy as np
    import pandas as pd
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection, transaction

    from battles.release_pool import in_release_pool
    from providers.models import ArenaModel, Provider

    call_command("migrate", verbosity=0, interactive=False)
    watched = ["battles_vote", "battles_battle", "battles_battlestyle"]  # see the load below
    with connection.cursor() as cursor:
        for table in watched:  # on again, should a load have stopped halfway
            cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_dataset (fingerprint text NOT NULL)")
        cursor.execute("SELECT fingerprint FROM bench_dataset")
        stored = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM battles_vote")
        stored_votes = cursor.fetchone()[0]
    if stored and stored[0] == fingerprint and stored_votes == len(battles):
        progress("database already holds this data set: not reloading")
        return {"reused": True, "seconds": 0.0}

    started = time.perf_counter()
    tables = [
        "battles_battlestyle",
        "leaderboard_paircounts",
        "battles_vote",
        "battles_battle",
        "leaderboard_modelrating",
        "leaderboard_ratingrun",
        "providers_lifecycleevent",
        "providers_arenamodel",
        "providers_provider",
        "leaderboard_countedvotechange",
        "leaderboard_keptcolumnspart",
        "bench_dataset",
    ]
    # The notes of written votes (leaderboard/kept_columns.py) are for runs that keep columns;
    # the first run after a load reads every vote anyway, so the load goes without them (as a
    # restore of a dump would): millions of notes would only leave autovacuum work behind.
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
        for table in watched:
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")

    now = pd.Timestamp("2025-01-01", tz="UTC").to_pydatetime()
    providers = Provider.objects.bulk_create(
        [Provider(name=f"Bench provider {k}", slug=f"bench-provider-{k}") for k in range(10)]
    )
    names = meta["names"]
    models = ArenaModel.objects.bulk_create(
        [
            ArenaModel(
                provider=providers[k % len(providers)],
                name=str(name),
                codename=f"bench-{k:03d}",
                status=ArenaModel.Status.LISTED,
                admitted_at=now,
                listed_at=now,
            )
            for k, name in enumerate(names)
        ]
    )
    pk = np.array([m.pk for m in models])
    n = len(battles)
    ids = np.arange(1, n + 1)
    created = (np.datetime64("2024-01-01T00:00:00") + (meta["t"] * 365 * 86400).astype("timedelta64[s]")).astype(
        "datetime64[s]"
    )
    created_text = np.char.add(np.datetime_as_string(created, unit="s"), "+00")
    voted_text = np.char.add(np.datetime_as_string(created + np.timedelta64(40, "s"), unit="s"), "+00")
    question = pd.Series(ids).astype(str).radd("bench-q")
    pool = np.array(
        [in_release_pool(q, salt=settings.RELEASE_POOL_SALT, fraction=settings.RELEASE_POOL_FRACTION) for q in question]
    )
    model_a, model_b = pk[meta["a"]], pk[meta["b"]]
    battle_columns = (
        "id, question_id, model_a_id, model_b_id, anony, source, language, turn, prompt_chars, "
        "conversation_a, conversation_b, discarded, in_release_pool, created_at"
    )
    vote_columns = "id, battle_id, model_a_id, model_b_id, anony, winner, judge, excluded_reason, created_at"
    chunk = 250_000
    raw = connection.connection  # the psycopg connection under Django's
    with transaction.atomic():
        with raw.cursor() as cursor:
            # Skip the per-row foreign-key triggers: the ids are right by construction.
            cursor.execute("SET LOCAL session_replication_role = replica")
            for table, columns, frame_of in (
                (
                    "battles_battle",
                    battle_columns,
                    lambda s: pd.DataFrame(
                        {
                            "id": ids[s],
                            "question_id": question.to_numpy()[s],
                            "model_a_id": model_a[s],
                            "model_b_id": model_b[s],
                            "anony": "t",
                            "source": "arena",
                            "language": meta["language"][s],
                            "turn": meta["turn"][s],
                            "prompt_chars": meta["prompt_chars"][s],
                            "conversation_a": "[]",
                            "conversation_b": "[]",
                            "discarded": "[]",
                            "in_release_pool": np.where(pool[s], "t", "f"),
                            "created_at": created_text[s],
                        }
                    ),
                ),
                (
                    "battles_battlestyle",
                    "battle_id, " + ", ".join(STYLE_COLUMNS),
                    lambda s: pd.DataFrame({"battle_id": ids[s], **{c: meta[c][s] for c in STYLE_COLUMNS}}),
                ),
                (
                    "battles_vote",
                    vote_columns,
                    lambda s: pd.DataFrame(
                        {
                            "id": ids[s],
                            "battle_id": ids[s],
                            "model_a_id": model_a[s],
                            "model_b_id": model_b[s],
                            "anony": "t",
                            "winner": battles["winner"].to_numpy()[s],
                            "judge": np.char.add("judge-", meta["judge"][s].astype(str)),
                            "excluded_reason": "",
                            "created_at": voted_text[s],
                        }
                    ),
                ),
            ):
                progress(f"COPY {n:,} rows into {table}")
                with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for begin in range(0, n, chunk):
                        part = frame_of(slice(begin, begin + chunk))
                        copy.write(part.to_csv(sep="\t", header=False, index=False))
            for table in ("battles_battle", "battles_vote"):
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
            cursor.execute("INSERT INTO bench_dataset VALUES (%s)", [fingerprint])
            for table in watched:
                cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
    copied = time.perf_counter() - started
    # As autovacuum would leave them: statistics for the planner, a visibility map for index-only scans.
    with connection.cursor() as cursor:
        for table in ("battles_battle", "battles_vote", "providers_arenamodel"):
            cursor.execute(f"VACUUM (ANALYZE) {table}")
    return {"reused": False, "seconds": time.perf_counter() - started, "copy_seconds": copied}


def database_size_mib() -> float:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_database_size(current_database())")
        return cursor.fetchone()[0] / 2**20


def reset_runs() -> None:
    """No runs, so the first one timed reads every vote; no kept columns or notes of changes."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE leaderboard_modelrating, leaderboard_ratingrun, leaderboard_keptcolumnspart, "
            "leaderboard_countedvotechange RESTART IDENTITY CASCADE"
        )


# Workers: each runs one measured step in its own process and writes a JSON result.


def worker_engine(args) -> dict:
    import pandas as pd

    sys.path.insert(0, str(ROOT))
    from ratings_engine import bradley_terry, counts

    battles = pd.read_parquet(args.data)
    with Measure() as total:
        table_counts = counts.aggregate(battles)
        aggregated = time.perf_counter() - total.start
        table = bradley_terry.compute_ratings(table_counts, bootstrap_rounds=args.bootstrap, seed=args.seed)
    frame = table.ratings
    result = total.as_dict()
    result.update(
        ratings=_series(frame.index, frame["rating"]),
        sandwich=[_series(frame.index, frame["sandwich_lower"]), _series(frame.index, frame["sandwich_upper"])],
        aggregate_seconds=aggregated,
        cells=len(table_counts),
    )
    if args.bootstrap:
        result["bootstrap"] = [_series(frame.index, frame["ci_lower"]), _series(frame.index, frame["ci_upper"])]
    return result


def _timed(steps: list, owner, name: str, label: str) -> bool:
    """Replace owner.name (a module's function or a class's method) by a wrapper that appends
    (label, seconds) to `steps` on every call: the code measured is the project's own, called
    where it is called, and only timed. False, and nothing wrapped, when there is no such name
    (a private step renamed since): the caller reports it rather than stopping."""
    original = getattr(owner, name, None)
    if original is None:
        return False

    def wrapper(*a, **k):
        started = time.perf_counter()
        try:
            return original(*a, **k)
        finally:
            steps.append((label, time.perf_counter() - started))

    setattr(owner, name, wrapper)
    return True


def _summed(steps: list[tuple[str, float]]) -> dict[str, float]:
    split: dict[str, float] = {}
    for step, seconds in steps:
        split[step] = split.get(step, 0.0) + seconds
    return split


def worker_recompute(args) -> dict:
    """recompute() five times on the loaded database, timing its steps without changing them.

    cold: the first run, which plays the online Elo over every vote and reads every counted
    vote; warm, full read: the next one reading every counted vote again; warm: the next one
    as the hourly task runs, continuing the online Elo from the run before and starting from
    the columns it kept in the database (leaderboard/kept_columns.py); warm, 1% new: the same
    after 1% more votes were cast (taken out again afterwards); overall only: a run of the
    overall category alone (the main leaderboard).
    """
    _setup_django(args.database_url)
    from django.db import connection

    from leaderboard import categories, counting, services
    from leaderboard.models import ModelRating
    from providers.models import ArenaModel
    from ratings_engine import bradley_terry, style_control

    # Wrap the module attributes recompute() calls; everything else (run bookkeeping,
    # building rows, writes) is the remainder.
    steps: list[tuple[str, float]] = []
    timed = partial(_timed, steps)
    timed(services, "read_votes", "sql: counted votes, one pass")
    timed(categories, "over_prompt_limit", "sql: duplicate prompts")
    timed(counting, "over_daily_cap_mask", "per-voter cap")
    timed(services, "_online_elo", "online Elo (sql + replay)")
    timed(bradley_terry, "compute_ratings", "engine: Bradley-Terry")
    timed(style_control, "compute_style_controlled", "engine: style control")
    connection.ensure_connection()

    def measured_run(label, full_read=False):
        steps.clear()
        with Measure() as measured:
            run = services.recompute(bootstrap_rounds=args.bootstrap, seed=args.seed, full_read=full_read)
        result = measured.as_dict()
        result.update(
            label=label,
            steps=_summed(steps),
            categories=sorted(set(run.ratings.values_list("category", flat=True))),
            rating_rows=run.ratings.count(),
            votes_read=(run.parameters.get("kept_columns") or {}).get("read"),
        )
        return run, result

    first, cold = measured_run("cold")
    _, full = measured_run("warm, full read", full_read=True)
    run, warm = measured_run("warm")
    added = cast_more_votes(share=0.01)
    try:
        _, new = measured_run("warm, 1% new")
    finally:
        take_out_votes_after(added)
    every = services.categories
    services.categories = lambda dedup=None: [categories.Category("overall", "Overall")]
    try:
        _, overall = measured_run("overall only")
    finally:
        services.categories = every

    name_of = dict(ArenaModel.objects.values_list("pk", "name"))
    rows = list(
        ModelRating.objects.filter(run=run, category="overall").values_list(
            "arena_model_id", "rating", "ci_lower", "ci_upper", "sandwich_lower", "sandwich_upper"
        )
    )
    keys = [name_of[r[0]] for r in rows]
    result = {"runs": [cold, warm, new, full, overall]}
    result.update(
        ratings=_series(keys, [r[1] for r in rows]),
        bootstrap=[_series(keys, [r[2] for r in rows]), _series(keys, [r[3] for r in rows])],
        sandwich=[_series(keys, [r[4] for r in rows]), _series(keys, [r[5] for r in rows])],
        vote_count=run.vote_count,
    )
    return result


def cast_more_votes(*, share: float) -> int:
    """Copies of the first `share` of the battles and votes (with their styles), cast now, as
    the hour before an hourly run brings them: written with the change-note triggers on, as
    the site writes them. Returns the last battle id before them.

    Most are cast by the voters of the copied votes, voters who voted before (about one new
    vote each); every NEW_VOTER_EVERY-th by a voter never seen before, NEW_VOTER_VOTES each,
    so the anomalous-voter test has both kinds to go on with: kept voters gaining a vote, and
    new voters reaching its minimum of votes."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT max(id), count(*) FROM battles_battle")
        last, count = cursor.fetchone()
        n = max(1, int(count * share))
        battle = (
            "id, question_id, model_a_id, model_b_id, anony, source, language, turn, prompt_chars, "
            "conversation_a, conversation_b, discarded, in_release_pool, created_at"
        )
        copied = battle.replace("id, question_id", "id + %(last)s, 'again-' || question_id").replace(
            "created_at", "now()"
        )
        cursor.execute(
            f"INSERT INTO battles_battle ({battle}) SELECT {copied} FROM battles_battle WHERE id <= %(n)s",
            {"last": last, "n": n},
        )
        style = "battle_id, " + ", ".join(STYLE_COLUMNS)
        cursor.execute(
            f"INSERT INTO battles_battlestyle ({style}) SELECT battle_id + %(last)s, {', '.join(STYLE_COLUMNS)} "
            "FROM battles_battlestyle WHERE battle_id <= %(n)s",
            {"last": last, "n": n},
        )
        vote = "id, battle_id, model_a_id, model_b_id, anony, winner, judge, excluded_reason, created_at"
        copied = (
            vote.replace("id, battle_id", "id + %(last)s, battle_id + %(last)s")
            .replace(
                "judge",
                "CASE WHEN id %% %(every)s = 0 THEN 'judge-new-' || (id / (%(every)s * %(each)s)) ELSE judge END",
            )
            .replace("created_at", "now()")
        )
        cursor.execute(
            f"INSERT INTO battles_vote ({vote}) SELECT {copied} FROM battles_vote WHERE battle_id <= %(n)s",
            {"last": last, "n": n, "every": NEW_VOTER_EVERY, "each": NEW_VOTER_VOTES},
        )
    return last


def take_out_votes_after(last: int) -> None:
    """The data set as it was loaded, so the next benchmark finds it unchanged."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table, column in (("battles_vote", "battle_id"), ("battles_battlestyle", "battle_id")):
            cursor.execute(f"DELETE FROM {table} WHERE {column} > %s", [last])
        cursor.execute("DELETE FROM battles_battle WHERE id > %s", [last])


def restore_loaded(votes: int) -> None:
    """The data set as loaded: no votes after the loaded ones, no voter flagged and no vote
    excluded for it, no kept anomalous-voter state (the hourly runs change all three)."""
    from django.db import connection

    from battles import anomaly_detection
    from battles.models import ExclusionReason, FlaggedVoter

    take_out_votes_after(votes)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE battles_vote SET excluded_reason = '' WHERE excluded_reason = %s", [ExclusionReason.FLAGGED_USER]
        )
    FlaggedVoter.objects.all().delete()
    anomaly_detection.forget_state()


def worker_hourly(args) -> dict:
    """leaderboard.tasks.recompute_ratings, the hourly task, called as Celery's worker calls it,
    three times in this one process on the loaded database, with anomaly detection on as in
    production: first (no run and no kept anomaly state yet: the test reads every vote and
    keeps its state, the recomputation replays the online Elo and keeps its columns), next
    with nothing new, and next after 1% more votes were cast (cast_more_votes; taken out again
    afterwards, with the flags the runs made). Each run's phases are timed by wrapping the
    functions the task calls; the peak memory is split at the end of the anomaly test."""
    # Before Django reads its settings: detection on and the rounds asked for, whatever the
    # calling environment says.
    os.environ["ARENA_ANOMALY_DETECTION"] = "1"
    os.environ["ARENA_BOOTSTRAP_ROUNDS"] = str(args.bootstrap)
    _setup_django(args.database_url)
    from django.conf import settings
    from django.db import connection

    from battles import anomaly_detection, anomaly_state
    from leaderboard import counting, kept_columns, services, tasks
    from leaderboard.models import RatingRun
    from ratings_engine import bradley_terry, style_control

    if not (settings.ARENA_ANOMALY_DETECTION and settings.ARENA_BOOTSTRAP_ROUNDS == args.bootstrap):
        raise SystemExit("the hourly task must run with anomaly detection on and the rounds asked for")
    steps: list[tuple[str, float]] = []
    marks: dict = {}
    detect = anomaly_detection.detect_anomalous_voters

    def detect_marked(*a, **k):
        report = detect(*a, **k)
        # The test's peak, then a fresh mark for the recomputation's.
        marks.update(anomaly_hwm=_status_kib("VmHWM"), anomaly_rss=_status_kib("VmRSS"), report=report)
        _reset_peak()
        return report

    anomaly_detection.detect_anomalous_voters = detect_marked
    phases = [
        (anomaly_detection, "detect_anomalous_voters", "test"),
        (anomaly_detection, "_take_notes", "test: notes taken"),
        (anomaly_state, "loads", "test: kept state decoded"),
        (anomaly_detection, "_update", "test: notes applied (re-reads included)"),
        (anomaly_detection, "_tested_counts", "test: vote counts of judges not kept"),
        (anomaly_detection, "_reread", "test: re-read voters' votes"),
        (anomaly_detection, "_build_all", "test: every vote read"),
        (anomaly_state, "dumps", "test: state encoded"),
        (anomaly_state, "evidence", "test: evidence"),
        (anomaly_detection, "exclude_votes_of", "test: flagged voters' votes excluded"),
        (services, "recompute", "recompute"),
        (services, "_online_elo", "recompute: online Elo"),
        (services, "read_votes", "recompute: read, counted votes"),
        (services, "duplicate_prompts", "recompute: read, duplicate prompts"),
        (counting, "over_daily_cap_mask", "recompute: per-voter cap"),
        (services, "fit_categories", "recompute: fits"),
        (bradley_terry, "compute_ratings", "recompute: fits, Bradley-Terry (each fit's wall)"),
        (style_control, "compute_style_controlled", "recompute: fits, style control"),
        (services, "rated_rows", "recompute: rows built"),
        (kept_columns.KeptColumns, "finish", "recompute: kept columns written"),
        (services, "publish", "recompute: publish"),
    ]
    untimed = [label for owner, name, label in phases if not _timed(steps, owner, name, label)]
    connection.ensure_connection()

    def hourly_run(label: str) -> dict:
        steps.clear()
        marks.clear()
        load = os.getloadavg()[0]
        with Measure() as measured:
            pk = tasks.recompute_ratings()
        end_hwm = _status_kib("VmHWM")
        run = RatingRun.objects.get(pk=pk)
        report = marks["report"]
        result = measured.as_dict()
        result.update(
            label=label,
            steps=_summed(steps),
            peak_mib=max(0, max(marks["anomaly_hwm"], end_hwm) - measured.rss_before) / 1024,
            test_peak_mib=max(0, marks["anomaly_hwm"] - measured.rss_before) / 1024,
            recompute_peak_mib=max(0, end_hwm - marks["anomaly_rss"]) / 1024,
            load=[load, os.getloadavg()[0]],
            categories=len(run.parameters["categories"]),
            bootstrap_rounds=run.parameters["bootstrap_rounds"],
            votes_counted=run.vote_count,
            recompute_votes_read=(run.parameters.get("kept_columns") or {}).get("read"),
            tested=report.tested,
            flagged=len(report.flagged),
            votes_excluded=report.votes_excluded,
            test_incremental=report.incremental,
            test_votes_read=report.votes_read,
            kept_state_mib=_kept_state_bytes() / 2**20,
        )
        return result

    votes = _loaded_votes()
    restore_loaded(votes)  # should an earlier run have stopped halfway
    reset_runs()
    runs = [hourly_run("first"), hourly_run("next, nothing new")]
    cast_more_votes(share=0.01)
    try:
        runs.append(hourly_run("next, 1% new"))
        runs[-1]["new_votes"] = _loaded_votes(everything=True) - votes
    finally:
        restore_loaded(votes)
    return {"runs": runs, "untimed": untimed}


def _kept_state_bytes() -> int:
    """The size of the anomalous-voter test's kept state, which every run with new votes
    reads and writes whole."""
    from django.db import connection

    from battles import anomaly_detection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT coalesce(octet_length(data), 0) FROM {anomaly_detection.STATE_TABLE}")
        row = cursor.fetchone()
    return row[0] if row else 0


def _loaded_votes(*, everything: bool = False) -> int:
    """The votes the benchmark loaded (ids 1 to n, as its data set's fingerprint says), or
    every vote now."""
    from django.db import connection

    with connection.cursor() as cursor:
        if everything:
            cursor.execute("SELECT count(*) FROM battles_vote")
            return cursor.fetchone()[0]
        cursor.execute("SELECT fingerprint FROM bench_dataset")
        (fingerprint,) = cursor.fetchone()
    return int(dict(part.split("=", 1) for part in fingerprint.split()[1:])["votes"])


def worker_fschat(args) -> dict:
    import types

    import numpy as np
    import pandas as pd

    # elo_analysis imports, at module level, plotting and log-reading helpers that the two
    # functions measured here never call; fastchat.model's package __init__ would import
    # torch. Stand-ins for those names keep the measured code FastChat's own, unchanged.
    stubs = {
        "plotly": {},
        "plotly.express": {},
        "fastchat.model": {},
        "fastchat.model.model_registry": {"get_model_info": None},
        "fastchat.serve.monitor.basic_stats": {"get_log_files": None},
        "fastchat.serve.monitor.clean_battle_data": {"clean_battle_data": None},
    }
    for name, attributes in stubs.items():
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        sys.modules[name] = module
    import warnings

    from fastchat.serve.monitor.elo_analysis import compute_elo_mle_with_tie, get_bootstrap_result

    battles = pd.read_parquet(args.data)
    np.random.seed(args.seed)  # pandas' sample() draws from numpy's global generator
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Measure() as fit:
            rating = compute_elo_mle_with_tie(battles)
        with Measure() as boot:
            samples = get_bootstrap_result(battles, compute_elo_mle_with_tie, num_round=args.rounds)
    result = fit.as_dict()
    result.update(
        fit_seconds=fit.wall,
        fit_peak_mib=fit.peak_rise_mib,
        bootstrap_rounds_measured=args.rounds,
        bootstrap_seconds_measured=boot.wall,
        bootstrap_peak_mib=boot.peak_rise_mib,
        peak_mib=max(fit.peak_rise_mib, boot.peak_rise_mib),
        ratings=_series(rating.index, rating.to_numpy()),
        warnings=sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0][:120]}" for w in caught}),
    )
    if args.rounds >= 100:
        result["bootstrap"] = [
            _series(samples.columns, samples.quantile(0.025).to_numpy()),
            _series(samples.columns, samples.quantile(0.975).to_numpy()),
        ]
    return result


def worker_arena_rank(args) -> dict:
    import numpy as np
    import pandas as pd
    from arena_rank.models.bradley_terry import BradleyTerry
    from arena_rank.utils.data_utils import PairDataset

    battles = pd.read_parquet(args.data)
    # arena-rank's bootstrap uses a multiprocessing pool; forking a process that has started JAX's
    # threads deadlocks, so the pool's workers are started by a fork server instead.
    multiprocessing.set_start_method("forkserver", force=True)

    def once(**options):
        dataset = PairDataset.from_pandas(battles)
        model = BradleyTerry(n_competitors=len(dataset.competitors))
        out = model.compute_ratings_and_cis(dataset, significance_level=0.05, **options)
        return {key: np.asarray(value) if key != "competitors" else value for key, value in out.items()}

    if args.method == "sandwich":
        options = {"ci_method": "sandwich"}
    else:
        options = {"ci_method": "bootstrap", "num_bootstrap": args.rounds, "seed": args.seed}
    with Measure() as first:
        out = once(**options)
    result = first.as_dict()
    names = out["competitors"]
    result.update(
        ratings=_series(names, out["ratings"]),
        intervals=[_series(names, out["rating_lower"]), _series(names, out["rating_upper"])],
        rounds=args.rounds if args.method == "bootstrap" else 0,
        workers=os.cpu_count(),
    )
    if args.method == "sandwich":
        # A second call in the same process: JAX's start-up and the compilations it can reuse are paid.
        with Measure() as second:
            once(**options)
        result["second_call"] = second.as_dict()
    return result


WORKERS = {
    "engine": worker_engine,
    "recompute": worker_recompute,
    "hourly": worker_hourly,
    "fschat": worker_fschat,
    "arena-rank": worker_arena_rank,
}


# Orchestration (project interpreter).


def peers_python(rebuild: bool = False) -> Path:
    python = PEERS_VENV / "bin" / "python"
    marker = PEERS_VENV / ".installed"
    wanted = " ".join(PEER_NO_DEPS + PEER_PACKAGES)
    if not rebuild and marker.exists() and marker.read_text() == wanted:
        return python
    progress(f"creating the benchmark-only environment {PEERS_VENV.relative_to(ROOT)} (peers: {wanted})")
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--clear", str(PEERS_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(pip + ["--no-deps"] + PEER_NO_DEPS, check=True)
    subprocess.run(pip + PEER_PACKAGES, check=True)
    marker.write_text(wanted)
    return python


def peer_versions(python: Path) -> str:
    code = (
        "import importlib.metadata as m; print(', '.join(f'{p} {m.version(p)}' for p in "
        "['fschat', 'arena-rank', 'jax', 'scikit-learn', 'numpy', 'pandas']))"
    )
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def run_worker(python: Path, kind: str, data: Path, args, timeout: float, env=None, **extra) -> dict:
    """Run one worker in a fresh process; returns its result or {"error": ...}."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = Path(f.name)
    command = [str(python), str(Path(__file__).resolve()), "--worker", kind, "--data", str(data), "--out", str(out)]
    command += ["--bootstrap", str(args.bootstrap), "--seed", str(args.seed), "--database-url", args.database_url]
    for key, value in extra.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    environment = dict(env or os.environ)
    environment.setdefault("JAX_PLATFORMS", "cpu")
    process = subprocess.Popen(command, env=environment, start_new_session=True)
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)  # the worker and any processes it forked, nothing else
        process.wait()
        out.unlink(missing_ok=True)
        return {"error": f"timed out after {timeout:.0f} s"}
    try:
        if code != 0:
            return {"error": f"worker exited with status {code}"}
        return json.loads(out.read_text())
    finally:
        out.unlink(missing_ok=True)


def memory_available_mib() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return float("inf")


def max_difference(ours: dict, theirs: dict, our_bounds=None, their_bounds=None) -> tuple[float, float | None]:
    """Max |rating difference| after centring both at mean 1000 on the models they share, and
    the same for interval bounds (shifted with the ratings)."""
    shared = sorted(set(ours) & set(theirs))
    if not shared:
        return math.nan, None
    shift_ours = 1000 - sum(ours[k] for k in shared) / len(shared)
    shift_theirs = 1000 - sum(theirs[k] for k in shared) / len(shared)
    rating = max(abs((ours[k] + shift_ours) - (theirs[k] + shift_theirs)) for k in shared)
    bounds = None
    if our_bounds and their_bounds:
        bounds = max(
            abs((ob[k] + shift_ours) - (tb[k] + shift_theirs))
            for ob, tb in zip(our_bounds, their_bounds, strict=True)
            for k in shared
        )
    return rating, bounds


def benchmark_size(votes: int, args, peers: Path | None, rows: list, findings: list) -> None:
    import numpy as np

    progress(f"=== {votes:,} votes: generating (seed {args.seed})")
    started = time.perf_counter()
    battles, meta = generate(votes, args.seed)
    generated = time.perf_counter() - started
    ties = battles["winner"].str.startswith("tie").mean()
    per_model = np.bincount(np.concatenate([meta["a"], meta["b"]]), minlength=MODELS)
    pairs = len(set(zip(np.minimum(meta["a"], meta["b"]), np.maximum(meta["a"], meta["b"]), strict=True)))
    findings.append(
        f"{votes:,} votes: generated in {generated:.1f} s; ties {ties:.1%} (Davidson nu {meta['nu']:.3f}); "
        f"votes per model min {per_model.min():,} / median {int(np.median(per_model)):,} / max {per_model.max():,}; "
        f"{pairs:,} of {MODELS * (MODELS - 1) // 2:,} model pairs compared"
    )
    workdir = Path(tempfile.mkdtemp(prefix="bench-ratings-"))
    data = workdir / "battles.parquet"
    battles.to_parquet(data, index=False)
    python = Path(sys.executable)
    results: dict[str, dict] = {}
    label = f"{votes / 1e6:g}M"

    if args.methods & {"recompute", "hourly"}:
        fingerprint = f"v{DATA_VERSION} votes={votes} seed={args.seed} models={MODELS}"
        progress("loading the benchmark database")
        loaded = load_database(args.database_url, battles, meta, fingerprint)
        if loaded["reused"]:
            findings.append(f"{label}: database already held this data set (loaded in an earlier run)")
        else:
            findings.append(
                f"{label}: data load into PostgreSQL {loaded['seconds']:.1f} s "
                f"(COPY of battles + votes {loaded['copy_seconds']:.1f} s, then VACUUM ANALYZE); not timed below"
            )
        restore_loaded(votes)
        findings.append(f"{label}: benchmark database {database_size_mib():,.0f} MiB on disk after the load")
    if "recompute" in args.methods:
        reset_runs()
        progress("timing leaderboard.services.recompute()")
        results["recompute"] = run_worker(
            python, "recompute", data, args, args.timeout, env=_django_environment(args.database_url)
        )
    if "hourly" in args.methods:
        progress("timing the hourly task, leaderboard.tasks.recompute_ratings (test + recompute)")
        results["hourly"] = run_worker(
            python, "hourly", data, args, args.timeout, env=_django_environment(args.database_url)
        )
        if "error" not in results["hourly"]:
            findings.append(
                f"{label}: benchmark database {database_size_mib():,.0f} MiB on disk after the hourly runs "
                "(their runs, kept columns and kept state included)"
            )
    del battles, meta
    gc.collect()

    if "engine" in args.methods:
        progress(f"timing the engine alone ({args.bootstrap} bootstrap rounds)")
        results["engine"] = run_worker(python, "engine", data, args, args.timeout)
        progress("timing the engine alone (sandwich only)")
        sandwich_args = argparse.Namespace(**{**vars(args), "bootstrap": 0})
        results["engine-sandwich"] = run_worker(python, "engine", data, sandwich_args, args.timeout)
    if peers and "arena-rank" in args.methods:
        progress("timing arena-rank (sandwich)")
        results["arena-sandwich"] = run_worker(peers, "arena-rank", data, args, args.timeout, method="sandwich")
        rounds = min(args.bootstrap, args.arena_rank_rounds)
        progress(f"timing arena-rank (bootstrap, {rounds} rounds)")
        results["arena-bootstrap"] = run_worker(
            peers, "arena-rank", data, args, args.timeout, method="bootstrap", rounds=rounds
        )
    if peers and "fschat" in args.methods:
        need = votes * 2 * MODELS * 8 / 2**20 * 1.6 + 2000  # its dense design matrix, and then some
        if memory_available_mib() < need:
            results["fschat"] = {"error": f"skipped: needs about {need / 1024:.0f} GiB, less is available"}
        else:
            progress(f"timing fschat (full fit + {args.fschat_rounds} bootstrap rounds)")
            results["fschat"] = run_worker(peers, "fschat", data, args, args.timeout, rounds=args.fschat_rounds)
    data.unlink()
    workdir.rmdir()

    engine = results.get("engine", {})
    optimum = engine.get("ratings")
    engine_wall = engine.get("wall")

    def add(method: str, result: dict, wall: float | None, peak, difference, bounds, note: str) -> None:
        ratio = f"{wall / engine_wall:.1f}x" if wall and engine_wall else "-"
        rows.append(
            [
                method,
                label,
                "-" if wall is None else f"{wall:.2f}",
                "-" if peak is None else f"{peak:.0f}",
                "-" if difference is None or math.isnan(difference) else f"{difference:.3g}",
                "-" if bounds is None else f"{bounds:.3g}",
                ratio,
                note,
            ]
        )

    def compare(result: dict, kind: str, key: str) -> tuple:
        if not optimum or "ratings" not in result:
            return None, None
        ours = engine.get(kind)
        return max_difference(optimum, result["ratings"], ours, result.get(key))

    recompute = results.get("recompute")
    if recompute is not None and "error" in recompute:
        add("ours: recompute (PostgreSQL -> stored run)", recompute, None, None, None, None, recompute["error"])
    elif recompute is not None:
        difference, bounds = compare(recompute, "sandwich", "sandwich")
        for run in recompute["runs"]:
            what = {
                "cold": "all categories, first run",
                "warm": "all categories, next run",
                "warm, 1% new": "all categories, next run, 1% new votes",
                "warm, full read": "all categories, next run, full read",
                "overall only": "overall only, next run",
            }[run["label"]]
            note = f"{len(run['categories'])} categories" if run["label"] != "overall only" else "the main leaderboard"
            if run["label"] == "cold":
                note += "; online Elo replays every vote"
            if run["label"].startswith("warm") and run["label"] != "warm, full read":
                note += f"; from the kept columns, {run['votes_read']:,} votes read"
            if run["label"] == "warm, full read":
                note += "; every vote read"
            add(f"ours: recompute, {what}", recompute, run["wall"], run["peak_mib"], difference, bounds, note)
    hourly = results.get("hourly")
    if hourly is not None and "error" in hourly:
        add("ours: hourly task (test + recompute)", hourly, None, None, None, None, hourly["error"])
    elif hourly is not None:
        for run in hourly["runs"]:
            steps = run["steps"]
            source = "from the kept state" if run["test_incremental"] else "every vote read"
            note = (
                f"test {steps['test']:.2f} s ({source}, {run['test_votes_read']:,} votes read, "
                f"+{run['test_peak_mib']:.0f} MiB) + recompute {steps['recompute']:.2f} s "
                f"(+{run['recompute_peak_mib']:.0f} MiB); load {run['load'][0]:.1f}-{run['load'][1]:.1f}"
            )
            add(f"ours: hourly task, {run['label']}", hourly, run["wall"], run["peak_mib"], None, None, note)
    if "engine" in results:
        result = results["engine"]
        if "error" in result:
            add("ours: engine alone", result, None, None, None, None, result["error"])
        else:
            add(
                f"ours: engine alone, bootstrap {args.bootstrap} + sandwich",
                result,
                result["wall"],
                result["peak_mib"],
                0.0,
                None,
                f"the optimum; aggregate() {result['aggregate_seconds']:.2f} s of it",
            )
        result = results["engine-sandwich"]
        if "error" not in result:
            difference, bounds = compare(result, "sandwich", "sandwich")
            add("ours: engine alone, sandwich only", result, result["wall"], result["peak_mib"], difference, bounds, "")
    if "arena-sandwich" in results:
        result = results["arena-sandwich"]
        if "error" in result:
            add("arena-rank: sandwich", result, None, None, None, None, result["error"])
        else:
            difference, bounds = compare(result, "sandwich", "intervals")
            add("arena-rank: sandwich", result, result["wall"], result["peak_mib"], difference, bounds, "first call")
            second = result["second_call"]
            add(
                "arena-rank: sandwich",
                result,
                second["wall"],
                second["peak_mib"],
                difference,
                bounds,
                "second call, same process",
            )
    if "arena-bootstrap" in results:
        result = results["arena-bootstrap"]
        method = f"arena-rank: bootstrap {args.bootstrap}"
        if "error" in result:
            add(method, result, None, None, None, None, result["error"])
        else:
            difference, bounds = compare(result, "bootstrap", "intervals")
            rounds = result["rounds"]
            wall = result["wall"]
            note = f"{result['workers']} worker processes, each <= {result['children_peak_mib']:.0f} MiB RSS"
            if rounds < args.bootstrap:
                wall = wall * args.bootstrap / rounds
                note = f"EXTRAPOLATED from {rounds} rounds ({result['wall']:.1f} s); " + note
                bounds = None
            add(method, result, wall, result["peak_mib"], difference, bounds, note)
    if "fschat" in results:
        result = results["fschat"]
        method = f"fschat 0.2.36: MLE + bootstrap {args.bootstrap}"
        if "error" in result:
            add(method, result, None, None, None, None, result["error"])
        else:
            difference, bounds = compare(result, "bootstrap", "bootstrap")
            rounds = result["bootstrap_rounds_measured"]
            per_round = result["bootstrap_seconds_measured"] / rounds
            wall = result["fit_seconds"] + per_round * args.bootstrap
            note = f"fit {result['fit_seconds']:.1f} s + {per_round:.1f} s/round"
            if rounds < args.bootstrap:
                note = f"EXTRAPOLATED from {rounds} rounds; " + note
            add(method, result, wall, result["peak_mib"], difference, bounds, note)
            add(
                "fschat 0.2.36: MLE only (compute_elo_mle_with_tie)",
                result,
                result["fit_seconds"],
                result["fit_peak_mib"],
                difference,
                None,
                "no interval",
            )
            for warning in result.get("warnings", []):
                findings.append(f"{label} fschat warning: {warning}")

    # The targets.
    for run in results.get("recompute", {}).get("runs", []):
        steps = ", ".join(f"{step} {seconds:.2f}" for step, seconds in sorted(run["steps"].items()))
        findings.append(
            f"{label} recompute, {run['label']}: {run['wall']:.2f} s ({', '.join(run['categories'])}); steps (s): "
            f"{steps} (the style fit's warm start is a plain fit, counted under Bradley-Terry as well; the style "
            "fit runs beside the bootstraps, so their times overlap)"
        )
        if run["label"] in ("warm", "warm, 1% new", "warm, full read", "overall only"):
            verdict = "met" if run["wall"] < 5 else "NOT met"
            findings.append(f"{label}: target recompute < 5 s, {run['label']}: {verdict} ({run['wall']:.2f} s)")
    if results.get("hourly", {}).get("untimed"):
        untimed = ", ".join(results["hourly"]["untimed"])
        findings.append(f"{label} hourly task: phases not found, so not timed: {untimed}")
    for run in results.get("hourly", {}).get("runs", []):
        steps = ", ".join(f"{step} {seconds:.2f}" for step, seconds in run["steps"].items())
        findings.append(
            f"{label} hourly task, {run['label']}: {run['wall']:.2f} s, peak +{run['peak_mib']:.0f} MiB; "
            f"{run['categories']} categories, {run['bootstrap_rounds']} bootstrap rounds, {run['votes_counted']:,} "
            f"votes counted ({run['recompute_votes_read']:,} read by the recomputation); the test: "
            f"{run['tested']:,} voters tested, {run['flagged']:,} over the threshold, {run['votes_excluded']:,} votes "
            f"excluded, kept state {run['kept_state_mib']:.1f} MiB; load average {run['load'][0]:.1f} before, "
            f"{run['load'][1]:.1f} after; phases (s, nested "
            f"ones within their parent's time): {steps}"
        )
        if run["label"] == "next, 1% new":
            new = run["new_votes"]
            wall, test = run["wall"], run["steps"]["test"]
            findings.append(
                f"{label}: target hourly task < 5 s at 3M with 1% new votes: {'met' if wall < 5 else 'NOT met'} "
                f"({wall:.2f} s, {new:,} new votes)"
            )
            findings.append(
                f"{label}: target anomaly test < 0.5 s at 3M with 30,000 new votes: "
                f"{'met' if test < 0.5 else 'NOT met'} ({test:.2f} s, {new:,} new votes)"
            )
    peer_walls = {}
    for key, kind in (("arena-sandwich", "sandwich"), ("arena-bootstrap", "bootstrap"), ("fschat", "bootstrap")):
        result = results.get(key, {})
        if "error" in result or not result:
            continue
        if key == "arena-sandwich":
            wall = min(result["wall"], result["second_call"]["wall"])
        elif key == "arena-bootstrap":
            wall = result["wall"] * args.bootstrap / result["rounds"]
        else:
            per_round = result["bootstrap_seconds_measured"] / result["bootstrap_rounds_measured"]
            wall = result["fit_seconds"] + per_round * args.bootstrap
        peer_walls.setdefault(kind, []).append((wall, key))
    for kind, ours_key in (("sandwich", "engine-sandwich"), ("bootstrap", "engine")):
        ours = results.get(ours_key, {})
        if kind in peer_walls and "wall" in ours:
            wall, key = min(peer_walls[kind])
            ratio = wall / ours["wall"]
            verdict = "met" if ratio >= 10 else "NOT met"
            findings.append(
                f"{label}: target engine >= 10x faster than the fastest peer, {kind} intervals: {verdict} "
                f"({key} {wall:.2f} s / ours {ours['wall']:.2f} s = {ratio:.1f}x)"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--votes", default="1000000,3000000", help="comma-separated sizes (default 1M and 3M)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap rounds (default 1000)")
    parser.add_argument("--seed", type=int, default=20250601, help="data and bootstrap seed")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument(
        "--methods",
        default="recompute,hourly,engine,arena-rank,fschat",
        help="comma-separated subset of recompute, hourly, engine, arena-rank, fschat",
    )
    parser.add_argument("--fschat-rounds", type=int, default=2, help="fschat bootstrap rounds timed, then extrapolated")
    parser.add_argument(
        "--arena-rank-rounds", type=int, default=50, help="arena-rank bootstrap rounds timed (extrapolated if fewer)"
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds before a measured step is killed")
    parser.add_argument("--rebuild-peers", action="store_true", help="recreate benchmarks/.venv-peers")
    # Internal: one measured step in this process.
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--method", default="sandwich", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        result = WORKERS[args.worker](args)
        Path(args.out).write_text(json.dumps(result))
        return 0

    args.methods = {m.strip() for m in args.methods.split(",") if m.strip()}
    sizes = [int(float(v)) for v in args.votes.split(",")]
    peers = None
    if args.methods & {"arena-rank", "fschat"}:
        peers = peers_python(rebuild=args.rebuild_peers)
    if args.methods & {"recompute", "hourly"}:
        ensure_database(args.database_url)
        _setup_django(args.database_url)

    rows: list = []
    findings: list[str] = []
    began = time.perf_counter()
    for votes in sizes:
        benchmark_size(votes, args, peers, rows, findings)

    header = ["method", "votes", "wall s", "peak MiB", "max |Δ| Elo vs optimum", "max |Δ| 95% bound", "vs engine"]
    header.append("notes")
    widths = [max(len(str(r[k])) for r in [header, *rows]) for k in range(len(header))]

    def line(cells):
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    print(
        f"Rating benchmark: {MODELS} models, seed {args.seed}, {args.bootstrap} bootstrap rounds, "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
    )
    if peers:
        print(f"Peers ({PEERS_VENV.relative_to(ROOT)}): {peer_versions(peers)}")
    print()
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(line(row))
    print()
    print("max |Δ| Elo: largest rating difference from our engine's exact MLE, both centred at mean 1000.")
    print("max |Δ| 95% bound: largest difference of the interval bounds from ours of the same kind (sandwich or")
    print("bootstrap; bootstrap bounds differ by Monte Carlo noise as well). vs engine: wall time / engine alone.")
    print("peak MiB: rise of the measuring process's peak RSS during the step over its RSS before it.")
    print()
    for finding in findings:
        print(f"- {finding}")
    print(f"- total benchmark time {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

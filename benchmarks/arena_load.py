"""Load benchmark of the JSON battle API: simulated voters against the site under its ASGI server.

    .venv/bin/python benchmarks/arena_load.py                      # 50 voters, 60 s a run, 2 workers
    .venv/bin/python benchmarks/arena_load.py --poll               # and the polling voters, same run
    .venv/bin/python benchmarks/arena_load.py --users 20 --workers 1 --conn-max-age 60

On a dedicated PostgreSQL database (created if missing, flushed and migrated every run) it
puts a pool of listed demo models (through the lifecycle service, as a provider's model
gets there), seeds a few thousand votes and publishes a leaderboard, then starts the site as
it runs in production, gunicorn with uvicorn's worker class (uvicorn_worker.UvicornWorker)
serving arenasite.asgi, on loopback, with answers from the demo backend at full speed
(ARENA_DEMO_CHUNK_DELAY=0), the stream log, sessions and cache on one Redis database, and
no limit on voters. A dozen battles warm the workers up (imports, the language detector's
models); then locust runs headless as a subprocess with benchmarks/locustfile_arena.py: each
user is one voter (own session cookie) who starts a battle, follows its event stream to the
end, votes, sometimes sends the same vote again and sometimes reads the leaderboard, with no
think time. That run gives the most whole battles per second the site holds.

Then, against the same server:
- with --poll, the same voters as the page was before the stream: polling the battle every
  50 ms until it is answered instead of following the stream;
- the steady run: the same voters offering a steady rate of half the most battles per
  second measured (each voter starts a battle every users / rate seconds), for the vote's
  latency at a load the site holds.

It prints, per run, from locust's final totals and the voters' own records: whole battles
per second (acknowledged votes / time from the first to the last request, ramp-up
included), p50/p99 latency and counts per endpoint (a stream's time is to its end), errors
by endpoint and status, the time from the create request to the end of answering, and
where the processor time went (gunicorn, PostgreSQL, locust, the rest of the machine, per
battle). Then the check of every vote of every run against the database: each acknowledged
vote stored exactly once with its winner, and no stored vote that was not acknowledged
(those whose answer was lost, e.g. cut when a run stopped, are counted apart); and of every
stream: each side's pieces put together are the answer its end event carries.

The peer, on the same database right after: "PostgreSQL alone", as many threads as voters,
each with its own psycopg connection, inserting one battle row and one vote row per vote
in one transaction (plain SQL, the same schema, rows copied from the battles of the run)
for the same duration: the database's own ceiling for votes per second on this machine.

The floors, last: the same streaming voters, server and locust for the same duration
against two applications that do no work, "HTTP alone" (benchmarks/http_floor.py, plain
ASGI) and "Django + DRF alone" (benchmarks/django_floor.py: the project's settings,
middleware and sessions under arenasite.asgi, views that only find the voter and answer,
an async view streaming the events). They bound what any implementation of the API, and
any in this stack, can reach on the machine with these voters.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from pathlib import Path

from support import ensure_database, progress

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "benchmarks"
LOCUSTFILE = BENCH_DIR / "locustfile_arena.py"
DEFAULT_DATABASE_URL = "postgres://arenasite:arenasite@127.0.0.1:5432/arenasite_bench_arena"
# One Redis database for the site's cache, sessions, broker and stream log, emptied each run.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"
ENDPOINTS = ["create", "stream", "poll", "vote", "vote again", "leaderboard"]
MODELS = 8
SEED_VOTES = 3000
# The targets: whole battles per second at least this share of "Django + DRF alone"
# in the same run; the vote's p99 under this at a steady half of the most battles per second.
TARGET_FLOOR_SHARE = 0.5
TARGET_VOTE_P99_MS = 100
STEADY_SHARE = 0.5


def _venv_bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


# The benchmark database.


def server_environment(args) -> dict:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="arenasite.settings",
        DATABASE_URL=args.database_url,
        DEBUG="0",
        HTTPS="0",  # plain HTTP on loopback: no redirect to https, cookies not Secure-only
        SECRET_KEY=env.get("SECRET_KEY") or "benchmark-only-secret-key",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        # Shared by the workers, as in a deployment: any worker serves any viewer's stream.
        CELERY_BROKER_URL=args.redis_url,
        CACHE_URL=args.redis_url,
        ARENA_STREAM_REDIS_URL=args.redis_url,
        ARENA_DEMO_CHUNK_DELAY=str(args.chunk_delay),
        ARENA_VOTER_DAILY_VOTES="0",
        ARENA_NETWORK_DAILY_VOTES="0",
        # The voters are simulated from one machine: the front door's limits and proof of work
        # (benchmarks/front_door.py measures those) would refuse them, not measure the site.
        ARENA_ADDRESS_DAILY_VOTES="0",
        ARENA_BATTLE_RATE_VOTER="",
        ARENA_BATTLE_RATE_ADDRESS="",
        ARENA_BATTLE_RATE_NETWORK="",
        ARENA_BATTLES_IN_FLIGHT_VOTER="0",
        ARENA_BATTLES_IN_FLIGHT_ADDRESS="0",
        ARENA_CHALLENGE="0",
        ARENA_STAFF_REQUIRE_MFA="0",
        DB_CONN_MAX_AGE=str(args.conn_max_age),
        DB_POOL_MAX_SIZE=str(args.db_pool),
        LOG_LEVEL="WARNING",
    )
    if getattr(args, "answer_db_threads", None):
        env["ARENA_ANSWER_DB_THREADS"] = str(args.answer_db_threads)
    return env


def prepare_database(args) -> list[str]:
    """Migrate, empty, then the pool of listed demo models, seeded votes and a published leaderboard."""
    os.environ.update(server_environment(args))
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from arenasite import clock
    from battles.models import Battle, BattleStyle, Vote, Winner
    from battles.style import conversation_prompt_hash
    from leaderboard import services
    from providers.lifecycle import Action, transition
    from providers.models import ArenaModel, Provider

    call_command("migrate", verbosity=0, interactive=False)
    call_command("flush", verbosity=0, interactive=False)
    provider = Provider.objects.create(
        name="Load Bench Lab", slug="load-bench-lab", website="https://load.example", contact_email="a@load.example"
    )
    models = []
    for k in range(args.models):
        model = ArenaModel.objects.create(
            provider=provider,
            name=f"bench-model-{k + 1}",
            access_kind=ArenaModel.AccessKind.OPEN_WEIGHTS,
            licence="Apache-2.0",
            is_demo=True,
            votes_counted=1000,  # the listing minimum, so the publish step is allowed
        )
        for action in (Action.SUBMIT, Action.ADMIT, Action.PUBLISH):
            transition(model_id=model.pk, action=action, actor=None, reason="load benchmark set-up")
        model.refresh_from_db()
        assert model.status == ArenaModel.Status.LISTED, model.status
        models.append(model)

    # Seeded history (imported battles, so the run's arena battles stay apart), then one
    # published run, so the leaderboard endpoint has something to serve.
    rng = random.Random(args.seed)
    now = clock.now()
    battles, votes = [], []
    for n in range(args.seed_votes):
        a, b = rng.sample(models, 2)
        question_id = f"seed-{n:06d}"
        conversation = [{"role": "user", "content": "Seeded prompt"}, {"role": "assistant", "content": "Seeded."}]
        battle = Battle(
            question_id=question_id,
            model_a=a,
            model_b=b,
            source=Battle.Source.IMPORTED,
            language="English",
            turn=1,
            prompt_chars=13,
            conversation_a=conversation,
            conversation_b=conversation,
            in_release_pool=Battle.pool_for(question_id),
            prompt_hash=conversation_prompt_hash(conversation),
            created_at=now,
        )
        battles.append(battle)
        votes.append(rng.choice(Winner.values))
    Battle.objects.bulk_create(battles, batch_size=1000)
    BattleStyle.store(battles)
    Vote.objects.bulk_create(
        [
            Vote(battle=b, model_a=b.model_a, model_b=b.model_b, winner=w, judge=f"seed-{i % 300}", created_at=now)
            for i, (b, w) in enumerate(zip(battles, votes, strict=True))
        ],
        batch_size=1000,
    )
    run = services.recompute(bootstrap_rounds=50)
    with connection.cursor() as cursor:
        for table in ("battles_battle", "battles_vote", "providers_arenamodel", "django_session"):
            cursor.execute(f"VACUUM (ANALYZE) {table}")
    progress(f"{len(models)} listed demo models, {len(votes)} seeded votes, leaderboard run {run.pk} published")
    return [m.name for m in models]


# Servers.


def ensure_redis(redis_url: str) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(redis_url)
    host, port, db = parts.hostname or "127.0.0.1", str(parts.port or 6379), parts.path.lstrip("/") or "0"
    ping = subprocess.run(["redis-cli", "-h", host, "-p", port, "ping"], capture_output=True, text=True)
    if ping.stdout.strip() != "PONG":
        progress("starting redis-server")
        subprocess.run(["redis-server", "--daemonize", "yes", "--save", ""], check=True)
        time.sleep(0.5)
    # The site's cache, sessions and stream log start empty, as the database does.
    subprocess.run(["redis-cli", "-h", host, "-p", port, "-n", db, "flushdb"], capture_output=True, check=True)


def start_server(args, out: Path, app: str = "arenasite.asgi:application", env: dict | None = None) -> subprocess.Popen:
    """The application under gunicorn with uvicorn's worker class, as the site runs in production."""
    env = {**server_environment(args), **(env or {})}
    out.mkdir(parents=True, exist_ok=True)
    command = [
        _venv_bin("gunicorn"),
        app,
        "--pythonpath",
        f"{ROOT},{BENCH_DIR}",
        "--chdir",
        str(ROOT),
        "--worker-class",
        "uvicorn_worker.UvicornWorker",
        "--workers",
        str(args.workers),
        "--bind",
        f"127.0.0.1:{args.port}",
        "--backlog",
        "4096",
        "--log-level",
        "warning",
        "--error-logfile",
        str(out / "gunicorn.log"),
        "--graceful-timeout",
        "30",
    ]
    # The application's own log (LOG_LEVEL warnings, tracebacks) goes beside gunicorn's.
    with open(out / "server.log", "a") as log:
        server = subprocess.Popen(
            command, env=env, cwd=ROOT, start_new_session=True, stdout=log, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{args.port}/healthz", timeout=2) as response:
                if response.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            stop_server(server)
            log = (out / "gunicorn.log").read_text()[-3000:]
            raise SystemExit(f"gunicorn did not become healthy on port {args.port}:\n{log}")
        time.sleep(0.25)


def stop_server(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)  # graceful: workers finish their requests and answers
        try:
            server.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def warm_up(args, battles: int = 12) -> None:
    """Battles (created and answered, never voted on) from a few threads at once, so each worker
    has imported its views and loaded the language detector before the measured run."""
    import http.cookiejar

    base = f"http://127.0.0.1:{args.port}/api/v1"
    failures: list[str] = []

    def one(_: int) -> None:
        try:
            answered_battle()
        except (OSError, ValueError, KeyError) as exc:  # the server's trouble shows in the runs
            failures.append(type(exc).__name__)

    def answered_battle() -> None:
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

        def call(url: str, body: dict | None = None) -> dict:
            data = None if body is None else json.dumps(body).encode()
            request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
            with opener.open(request, timeout=60) as response:
                return json.loads(response.read())

        battle = call(f"{base}/battles/", {"prompt": "Warm-up: explain what a load test measures."})
        deadline = time.monotonic() + 60
        while battle["status"] == "answering" and time.monotonic() < deadline:
            time.sleep(0.05)
            battle = call(f"{base}/battles/{battle['id']}/")
        try:
            call(f"{base}/leaderboard/")
        except urllib.error.HTTPError:
            pass

    threads = [threading.Thread(target=one, args=(k,)) for k in range(battles)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        progress(f"warm-up: {len(failures)} of {battles} battles failed ({', '.join(sorted(set(failures)))})")


def postgres_processes(database_url: str):
    """The postmaster, found as the parent of a backend of ours."""
    import psutil
    import psycopg

    with psycopg.connect(database_url) as connection:
        backend = connection.execute("SELECT pg_backend_pid()").fetchone()[0]
        return psutil.Process(psutil.Process(backend).ppid())


def cpu_seconds(process, *, exited_children: bool = True) -> float:
    """CPU seconds of a process and its live children, and of the children it has reaped."""
    import psutil

    total = 0.0
    try:
        times = process.cpu_times()
        total += times.user + times.system
        if exited_children:
            total += times.children_user + times.children_system
        for child in process.children(recursive=True):
            try:
                times = child.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
    except psutil.NoSuchProcess:
        pass
    return total


def machine_busy_seconds() -> float:
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def postgres_sessions(database_url: str) -> int:
    import psycopg

    with psycopg.connect(database_url) as connection:
        return connection.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()[0]


def run_locust(args, out: Path, *, mode: str = "stream", pacing: float = 0.0, spawn_rate: float = 0.0) -> float:
    """Run locust to its end; returns the CPU seconds it used (all its processes)."""
    env = dict(os.environ)
    env.update(
        ARENA_LOAD_OUT=str(out / "votes"),
        ARENA_LOAD_MODE=mode,
        ARENA_LOAD_PACING=str(pacing or ""),
        ARENA_LOAD_POLL_INTERVAL=str(args.poll_interval),
        ARENA_LOAD_REPEAT_SHARE=str(args.repeat_share),
        ARENA_LOAD_LEADERBOARD_SHARE=str(args.leaderboard_share),
    )
    command = [
        _venv_bin("locust"),
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--only-summary",
        "-u",
        str(args.users),
        "-r",
        str(spawn_rate or args.spawn_rate or args.users),
        "-t",
        f"{args.duration}s",
        "--host",
        f"http://127.0.0.1:{args.port}",
        "--csv",
        str(out / "locust"),
        "--loglevel",
        "WARNING",
        "--exit-code-on-error",
        "0",
    ]
    if args.locust_processes:
        command += ["--processes", str(args.locust_processes)]
    import resource

    out.mkdir(parents=True, exist_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(out / "locust.log", "w") as log:
        done = subprocess.run(
            command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=args.duration + 120
        )
    if done.returncode != 0:
        raise SystemExit(f"locust exited with {done.returncode}; see {out / 'locust.log'}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def measured_run(args, out: Path, server: subprocess.Popen, *, postgres=None, **locust) -> dict:
    """One locust run against a running server: its totals, records and where the CPU went."""
    import psutil

    gunicorn = psutil.Process(server.pid)
    cpu = {"server": cpu_seconds(gunicorn), "machine": machine_busy_seconds()}
    if postgres is not None:
        cpu["postgres"] = cpu_seconds(postgres)
        sessions = postgres_sessions(args.database_url)
    cpu["locust"] = run_locust(args, out, **locust)
    cpu["server"] = cpu_seconds(gunicorn) - cpu["server"]
    cpu["machine"] = machine_busy_seconds() - cpu["machine"]
    run = {"summary": read_summary(out), "records": read_records(out), "cpu": cpu}
    if postgres is not None:
        cpu["postgres"] = cpu_seconds(postgres) - cpu["postgres"]
        run["sessions"] = postgres_sessions(args.database_url) - sessions - 1
    seconds = run["summary"]["seconds"]
    # A whole battle: started, followed to its end, its vote acknowledged.
    run["battles"] = len({r["battle"] for r in run["records"]["ack"] if not r["repeat"]})
    run["rate"] = run["battles"] / seconds if seconds > 0 else 0.0
    return run


# The floors: what the same voters, server and locust reach when the application does no work.
FLOORS = {
    "HTTP alone": ("benchmarks/http_floor.py: plain ASGI, no framework", "http_floor:application", {}),
    "Django + DRF alone": (
        "benchmarks/django_floor.py: the project's settings, middleware and sessions, views that do nothing",
        "arenasite.asgi:application",
        {"DJANGO_SETTINGS_MODULE": "django_floor_settings"},
    ),
}


def floor_run(args, out: Path, app: str, env: dict) -> dict:
    """The same streaming voters and server against an application that does no work."""
    server = start_server(args, out, app=app, env=env)
    try:
        return measured_run(args, out, server, mode="stream")
    finally:
        stop_server(server)


# Reading the results.


def read_summary(out: Path) -> dict:
    """locust's final figures, as the locustfile wrote them at the end (see its docstring)."""
    summary = json.loads((out / "votes" / "summary.json").read_text())
    failures: Counter = Counter()
    for error in summary["errors"]:
        found = re.search(r"status (\d+)", error["error"])
        status = found.group(1) if found else error["error"][:80]
        failures[(error["name"], status)] += error["occurrences"]
    summary["failures"] = failures
    summary["seconds"] = (summary["last_request"] or 0) - summary["first_request"]
    return summary


def read_records(out: Path) -> dict[str, list[dict]]:
    return read_records_in(out / "votes")


def read_records_in(folder: Path) -> dict[str, list[dict]]:
    """The voters' JSON lines (votes sent and acknowledged, battles) in a folder, by kind."""
    records: dict[str, list[dict]] = defaultdict(list)
    for path in sorted(folder.glob("votes-*.jsonl")):
        with open(path) as f:
            for line in f:
                if line.strip():
                    record = json.loads(line)
                    records[record["kind"]].append(record)
    return records


def check_votes(records: dict[str, list[dict]]) -> dict:
    """Every acknowledged vote stored exactly once with its winner; nothing stored that was not acknowledged."""
    from django.db.models import Count

    from battles.models import Battle, Vote

    acknowledged: dict[str, set[str]] = defaultdict(set)
    for r in records["ack"]:
        acknowledged[r["battle"]].add(r["winner"])
    sent: dict[str, set[str]] = defaultdict(set)
    for r in records["sent"]:
        sent[r["battle"]].add(r["winner"])
    stored: dict[str, list[str]] = defaultdict(list)
    arena_votes = Vote.objects.filter(battle__source=Battle.Source.ARENA).exclude(battle__question_id__startswith="pg-")
    for question_id, winner in arena_votes.values_list("battle__question_id", "winner"):
        stored[question_id].append(winner)
    per_battle = Vote.objects.filter(battle__source=Battle.Source.ARENA).values("battle_id").annotate(n=Count("id"))
    result = {
        "acknowledged": len(acknowledged),
        "acknowledged twice with different winners": sum(1 for w in acknowledged.values() if len(w) > 1),
        "missing (acknowledged, not stored)": sum(1 for b in acknowledged if b not in stored),
        "wrong winner": sum(1 for b, w in acknowledged.items() if b in stored and set(stored[b]) != w),
        "stored more than once": sum(1 for row in per_battle if row["n"] > 1),
        "stored, sent, answer lost": sum(1 for b in stored if b not in acknowledged and b in sent),
        "stored, never sent": sum(1 for b in stored if b not in acknowledged and b not in sent),
        "stored": len(stored),
        "repeat answered a different body": len(records["mismatch"]),
    }
    statuses = Counter(
        Battle.objects.filter(source=Battle.Source.ARENA)
        .exclude(question_id__startswith="pg-")
        .values_list("status", flat=True)
    )
    result["battles by status"] = dict(statuses)
    return result


# The peer: PostgreSQL alone.


def postgres_alone(args) -> dict:
    """As many threads as voters inserting a battle row and a vote row per transaction, for the same time."""
    import psycopg
    from psycopg.types.json import Jsonb

    # Every column the site writes is copied from the run's own rows (whatever the schema holds
    # now), but for the battle's key, question id, times and pool, and the vote's winner.
    battle_set = {"question_id": "%s", "in_release_pool": "%s", "created_at": "now()", "turn_started_at": "now()"}
    vote_set = {"battle_id": "%s", "winner": "%s", "created_at": "now()"}
    with psycopg.connect(args.database_url) as connection:
        jsonb = {
            (table, column)
            for table, column in connection.execute(
                "SELECT table_name, column_name FROM information_schema.columns"
                " WHERE table_name IN ('battles_battle', 'battles_vote') AND data_type = 'jsonb'"
            )
        }
        cursor = connection.execute(
            "SELECT b.*, v.* FROM battles_battle b JOIN battles_vote v ON v.battle_id = b.id"
            " WHERE b.source = 'arena' AND b.status = 'ready' AND b.share_token IS NULL ORDER BY b.id LIMIT 500"
        )
        names = [column.name for column in cursor.description]
        rows = cursor.fetchall()
    if not rows:
        return {"error": "no voted arena battle to copy rows from"}
    split = names.index("id", 1)  # the vote's columns start at its id
    battle_columns = [n for n in names[1:split] if n not in battle_set]
    vote_columns = [n for n in names[split + 1 :] if n not in vote_set]

    def values(table: str, columns: list[str], row: dict) -> list:
        return [Jsonb(row[c]) if (table, c) in jsonb and row[c] is not None else row[c] for c in columns]

    sample = [
        (
            values("battles_battle", battle_columns, dict(zip(names[:split], row[:split], strict=True))),
            values("battles_vote", vote_columns, dict(zip(names[split:], row[split:], strict=True))),
        )
        for row in rows
    ]
    insert_battle = (
        f"INSERT INTO battles_battle ({', '.join([*battle_set, *battle_columns])}) VALUES"
        f" ({', '.join([*battle_set.values(), *['%s'] * len(battle_columns)])}) RETURNING id"
    )
    insert_vote = (
        f"INSERT INTO battles_vote ({', '.join([*vote_set, *vote_columns])}) VALUES"
        f" ({', '.join([*vote_set.values(), *['%s'] * len(vote_columns)])})"
    )
    winners = ["model_a", "model_b", "tie", "tie (bothbad)"]
    latencies: list[list[float]] = [[] for _ in range(args.users)]
    errors: Counter = Counter()
    start = threading.Barrier(args.users + 1)
    stop_at = [0.0]

    def client(k: int) -> None:
        rng = random.Random(k)
        with psycopg.connect(args.database_url) as connection:
            start.wait()
            while time.perf_counter() < stop_at[0]:
                battle_row, vote_row = rng.choice(sample)
                began = time.perf_counter()
                try:
                    with connection.transaction():
                        battle_id = connection.execute(
                            insert_battle, [f"pg-{uuid.uuid4().hex}", rng.random() < 0.2, *battle_row]
                        ).fetchone()[0]
                        connection.execute(insert_vote, [battle_id, rng.choice(winners), *vote_row])
                except psycopg.Error as exc:
                    errors[type(exc).__name__] += 1
                    continue
                latencies[k].append(time.perf_counter() - began)

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(args.users)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    stop_at[0] = began + args.duration
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    flat = [x for part in latencies for x in part]
    if not flat:
        return {"error": f"no transaction succeeded: {dict(errors)}"}
    return {
        "votes": len(flat),
        "seconds": elapsed,
        "per_second": len(flat) / elapsed,
        "p50_ms": _percentile(flat, 50) * 1000,
        "p99_ms": _percentile(flat, 99) * 1000,
        "errors": dict(errors),
    }


def print_table(rows: list[list[str]]) -> None:
    widths = [max(len(str(r[k])) for r in rows) for k in range(len(rows[0]))]

    def line(cells):
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    print(line(rows[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows[1:]:
        print(line(row))


def _cell(entries: dict, name: str) -> str:
    e = entries.get(name)
    return f"{e['p50']:.0f} / {e['p99']:.0f}" if e else "-"


def print_run(args, label: str, run: dict) -> None:
    summary, records, seconds = run["summary"], run["records"], run["summary"]["seconds"]
    entries = summary["entries"]
    print(f"\n{label}: {run['battles']} whole battles in {seconds:.1f} s = {run['rate']:.1f} battles/s")
    table = [["endpoint", "requests", "failures", "req/s", "p50 ms", "p99 ms", "max ms"]]
    for name in ENDPOINTS:
        if name in entries:
            e = entries[name]
            table.append([name, e["requests"], e["failures"], f"{e['requests'] / seconds:.1f}"])
            table[-1] += [f"{e['p50']:.0f}", f"{e['p99']:.0f}", f"{e['max']:.0f}"]
    e = summary["total"]
    table.append(["all", e["requests"], e["failures"], f"{e['requests'] / seconds:.1f}"])
    table[-1] += [f"{e['p50']:.0f}", f"{e['p99']:.0f}", f"{e['max']:.0f}"]
    print_table(table)
    if summary["failures"]:
        print(
            "- errors by endpoint and status (status 0: no response): "
            + "; ".join(f"{name} {status}: {count}" for (name, status), count in sorted(summary["failures"].items()))
        )
    battles = [r for r in records["battle"] if r["seconds"] is not None]
    if battles:
        waits = [r["seconds"] for r in battles]
        line = (
            f"- create to the end of answering: mean {sum(waits) / len(waits) * 1000:.0f} ms, p50 "
            f"{_percentile(waits, 50) * 1000:.0f}, p99 {_percentile(waits, 99) * 1000:.0f}"
        )
        streamed = [r for r in battles if "whole" in r]
        if streamed:
            line += f"; streams that carried both answers whole: {sum(r['whole'] for r in streamed)} of {len(streamed)}"
        polled = [r["polls"] for r in battles if "whole" not in r]
        if polled:
            line += f"; polls per battle {sum(polled) / len(polled):.2f}"
        print(line)
    timeouts = sum(1 for r in records["battle"] if r["seconds"] is None)
    if timeouts:
        print(f"- battles still answering after the voter's timeout: {timeouts}")
    cpu, n = run["cpu"], max(run["battles"], 1)
    parts = [f"gunicorn {cpu['server'] / n * 1000:.1f}"]
    if "postgres" in cpu:
        parts.append(f"PostgreSQL (all its databases) {cpu['postgres'] / n * 1000:.1f}")
    parts.append(f"locust {cpu['locust'] / n * 1000:.1f}")
    available = (os.cpu_count() or 1) * seconds
    print(
        f"- CPU ms per battle: {', '.join(parts)}; machine busy {cpu['machine']:.0f} of {available:.0f} CPU s"
        + (f"; PostgreSQL sessions opened: {run['sessions']}" if "sessions" in run else "")
    )
    other = cpu["machine"] - cpu["server"] - cpu.get("postgres", 0.0) - cpu["locust"]
    if other > 0.1 * cpu["machine"]:
        print(
            f"- WARNING: other processes took {other:.0f} CPU s ({other / cpu['machine']:.0%} of the busy time): "
            "the machine was shared and the rates are low"
        )


def report(args, out: Path, runs: dict, labels: dict, checked: dict, peer: dict | None, floors: dict) -> None:
    print(
        f"Battle API load: {args.users} voters, {args.duration} s a run, gunicorn + uvicorn_worker.UvicornWorker "
        f"{args.workers} workers, DB_CONN_MAX_AGE={args.conn_max_age}, "
        f"DB_POOL_MAX_SIZE={args.db_pool}, ARENA_DEMO_CHUNK_DELAY={args.chunk_delay}, "
        f"locust processes {args.locust_processes or 1}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
    )
    print(f"Output: {out}")
    for key, run in runs.items():
        print_run(args, labels[key], run)
    for name, floor in floors.items():
        print_run(args, f"{name} ({FLOORS[name][0]})", floor)

    print("\nVotes of every run of ours, against the database:")
    print(f"- acknowledged: {checked['acknowledged']}")
    for key in (
        "missing (acknowledged, not stored)",
        "wrong winner",
        "stored more than once",
        "acknowledged twice with different winners",
        "stored, never sent",
        "repeat answered a different body",
    ):
        print(f"- {key}: {checked[key]}")
    print(f"- stored, sent, answer lost (cut at a stop or a connection error): {checked['stored, sent, answer lost']}")
    print(f"- arena battles by status at the end: {checked['battles by status']}")

    django_floor = floors.get("Django + DRF alone", {}).get("rate")
    print(f"\nWhole battles per second (start, answers to the end, vote), {args.users} voters:")
    table = [["method", "battles/s", "create p50/p99 ms", "answers p50/p99 ms", "vote p50/p99 ms", "failures"]]
    table[0].append("share of Django + DRF alone")
    rows = [(labels[key], run) for key, run in runs.items()] + list(floors.items())
    for label, run in rows:
        entries = run["summary"]["entries"]
        answers = "stream" if "stream" in entries else "poll"
        cells = [label, f"{run['rate']:.1f}", _cell(entries, "create"), f"{answers} {_cell(entries, answers)}"]
        cells += [_cell(entries, "vote"), str(run["summary"]["total"]["failures"])]
        cells.append(f"{run['rate'] / django_floor:.1%}" if django_floor else "-")
        table.append(cells)
    print_table(table)
    print(
        "(locust's percentiles: exact below 100 ms, rounded to 10 ms above, to 100 ms above 1 s; a stream's to its end)"
    )

    if peer is not None:
        best = runs["stream"]
        print("\nPeer, same database, same number of clients, right after:")
        table = [["method", "clients", "s", "votes", "votes/s", "p50 ms", "p99 ms", "ours / this"]]
        vote = best["summary"]["entries"].get("vote", {})
        table.append([labels["stream"], args.users, f"{best['summary']['seconds']:.1f}", best["battles"]])
        table[-1] += [f"{best['rate']:.1f}", f"{vote.get('p50', 0):.0f}", f"{vote.get('p99', 0):.0f}", "1"]
        if "error" in peer:
            table.append(["PostgreSQL alone", args.users, "-", "-", "-", "-", "-", peer["error"]])
        else:
            table.append(["PostgreSQL alone: battle + vote row, 1 transaction", args.users, f"{peer['seconds']:.1f}"])
            table[-1] += [peer["votes"], f"{peer['per_second']:.1f}", f"{peer['p50_ms']:.1f}", f"{peer['p99_ms']:.1f}"]
            table[-1].append(f"{best['rate'] / peer['per_second']:.4f}")
        print_table(table)
        print("(ours: latency of the vote request; PostgreSQL alone: of the transaction)")
        if "error" not in peer and peer["errors"]:
            print(f"- PostgreSQL alone errors: {peer['errors']}")

    print("\nTargets:")
    lost = checked["missing (acknowledged, not stored)"] + checked["wrong winner"] + checked["stored more than once"]
    exact = lost == 0 and not checked["stored, never sent"]
    best = runs["stream"]
    if django_floor:
        share = best["rate"] / django_floor
        met = share >= TARGET_FLOOR_SHARE and exact
        print(
            f"- whole battles/s at least {TARGET_FLOOR_SHARE:.0%} of Django + DRF alone, every acknowledged vote "
            f"stored once: {'met' if met else 'NOT met'}: {best['rate']:.1f} of {django_floor:.1f} = {share:.1%}; "
            f"{lost} lost, duplicated or wrong, {checked['stored, never sent']} stored never sent"
            + (f" (polling voters: {runs['poll']['rate'] / django_floor:.1%})" if "poll" in runs else "")
        )
    else:
        print(f"- whole battles/s: {best['rate']:.1f} (no floor measured); {lost} votes lost, duplicated or wrong")
    if "steady" in runs:
        steady = runs["steady"]
        vote = steady["summary"]["entries"].get("vote")
        if vote:
            met = vote["p99"] < TARGET_VOTE_P99_MS
            print(
                f"- vote p99 under {TARGET_VOTE_P99_MS} ms at a steady {STEADY_SHARE:.0%} of the most battles/s: "
                f"{'met' if met else 'NOT met'}: p99 {vote['p99']:.0f} ms (p50 {vote['p50']:.0f}) with "
                f"{steady['offered']:.1f} battles/s offered, {steady['rate']:.1f} held"
            )
    print_log_errors(out)


def print_log_errors(out: Path) -> None:
    """Say how many errors the servers logged (tracebacks, errors, a worker killed for not
    answering gunicorn's heartbeat), in every run's folder."""
    found = re.compile(r"Traceback|\bERROR\b|\bCRITICAL\b")
    logs = [path for path in [*out.glob("*.log"), *out.glob("*/*.log")] if path.name in ("gunicorn.log", "server.log")]
    for log in sorted(logs):
        errors = sum(1 for line in log.read_text(errors="replace").splitlines() if found.search(line))
        if errors:
            print(f"- {log.relative_to(out)} has {errors} error line(s) (tracebacks, errors, worker timeouts): {log}")


def merged(records: list[dict[str, list[dict]]]) -> dict[str, list[dict]]:
    together: dict[str, list[dict]] = defaultdict(list)
    for part in records:
        for kind, rows in part.items():
            together[kind] += rows
    return together


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=50, help="simulated voters (default 50)")
    parser.add_argument("--duration", type=int, default=60, help="seconds of load per run (default 60)")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes (default 2)")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="emptied at the start (default db 9)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--spawn-rate", type=float, help="voters started per second (default: all in 1 s)")
    parser.add_argument("--locust-processes", type=int, default=0, help="locust --processes (default: one process)")
    parser.add_argument(
        "--conn-max-age", type=int, default=0, help="DB_CONN_MAX_AGE of the server (default 0, as .env.example)"
    )
    parser.add_argument(
        "--db-pool", type=int, default=20, help="DB_POOL_MAX_SIZE, pooled connections per worker (default 20; 0: none)"
    )
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="ARENA_DEMO_CHUNK_DELAY (default 0)")
    parser.add_argument(
        "--answer-db-threads",
        type=int,
        help="ARENA_ANSWER_DB_THREADS, the answers' database threads (default: the site's)",
    )
    parser.add_argument("--poll", action="store_true", help="also the voters polling, as before the stream")
    parser.add_argument("--poll-interval", type=float, default=0.05)
    parser.add_argument("--no-steady", action="store_true", help="skip the steady run at half the most battles/s")
    parser.add_argument("--repeat-share", type=float, default=0.2, help="share of votes sent twice")
    parser.add_argument("--leaderboard-share", type=float, default=0.1, help="share of battles followed by a read")
    parser.add_argument("--models", type=int, default=MODELS, help="listed demo models in the pool")
    parser.add_argument("--seed-votes", type=int, default=SEED_VOTES, help="votes seeded before the run")
    parser.add_argument("--seed", type=int, default=20250601)
    parser.add_argument("--no-peer", action="store_true", help="skip PostgreSQL alone")
    parser.add_argument("--no-floor", action="store_true", help="skip the floors (applications that do no work)")
    parser.add_argument("--out", help="folder for logs, CSVs and records (default: a new temporary folder)")
    args = parser.parse_args(argv)

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench-arena-load-"))
    if out.exists() and args.out:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    ensure_database(args.database_url)
    ensure_redis(args.redis_url)
    progress("preparing the database")
    prepare_database(args)
    progress(f"starting gunicorn with uvicorn workers ({args.workers}) on port {args.port}")
    server = start_server(args, out)
    runs: dict[str, dict] = {}
    labels = {"stream": "ours: voters follow the event stream"}
    try:
        progress("warming up")
        warm_up(args)
        postmaster = postgres_processes(args.database_url)
        progress(f"locust: {args.users} voters following the stream for {args.duration} s")
        runs["stream"] = measured_run(args, out / "stream", server, postgres=postmaster, mode="stream")
        if args.poll:
            labels["poll"] = f"ours: voters poll every {args.poll_interval * 1000:.0f} ms (before the stream)"
            progress(f"locust: {args.users} voters polling for {args.duration} s")
            runs["poll"] = measured_run(args, out / "poll", server, postgres=postmaster, mode="poll")
        if not args.no_steady and runs["stream"]["rate"] > 0:
            # Each voter starts a battle every `pacing` seconds: twice as long as its battles took
            # at the most battles/s, so the offered rate holds. The voters start over one pacing
            # period, so their battles are spread evenly, not in bursts.
            offered = STEADY_SHARE * runs["stream"]["rate"]
            pacing = args.users / offered
            labels["steady"] = f"ours: stream, steady {offered:.1f} battles/s offered ({STEADY_SHARE:.0%} of the most)"
            progress(f"locust: {args.users} voters offering {offered:.1f} battles/s for {args.duration} s")
            runs["steady"] = measured_run(
                args,
                out / "steady",
                server,
                postgres=postmaster,
                mode="stream",
                pacing=pacing,
                spawn_rate=max(args.users / pacing, 0.1),
            )
            runs["steady"]["offered"] = offered
    finally:
        progress("stopping gunicorn")
        stop_server(server)
    checked = check_votes(merged([run["records"] for run in runs.values()]))
    peer = None
    if not args.no_peer:
        progress(f"PostgreSQL alone: {args.users} threads for {args.duration} s")
        peer = postgres_alone(args)
    floors = {}
    if not args.no_floor:
        for name, (_, app, env) in FLOORS.items():
            progress(f"{name}: {args.users} voters for {args.duration} s against an application that does no work")
            floors[name] = floor_run(args, out / name.lower().replace(" ", "-").replace("+", "and"), app, env)
    report(args, out, runs, labels, checked, peer, floors)
    return 0


if __name__ == "__main__":
    sys.exit(main())

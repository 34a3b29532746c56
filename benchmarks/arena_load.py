"""Load benchmark of the JSON battle API: simulated voters against gunicorn, and PostgreSQL alone.

    .venv/bin/python benchmarks/arena_load.py                      # 50 voters, 60 s, 2 workers x 8 threads
    .venv/bin/python benchmarks/arena_load.py --users 20 --workers 1 --threads 16 --conn-max-age 60

On a dedicated PostgreSQL database (created if missing, flushed and migrated every run) it
puts a pool of listed demo models (through the lifecycle service, as a provider's model
gets there), seeds a few thousand votes and publishes a leaderboard, then starts the site
under gunicorn (gthread workers) on loopback, with answers from the demo backend at full
speed (ARENA_DEMO_CHUNK_DELAY=0) and no daily vote limit. A dozen battles warm the workers
up (imports, the language detector's models); then locust runs headless as a subprocess
with benchmarks/locustfile_arena.py: each user is one voter (own session cookie) who
starts a battle, polls it every 50 ms until it is answered, votes, sometimes sends the
same vote again and sometimes reads the leaderboard, with no think time.

It prints, from locust's final totals and the voters' own records: the sustained rate of
acknowledged votes (acknowledged votes / time from the first to the last request, ramp-up
included), p50/p99 latency and counts per endpoint, errors by endpoint and status, polls
per battle and the time from the create request to the end of answering, and the check of
every vote against the database: each acknowledged vote stored exactly once with its
winner, and no stored vote that was not acknowledged (those whose answer was lost, e.g.
cut when the run stopped, are counted apart). Then where the processor time went during
the run (gunicorn, PostgreSQL, locust, the rest of the machine, per vote) and how many
PostgreSQL sessions were opened; a run that shared the machine with other work says so.

The peer, on the same database right after: "PostgreSQL alone", as many threads as voters,
each with its own psycopg connection, inserting one battle row and one vote row per vote
in one transaction (plain SQL, the same schema, rows copied from the battles of the run)
for the same duration: the database's own ceiling for votes per second on this machine.

The floors, last: the same locust voters and gunicorn for the same duration against two
applications that do no work, "HTTP alone" (benchmarks/http_floor.py, plain WSGI) and
"Django + DRF alone" (benchmarks/django_floor.py: the project's settings, middleware and
sessions, views that only find the voter and answer). They bound what any implementation of
the API, and any in this stack, can reach on the machine with these voters.

--profile wraps the server's WSGI application and its answering threads (this module's
`profiled_application`, loaded by gunicorn) to count SQL queries, their time and the
thread's CPU per request, and keeps a cProfile (thread CPU time) of each worker from the
end of the warm-up; the driver prints both. It slows the server down several times: do
not compare its rates with unprofiled runs.
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
ENDPOINTS = ["create", "poll", "vote", "vote again", "leaderboard"]
MODELS = 8
SEED_VOTES = 3000
TARGET_VOTES_PER_SECOND = 300
TARGET_P99_MS = 100


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
        CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
        CACHE_URL="redis://127.0.0.1:6379/2",  # shared by the workers, as in a deployment
        ARENA_DEMO_CHUNK_DELAY="0",
        ARENA_ANSWER_SAVE_INTERVAL="0.25",
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
        LOG_LEVEL="WARNING",
    )
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


def ensure_redis() -> None:
    ping = subprocess.run(["redis-cli", "-h", "127.0.0.1", "ping"], capture_output=True, text=True)
    if ping.stdout.strip() != "PONG":
        progress("starting redis-server")
        subprocess.run(["redis-server", "--daemonize", "yes", "--save", ""], check=True)
        time.sleep(0.5)
    # The site's cache (sessions, the leaderboard) starts empty, as the database does.
    subprocess.run(["redis-cli", "-h", "127.0.0.1", "-n", "2", "flushdb"], capture_output=True, check=True)


def start_server(args, out: Path, app: str = "arenasite.wsgi:application", env: dict | None = None) -> subprocess.Popen:
    site = app == "arenasite.wsgi:application" and not env  # the site itself, not a floor
    env = {**server_environment(args), **(env or {})}
    if args.profile and site:
        env["ARENA_LOAD_PROFILE_DIR"] = str(out)
        app = "arena_load:profiled_application()"
    command = [
        _venv_bin("gunicorn"),
        app,
        "--pythonpath",
        f"{ROOT},{BENCH_DIR}",
        "--chdir",
        str(ROOT),
        "--worker-class",
        "gthread",
        "--workers",
        str(args.workers),
        "--threads",
        str(args.threads),
        "--bind",
        f"127.0.0.1:{args.port}",
        "--log-level",
        "warning",
        "--error-logfile",
        str(out / "gunicorn.log"),
        "--graceful-timeout",
        "30",
    ]
    server = subprocess.Popen(command, env=env, cwd=ROOT, start_new_session=True)
    deadline = time.monotonic() + 60
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

    def one(_: int) -> None:
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


def run_locust(args, out: Path) -> float:
    """Run locust to its end; returns the CPU seconds it used (all its processes)."""
    env = dict(os.environ)
    env.update(
        ARENA_LOAD_OUT=str(out / "votes"),
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
        str(args.spawn_rate or args.users),
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

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(out / "locust.log", "w") as log:
        done = subprocess.run(
            command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=args.duration + 120
        )
    if done.returncode != 0:
        raise SystemExit(f"locust exited with {done.returncode}; see {out / 'locust.log'}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


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
    records: dict[str, list[dict]] = defaultdict(list)
    for path in sorted((out / "votes").glob("votes-*.jsonl")):
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

    with psycopg.connect(args.database_url) as connection:
        sample = connection.execute(
            "SELECT model_a_id, model_b_id, language, turn, prompt_chars, prompt_hash, conversation_a,"
            " conversation_b, openai_moderation, judge FROM battles_battle"
            " WHERE source = 'arena' AND status = 'ready' ORDER BY id LIMIT 500"
        ).fetchall()
    if not sample:
        return {"error": "no ready arena battle to copy rows from"}
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
                row = rng.choice(sample)
                began = time.perf_counter()
                try:
                    with connection.transaction():
                        battle_id = connection.execute(
                            "INSERT INTO battles_battle (question_id, model_a_id, model_b_id, anony, source,"
                            " language, turn, prompt_chars, prompt_hash, conversation_a, conversation_b,"
                            " openai_moderation, in_release_pool, judge, status, state_a, state_b, failure,"
                            " turn_started_at, created_at) VALUES (%s, %s, %s, true, 'arena', %s, %s, %s, %s,"
                            " %s, %s, %s, %s, %s, 'ready', 'done', 'done', '', now(), now()) RETURNING id",
                            [
                                f"pg-{uuid.uuid4().hex}",
                                row[0],
                                row[1],
                                row[2],
                                row[3],
                                row[4],
                                row[5],
                                Jsonb(row[6]),
                                Jsonb(row[7]),
                                Jsonb(row[8]) if row[8] is not None else None,
                                rng.random() < 0.2,
                                row[9],
                            ],
                        ).fetchone()[0]
                        connection.execute(
                            "INSERT INTO battles_vote (battle_id, model_a_id, model_b_id, anony, winner, judge,"
                            " network, excluded_reason, created_at) VALUES (%s, %s, %s, true, %s, %s, '', '', now())",
                            [battle_id, row[0], row[1], rng.choice(winners), row[9]],
                        )
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


# Profiling inside gunicorn (--profile): gunicorn loads `arena_load:profiled_application()`.


# The floors: what the same voters, gunicorn and locust reach when the application does no work.
FLOORS = {
    "HTTP alone": ("benchmarks/http_floor.py: plain WSGI, no framework", "http_floor:application", {}),
    "Django + DRF alone": (
        "benchmarks/django_floor.py: the project's settings, middleware and sessions, views that do nothing",
        "arenasite.wsgi:application",
        {"DJANGO_SETTINGS_MODULE": "django_floor_settings"},
    ),
}


def floor_run(args, out: Path, app: str, env: dict) -> dict:
    """The same locust voters and gunicorn against an application that does no work."""
    import psutil

    out.mkdir(parents=True, exist_ok=True)
    server = start_server(args, out, app=app, env=env)
    try:
        gunicorn = psutil.Process(server.pid)
        before, machine = cpu_seconds(gunicorn), machine_busy_seconds()
        locust = run_locust(args, out)
        cpu = {
            "server": cpu_seconds(gunicorn) - before,
            "locust": locust,
            "machine": machine_busy_seconds() - machine,
        }
    finally:
        stop_server(server)
    summary = read_summary(out)
    acknowledged = sum(1 for r in read_records(out)["ack"] if not r["repeat"])
    return {"summary": summary, "votes": acknowledged, "cpu": cpu}


def print_floors(args, floors: dict[str, dict], headline: dict) -> None:
    print(f"\nFloors: the same {args.users} voters, gunicorn and locust against applications that do no work:")
    table = [["method", "votes/s", "create p50/p99 ms", "vote p50/p99 ms", "poll p50/p99 ms", "ours / this"]]
    rows = [("ours: battle API", headline["votes_per_second"], headline.get("entries"))]
    for name, floor in floors.items():
        seconds = floor["summary"]["seconds"]
        floor["rate"] = floor["votes"] / seconds if seconds > 0 else 0.0
        rows.append((name, floor["rate"], floor["summary"]["entries"]))
    for label, value, entries in rows:
        cells = [label, f"{value:.1f}"]
        for endpoint in ("create", "vote", "poll"):
            e = (entries or {}).get(endpoint)
            cells.append(f"{e['p50']:.0f} / {e['p99']:.0f}" if e else "-")
        cells.append(f"{headline['votes_per_second'] / value:.3f}" if value else "-")
        table.append(cells)
    print_table(table)
    for name, floor in floors.items():
        votes, cpu, seconds = floor["votes"] or 1, floor["cpu"], floor["summary"]["seconds"]
        # Well short of every core busy: the voters' 50 ms between polls is what holds them back.
        limited = cpu["machine"] < 0.75 * (os.cpu_count() or 1) * seconds
        print(
            f"- {name} ({FLOORS[name][0]}): per vote gunicorn {cpu['server'] / votes * 1000:.2f} ms and locust "
            f"{cpu['locust'] / votes * 1000:.2f} ms of processor time; machine busy {cpu['machine']:.0f} of "
            f"{(os.cpu_count() or 1) * seconds:.0f} CPU s"
            + ("; the voters' polling, not the processors, set this rate" if limited else "")
            + f"; {floor['summary']['total']['failures']} failed requests"
        )
    for name, floor in floors.items():
        verdict = "reachable" if floor["rate"] >= TARGET_VOTES_PER_SECOND else "NOT reachable"
        print(
            f"- {TARGET_VOTES_PER_SECOND} votes/s with no application work, {name}: {verdict} "
            f"({floor['rate']:.1f} votes/s)"
        )


def profiled_application():
    """The site's WSGI application, wrapped to count each request's SQL and CPU and to cProfile it.

    Each thread gets its own cProfile (before Python 3.12 a profiler hooks only the thread
    that enables it) timed by the thread's CPU clock, so it shows where the processor goes
    rather than waits for PostgreSQL or for the GIL; the answering threads are wrapped too.
    At the worker's exit the profiles are merged into profile-<pid>.pstats and the
    per-request figures written to requests-<pid>.json in ARENA_LOAD_PROFILE_DIR.
    """
    import atexit
    import cProfile
    import pstats

    from django.db import connection

    from arenasite.wsgi import application
    from battles import answering

    folder = Path(os.environ["ARENA_LOAD_PROFILE_DIR"])
    lock = threading.Lock()
    local = threading.local()
    profiles: list = []
    figures: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0, 0.0, 0.0])  # n, queries, SQL, wall, CPU s

    marker = folder / "measure-from"  # written by the driver after the warm-up
    state = {"generation": 0.0, "started": time.perf_counter(), "cpu": time.process_time()}

    def profiler():
        # Everything before the marker (start-up, warm-up) is dropped: a thread that sees a
        # newer marker starts a new profile, and the first one to see it empties the figures.
        generation = marker.stat().st_mtime if marker.exists() else 0.0
        with lock:
            if generation > state["generation"]:
                state.update(generation=generation, started=time.perf_counter(), cpu=time.process_time())
                figures.clear()
                profiles.clear()
        found = getattr(local, "profile", None)
        if found is None or getattr(local, "generation", None) != generation:
            found = local.profile = cProfile.Profile(time.thread_time)
            local.generation = generation
            with lock:
                profiles.append(found)
        return found

    def measured(label: str, call):
        queries = [0, 0.0]

        def wrapper(execute, sql, params, many, context):
            began = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                queries[0] += 1
                queries[1] += time.perf_counter() - began

        profile = profiler()
        began, began_cpu = time.perf_counter(), time.thread_time()
        profile.enable()
        try:
            with connection.execute_wrapper(wrapper):
                return call()
        finally:
            profile.disable()
            with lock:
                row = figures[label]
                row[0] += 1
                row[1] += queries[0]
                row[2] += queries[1]
                row[3] += time.perf_counter() - began
                row[4] += time.thread_time() - began_cpu

    def endpoint(environ) -> str:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if path.endswith("/vote/"):
            return "vote"
        if path == "/api/v1/battles/":
            return "create"
        if path.startswith("/api/v1/battles/"):
            return "poll"
        return path if method == "GET" else f"{method} {path}"

    def app(environ, start_response):
        return measured(endpoint(environ), lambda: application(environ, start_response))

    original = answering._answer_side_and_close

    def answer_side(battle_id, side):
        return measured("answer one side (background thread)", lambda: original(battle_id, side))

    answering._answer_side_and_close = answer_side

    def dump() -> None:
        with lock:
            if profiles:
                stats = pstats.Stats(profiles[0])
                for other in profiles[1:]:
                    stats.add(other)
                stats.dump_stats(folder / f"profile-{os.getpid()}.pstats")
            wall, cpu = time.perf_counter() - state["started"], time.process_time() - state["cpu"]
            figures["(the whole worker process)"] = [1, 0, 0.0, wall, cpu]
            (folder / f"requests-{os.getpid()}.json").write_text(json.dumps(figures))

    atexit.register(dump)
    return app


def print_profile(out: Path) -> None:
    import io
    import pstats

    figures: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0, 0.0, 0.0])
    for path in out.glob("requests-*.json"):
        for label, row in json.loads(path.read_text()).items():
            figures[label] = [a + b for a, b in zip(figures[label], row, strict=True)]
    if figures:
        print("\nServer side, per request (--profile: counted inside the workers):")
        table = [["what", "count", "queries each", "SQL ms each", "wall ms each", "CPU ms each", "CPU s in all"]]
        for label, (n, queries, sql_s, wall_s, cpu_s) in sorted(figures.items(), key=lambda kv: -kv[1][4]):
            table.append([label, f"{n:.0f}", f"{queries / n:.1f}", f"{sql_s / n * 1000:.2f}"])
            table[-1] += [f"{wall_s / n * 1000:.2f}", f"{cpu_s / n * 1000:.2f}", f"{cpu_s:.1f}"]
        print_table(table)
        print(
            "(SQL: from sending a query to having its result back in Python, GIL wait included; CPU: the "
            "thread's own; whole worker process: from the end of the warm-up to its exit, all threads)"
        )
    paths = sorted(out.glob("profile-*.pstats"))
    if paths:
        buffer = io.StringIO()
        stats = pstats.Stats(str(paths[0]), stream=buffer)
        for path in paths[1:]:
            stats.add(str(path))
        stats.strip_dirs().sort_stats("cumulative").print_stats(45)
        stats.sort_stats("tottime").print_stats(30)
        (out / "profile.txt").write_text(buffer.getvalue())
        print(f"cProfile of the workers (thread CPU time, all threads): {out / 'profile.txt'}")


# Report.


def print_table(rows: list[list[str]]) -> None:
    widths = [max(len(str(r[k])) for r in rows) for k in range(len(rows[0]))]

    def line(cells):
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    print(line(rows[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows[1:]:
        print(line(row))


def report(args, out: Path, summary: dict, records: dict, checked: dict, peer: dict | None) -> dict:
    """Print the figures; returns the headline ones."""
    entries = summary["entries"]
    seconds = summary["seconds"]
    acknowledged = checked["acknowledged"]
    rate = acknowledged / seconds if seconds > 0 else 0.0
    print(
        f"Battle API load: {args.users} voters, {args.duration} s, gunicorn gthread {args.workers} workers x "
        f"{args.threads} threads, DB_CONN_MAX_AGE={args.conn_max_age}, locust processes "
        f"{args.locust_processes or 1}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
    )
    print(f"Output: {out}\n")
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
    print("(locust's percentiles: exact below 100 ms, rounded to 10 ms above, to 100 ms above 1 s)")
    if summary["failures"]:
        print("\nErrors by endpoint and status (status 0: no response):")
        for (name, status), count in sorted(summary["failures"].items()):
            print(f"- {name}: status {status}: {count}")
    else:
        print("\nErrors: none")

    battles = [r for r in records["battle"] if r["seconds"] is not None]
    print("\nVotes:")
    print(f"- acknowledged: {acknowledged} in {seconds:.1f} s (first to last request) = {rate:.1f} votes/s")
    for key in (
        "missing (acknowledged, not stored)",
        "wrong winner",
        "stored more than once",
        "acknowledged twice with different winners",
        "stored, never sent",
        "repeat answered a different body",
    ):
        print(f"- {key}: {checked[key]}")
    print(
        f"- stored, sent, answer lost (cut at the stop or a connection error): {checked['stored, sent, answer lost']}"
    )
    print(f"- arena battles by status at the end: {checked['battles by status']}")
    headline = {"votes_per_second": rate, "entries": entries}
    if battles:
        polls = [r["polls"] for r in battles]
        waits = [r["seconds"] for r in battles]
        headline["polls"] = sum(polls) / len(polls)
        headline["complete_ms"] = sum(waits) / len(waits) * 1000
        print(
            f"- battles answered: {len(battles)}; polls per battle mean {headline['polls']:.2f}; "
            f"create to complete mean {headline['complete_ms']:.0f} ms "
            f"(p50 {_percentile(waits, 50) * 1000:.0f}, p99 {_percentile(waits, 99) * 1000:.0f})"
        )
    timeouts = sum(1 for r in records["battle"] if r["seconds"] is None)
    if timeouts:
        print(f"- battles still answering after the voter's timeout: {timeouts}")

    vote = entries.get("vote", {})
    if peer is not None:
        print("\nPeer, same database, same number of clients, right after:")
        table = [["method", "clients", "s", "votes", "votes/s", "p50 ms", "p99 ms", "ours / this"]]
        table.append(["ours: battle API (create, polls, vote)", args.users, f"{seconds:.1f}", acknowledged])
        table[-1] += [f"{rate:.1f}", f"{vote.get('p50', 0):.0f}", f"{vote.get('p99', 0):.0f}", "1"]
        if "error" in peer:
            table.append(["PostgreSQL alone", args.users, "-", "-", "-", "-", "-", peer["error"]])
        else:
            table.append(
                [
                    "PostgreSQL alone: battle + vote row, 1 transaction",
                    args.users,
                    f"{peer['seconds']:.1f}",
                    peer["votes"],
                    f"{peer['per_second']:.1f}",
                    f"{peer['p50_ms']:.1f}",
                    f"{peer['p99_ms']:.1f}",
                    f"{rate / peer['per_second']:.4f}",
                ]
            )
            headline["peer_votes_per_second"] = peer["per_second"]
        print_table(table)
        print("(ours: latency of the vote request; PostgreSQL alone: of the transaction)")
        if "error" not in peer and peer["errors"]:
            print(f"- PostgreSQL alone errors: {peer['errors']}")

    p99 = max(entries[n]["p99"] for n in ("create", "poll", "vote") if n in entries)
    lost = checked["missing (acknowledged, not stored)"] + checked["wrong winner"] + checked["stored more than once"]
    met = rate >= TARGET_VOTES_PER_SECOND and p99 < TARGET_P99_MS and lost == 0 and not checked["stored, never sent"]
    print(
        f"\nTarget (>= {TARGET_VOTES_PER_SECOND} votes/s, p99 < {TARGET_P99_MS} ms on create, poll and vote, no "
        f"lost or duplicated vote): {'met' if met else 'NOT met'}: {rate:.1f} votes/s "
        f"({rate / TARGET_VOTES_PER_SECOND:.0%} of it), slowest p99 {p99:.0f} ms, {lost} lost/duplicated/wrong"
    )
    log = out / "gunicorn.log"
    if log.exists():
        errors = sum(1 for line in log.read_text().splitlines() if "Traceback" in line or " ERROR " in line)
        if errors:
            print(f"- gunicorn.log has {errors} error(s)/traceback(s): {log}")
    return headline


def print_cpu(args, cpu: dict, sessions: int, headline: dict, summary: dict) -> None:
    """Where the machine's processor time went during the load (locust's whole run, start-up included)."""
    seconds = summary["seconds"]
    votes = headline["votes_per_second"] * seconds
    other = cpu["machine"] - cpu["server"] - cpu["postgres"] - cpu["locust"]
    print(f"\nCPU during the run ({os.cpu_count()} CPUs = {os.cpu_count() * seconds:.0f} CPU s available):")
    table = [["process", "CPU s", "share of busy", "CPU ms per vote"]]
    for label, value in (
        ("gunicorn (all workers, all threads)", cpu["server"]),
        ("PostgreSQL (all backends, other databases too)", cpu["postgres"]),
        ("locust (voters)", cpu["locust"]),
        ("rest of the machine (kernel, others)", other),
        ("machine busy", cpu["machine"]),
    ):
        share = f"{value / cpu['machine']:.0%}" if cpu["machine"] else "-"
        table.append([label, f"{value:.1f}", share, f"{value / votes * 1000:.1f}" if votes else "-"])
    print_table(table)
    requests = summary["total"]["requests"]
    print(f"- PostgreSQL sessions opened during the run: {sessions} ({sessions / max(requests, 1):.2f} per request)")
    if other > 0.1 * cpu["machine"]:
        print(
            f"- WARNING: other processes took {other:.0f} CPU s ({other / cpu['machine']:.0%} of the busy time); "
            "the machine was shared and the rates above are low"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=50, help="simulated voters (default 50)")
    parser.add_argument("--duration", type=int, default=60, help="seconds of load (default 60)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker (default 8)")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--spawn-rate", type=float, help="voters started per second (default: all in 1 s)")
    parser.add_argument("--locust-processes", type=int, default=0, help="locust --processes (default: one process)")
    parser.add_argument(
        "--conn-max-age", type=int, default=0, help="DB_CONN_MAX_AGE of the server (default 0, as .env.example)"
    )
    parser.add_argument("--poll-interval", type=float, default=0.05)
    parser.add_argument("--repeat-share", type=float, default=0.2, help="share of votes sent twice")
    parser.add_argument("--leaderboard-share", type=float, default=0.1, help="share of battles followed by a read")
    parser.add_argument("--models", type=int, default=MODELS, help="listed demo models in the pool")
    parser.add_argument("--seed-votes", type=int, default=SEED_VOTES, help="votes seeded before the run")
    parser.add_argument("--seed", type=int, default=20250601)
    parser.add_argument("--no-peer", action="store_true", help="skip PostgreSQL alone")
    parser.add_argument("--no-floor", action="store_true", help="skip the floors (applications that do no work)")
    parser.add_argument("--profile", action="store_true", help="SQL per request and cProfile in the workers")
    parser.add_argument("--out", help="folder for logs, CSVs and records (default: a new temporary folder)")
    args = parser.parse_args(argv)

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench-arena-load-"))
    if out.exists() and args.out:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    ensure_database(args.database_url)
    ensure_redis()
    progress("preparing the database")
    prepare_database(args)
    progress(f"starting gunicorn ({args.workers} workers x {args.threads} threads) on port {args.port}")
    server = start_server(args, out)
    try:
        progress("warming up")
        warm_up(args)
        (out / "measure-from").write_text(str(time.time()))
        import psutil

        gunicorn = psutil.Process(server.pid)
        postmaster = postgres_processes(args.database_url)
        sessions = postgres_sessions(args.database_url)
        cpu = {"server": cpu_seconds(gunicorn), "postgres": cpu_seconds(postmaster), "machine": machine_busy_seconds()}
        progress(f"locust: {args.users} voters for {args.duration} s")
        cpu["locust"] = run_locust(args, out)
        cpu["server"] = cpu_seconds(gunicorn) - cpu["server"]
        cpu["postgres"] = cpu_seconds(postmaster) - cpu["postgres"]
        cpu["machine"] = machine_busy_seconds() - cpu["machine"]
        sessions = postgres_sessions(args.database_url) - sessions - 1
    finally:
        progress("stopping gunicorn")
        stop_server(server)
    summary = read_summary(out)
    records = read_records(out)
    checked = check_votes(records)
    peer = None
    if not args.no_peer:
        progress(f"PostgreSQL alone: {args.users} threads for {args.duration} s")
        peer = postgres_alone(args)
    floors = {}
    if not args.no_floor:
        for name, (_, app, env) in FLOORS.items():
            progress(f"{name}: {args.users} voters for {args.duration} s against an application that does no work")
            floors[name] = floor_run(args, out / name.lower().replace(" ", "-").replace("+", "and"), app, env)
    headline = report(args, out, summary, records, checked, peer)
    print_cpu(args, cpu, sessions, headline, summary)
    if floors:
        print_floors(args, floors, headline)
    if args.profile:
        print_profile(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

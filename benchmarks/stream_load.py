"""Viewers of the battles' answer streams: how many the site holds with answers paced as a model's.

    .venv/bin/python benchmarks/stream_load.py                     # 250, 500, 1000, 2000 viewers, 60 s each
    .venv/bin/python benchmarks/stream_load.py --ramp 100,250 --duration 15

On the load benchmark's database (benchmarks/arena_load.py prepares it the same way: listed
demo models, seeded votes, a published leaderboard) it starts the site as it runs in
production, gunicorn with uvicorn's worker class serving arenasite.asgi, with the stream log
on Redis and demo answers paced at 30 words a second per side (ARENA_DEMO_CHUNK_DELAY=0.0333).
The viewers (benchmarks/stream_viewers.py, asyncio and httpx, in a process of their own, each
viewer with its own session) start a battle, read its event stream to the end, vote and start
the next.

The ramp: for each number of viewers, --spawn seconds to start them, --duration seconds
measured, then the battles followed finish. A step is held when no measured word's delay
(stream_viewers.py defines it) is above --target-p99-ms at the 99th percentile, every
measured stream carried both answers whole and no request failed. The ramp stops after the
first step not held (--whole-ramp runs every step).

Then the design before the stream on the same load: as many viewers as the largest step held
(else the first step), polling the battle every 400 ms as the page did, against the site
restarted with the row checkpointed every 0.25 s as then (ARENA_ANSWER_SAVE_INTERVAL).

Per step it prints: battles started, ended and voted, streams whole, the words' delay
(p50/p99/p99.9), the time from the create request to the first piece, create/stream/poll/vote
latency, requests per second, errors, the viewers reading a stream at once, the web
processes' peak resident memory (all of them together, sampled every 0.2 s), and processor
time over the measured window: the web processes', PostgreSQL's, Redis's, the viewers' and
the machine's, the web processes' per viewer-second. Then every acknowledged vote of every
step checked against the database (stored once with its winner).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import arena_load
from arena_load import print_table
from support import ensure_database, progress

BENCH_DIR = Path(__file__).resolve().parent
VIEWERS = BENCH_DIR / "stream_viewers.py"
PACE = 0.0333  # seconds between two words of an answer: 30 tokens a second
OLD_SAVE_INTERVAL = 0.25  # the row's checkpoints when the page polled it


class Sampler(threading.Thread):
    """The web processes' resident memory, together, every `every` seconds: its peak."""

    def __init__(self, server, every: float = 0.2):
        super().__init__(daemon=True)
        import psutil

        self.root, self.every, self.peak, self.stopped = psutil.Process(server.pid), every, 0, threading.Event()

    def processes(self):
        return [self.root, *self.root.children(recursive=True)]

    def run(self) -> None:
        import psutil

        while not self.stopped.wait(self.every):
            total = 0
            for process in self.processes():
                try:
                    total += process.memory_info().rss
                except psutil.NoSuchProcess:
                    pass
            self.peak = max(self.peak, total)


def redis_processes():
    import psutil

    return [p for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("redis-server")]


def cpu_now(server, postmaster, viewers) -> dict:
    return {
        "web": arena_load.cpu_seconds(server),
        "postgres": arena_load.cpu_seconds(postmaster),
        "redis": sum(arena_load.cpu_seconds(p) for p in redis_processes()),
        "viewers": arena_load.cpu_seconds(viewers),
        "machine": arena_load.machine_busy_seconds(),
        "t": time.monotonic(),
    }


def step(args, out: Path, server, postmaster, viewers: int, mode: str) -> dict:
    """One step of the ramp: the viewers' process from start to end; its summary and our samples."""
    import psutil

    out.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        str(VIEWERS),
        "--base",
        f"http://127.0.0.1:{args.port}",
        "--viewers",
        str(viewers),
        "--mode",
        mode,
        "--spawn",
        str(args.spawn),
        "--duration",
        str(args.duration),
        "--drain",
        str(args.drain),
        "--pace",
        str(args.pace),
        "--poll-interval",
        str(args.poll_interval),
        "--out",
        str(out),
    ]
    sampler = Sampler(server)
    sampler.start()
    with open(out / "viewers.log", "w") as log:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True, cwd=BENCH_DIR)
        generator = psutil.Process(process.pid)
        marks = []
        line = process.stdout.readline().split()
        if line[:1] == ["window"]:
            for edge in map(float, line[1:3]):  # the machine's monotonic clock, as the viewers read it
                time.sleep(max(0.0, edge - time.monotonic()))
                marks.append(cpu_now(sampler.root, postmaster, generator))
        process.stdout.read()
        process.wait(timeout=args.spawn + args.duration + args.drain + 120)
    sampler.stopped.set()
    sampler.join()
    if process.returncode != 0 or len(marks) != 2:
        raise SystemExit(f"the viewers' process failed ({process.returncode}); see {out / 'viewers.log'}")
    summary = json.loads((out / "summary.json").read_text())
    start, end = marks
    summary["cpu"] = {key: end[key] - start[key] for key in start}
    summary["peak_rss"] = sampler.peak
    summary["records"] = arena_load.read_records_in(out)
    return summary


def held(args, result: dict) -> bool:
    delays = result["delays"]
    battles = result["battles"]
    return (
        delays.get("n", 0) > 0
        and delays["p99"] * 1000 < args.target_p99_ms
        and not battles.get("not whole")
        and not result["errors"]
    )


def _ms(q: dict, key: str) -> str:
    return f"{q[key] * 1000:.0f}" if q.get("n") else "-"


def report(args, out: Path, steps: list[tuple[str, dict]], checked: dict, largest: int | None) -> None:
    print(
        f"Stream viewers: demo answers paced {args.pace} s a word per side, gunicorn + uvicorn_worker.UvicornWorker "
        f"{args.workers} workers, stream log on Redis, {args.spawn:.0f} s to start the viewers, {args.duration:.0f} s "
        f"measured, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
    )
    print(f"Output: {out}\n")
    table = [
        [
            "design",
            "viewers",
            "reading at once",
            "battles ended / voted / cut",
            "streams whole",
            "word delay p50 / p99 / p99.9 ms",
            "first piece p50 / p99 ms",
            "req/s",
            "errors",
            "held",
        ]
    ]
    for design, r in steps:
        battles, delays = r["battles"], r["delays"]
        whole = battles.get("whole", 0)
        table.append(
            [
                design,
                r["viewers"],
                f"{r['streaming']['mean']:.0f} (min {r['streaming']['min']})",
                f"{battles.get('ended', 0)} / {battles.get('voted', 0)} / {battles.get('cut at the drain', 0)}",
                f"{whole} of {whole + battles.get('not whole', 0)}",
                f"{_ms(delays, 'p50')} / {_ms(delays, 'p99')} / {_ms(delays, 'p999')}",
                f"{_ms(r['first_piece'], 'p50')} / {_ms(r['first_piece'], 'p99')}",
                f"{sum(r['requests'].values()) / r['seconds']:.0f}",
                sum(r["errors"].values()),
                "yes" if held(args, r) else "no",
            ]
        )
    print_table(table)
    print(
        "(a word's delay: when the viewer got it minus t0 + k x pace, word k of its side due every "
        f"{args.pace} s from t0, the earliest start no word of the side beats; reading at once: viewers "
        "following a battle's answers, mean and least over the window's seconds; cut: battles still followed "
        "when the drain ended, whenever started)"
    )

    print("\nRequests (measured window; ms):")
    table = [["design", "viewers", "create p50 / p99", "stream p50 / p99", "poll p50 / p99", "vote p50 / p99"]]
    for design, r in steps:
        cells = [design, r["viewers"]]
        for name in ("create", "stream", "poll", "vote"):
            q = r["latency"].get(name, {})
            cells.append(f"{_ms(q, 'p50')} / {_ms(q, 'p99')}" if q.get("n") else "-")
        table.append(cells)
    print_table(table)
    for design, r in steps:
        if r["errors"]:
            print(f"- {design}, {r['viewers']} viewers, errors: {r['errors']}")

    print("\nProcessor time over the measured window, and memory:")
    table = [["design", "viewers", "web CPU s", "ms per viewer-second", "PostgreSQL", "Redis", "viewers' process"]]
    table[0] += ["machine busy", "web peak RSS MiB"]
    for design, r in steps:
        cpu = r["cpu"]
        seconds = cpu["t"]
        table.append(
            [
                design,
                r["viewers"],
                f"{cpu['web']:.1f}",
                f"{cpu['web'] / (r['viewers'] * seconds) * 1000:.2f}",
                f"{cpu['postgres']:.1f}",
                f"{cpu['redis']:.1f}",
                f"{cpu['viewers']:.1f}",
                f"{cpu['machine']:.0f} of {(os.cpu_count() or 1) * seconds:.0f}",
                f"{r['peak_rss'] / 2**20:.0f}",
            ]
        )
        other = cpu["machine"] - cpu["web"] - cpu["postgres"] - cpu["redis"] - cpu["viewers"]
        if other > 0.1 * cpu["machine"]:
            table[-1][-2] += f" ({other / cpu['machine']:.0%} others)"
    print_table(table)
    print("(CPU s: user + system of all the processes, over the measured window; others: processes not ours)")
    for design, r in steps:
        busy = r["cpu"]["viewers"] / r["cpu"]["t"]
        if busy > 0.8:
            print(
                f"- WARNING: {design}, {r['viewers']} viewers: the viewers' process (one event loop) used {busy:.0%} "
                "of a processor: its own lateness reading the events is in the delays"
            )

    print("\nVotes of every step, against the database:")
    print(f"- acknowledged: {checked['acknowledged']}")
    for key in ("missing (acknowledged, not stored)", "wrong winner", "stored more than once", "stored, never sent"):
        print(f"- {key}: {checked[key]}")
    print(f"- stored, sent, answer lost: {checked['stored, sent, answer lost']}")

    print(
        f"\nLargest number of viewers held (word delay p99 under {args.target_p99_ms} ms, every stream whole, "
        f"no error): {largest if largest is not None else 'none of the steps'}"
    )
    arena_load.print_log_errors(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ramp", default="250,500,1000,2000", help="viewers per step (default 250,500,1000,2000)")
    parser.add_argument("--duration", type=float, default=60, help="seconds measured per step (default 60)")
    parser.add_argument("--spawn", type=float, default=10, help="seconds to start a step's viewers (default 10)")
    parser.add_argument("--drain", type=float, default=20, help="seconds for the last battles to end (default 20)")
    parser.add_argument("--whole-ramp", action="store_true", help="run every step, held or not")
    parser.add_argument("--target-p99-ms", type=float, default=250)
    parser.add_argument("--pace", type=float, default=PACE, help=f"ARENA_DEMO_CHUNK_DELAY (default {PACE})")
    parser.add_argument("--poll-interval", type=float, default=0.4, help="the polling design's (default 0.4 s)")
    parser.add_argument("--poll-viewers", type=int, help="viewers of the polling design (default: largest held)")
    parser.add_argument("--no-poll", action="store_true", help="skip the polling design")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes (default 2)")
    parser.add_argument(
        "--answer-db-threads",
        type=int,
        help="ARENA_ANSWER_DB_THREADS, the answers' database threads (default: the site's)",
    )
    parser.add_argument("--conn-max-age", type=int, default=0, help="DB_CONN_MAX_AGE (default 0)")
    parser.add_argument(
        "--db-pool", type=int, default=20, help="DB_POOL_MAX_SIZE, pooled connections per worker (default 20; 0: none)"
    )
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", arena_load.DEFAULT_DATABASE_URL))
    parser.add_argument("--redis-url", default=arena_load.DEFAULT_REDIS_URL, help="emptied at the start (default db 9)")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--models", type=int, default=arena_load.MODELS)
    parser.add_argument("--seed-votes", type=int, default=arena_load.SEED_VOTES)
    parser.add_argument("--seed", type=int, default=20250601)
    parser.add_argument("--out", help="folder for logs and records (default: a new temporary folder)")
    args = parser.parse_args(argv)
    args.chunk_delay = args.pace  # what arena_load's server environment reads
    ramp = [int(n) for n in args.ramp.split(",") if n.strip()]

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench-stream-load-"))
    if out.exists() and args.out:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    ensure_database(args.database_url)
    arena_load.ensure_redis(args.redis_url)
    progress("preparing the database")
    arena_load.prepare_database(args)
    postmaster = arena_load.postgres_processes(args.database_url)

    steps: list[tuple[str, dict]] = []
    largest = None
    progress(f"starting gunicorn with uvicorn workers ({args.workers}) on port {args.port}")
    server = arena_load.start_server(args, out)
    try:
        progress("warming up")
        arena_load.warm_up(args)
        for viewers in ramp:
            progress(f"{viewers} viewers following the streams: {args.spawn:.0f} s to start, {args.duration:.0f} s")
            result = step(args, out / f"stream-{viewers}", server, postmaster, viewers, "stream")
            steps.append(("stream", result))
            delays = result["delays"]
            progress(
                f"{viewers} viewers: word delay p99 {_ms(delays, 'p99')} ms, {result['battles'].get('ended', 0)} "
                f"battles, {sum(result['errors'].values())} errors"
            )
            if held(args, result):
                largest = viewers
            elif not args.whole_ramp:
                break
    finally:
        progress("stopping gunicorn")
        arena_load.stop_server(server)
    if not args.no_poll:
        viewers = args.poll_viewers or largest or ramp[0]
        progress(f"restarting the site with the row checkpointed every {OLD_SAVE_INTERVAL} s, as when the page polled")
        server = arena_load.start_server(args, out / "poll", env={"ARENA_ANSWER_SAVE_INTERVAL": str(OLD_SAVE_INTERVAL)})
        try:
            arena_load.warm_up(args)
            progress(f"{viewers} viewers polling every {args.poll_interval} s")
            steps.append(("poll", step(args, out / f"poll-{viewers}", server, postmaster, viewers, "poll")))
        finally:
            arena_load.stop_server(server)
    checked = arena_load.check_votes(arena_load.merged([r.pop("records") for _, r in steps]))
    report(args, out, steps, checked, largest)
    return 0


if __name__ == "__main__":
    sys.exit(main())

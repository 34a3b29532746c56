"""The front door from outside: a flood of battle starts and of cookie-clearing votes, on
PostgreSQL under gunicorn behind a trusted proxy, with the site's default limits.

Run with `.venv/bin/python benchmarks/front_door.py` (PostgreSQL and Redis on loopback, as for
benchmarks/arena_load.py, whose database set-up and server it reuses). The site runs with
ARENA_TRUSTED_PROXIES=127.0.0.1/32 (the script is the proxy: it writes X-Forwarded-For) and
ARENA_CHALLENGE=0 (the proof of work is measured by its own tests), every other limit at its
default. Demo answers are paced (ARENA_DEMO_CHUNK_DELAY) so a battle takes a second or two,
as a real one takes longer.

1. A battle from a quiet address, start to both answers, with nothing else going on: the floor.
2. 300 battle starts in a row from one forwarded address, each with fresh cookies, from 8
   threads; meanwhile a battle from another address, timed as in 1. Printed: how many starts
   were refused (429, each with Retry-After), how many battles were stored, and the other
   battle's time against the floor.
3. The site again with the battle limits off (so enough battles exist to vote on) and the
   per-address vote cap at its default: 150 votes, each from a fresh cookie jar at one
   forwarded address. Printed: how many count, against ARENA_ADDRESS_DAILY_VOTES.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from arena_load import ensure_redis, prepare_database, start_server, stop_server
from support import ensure_database, progress

DEFAULT_DATABASE_URL = "postgres://arenasite:arenasite@127.0.0.1:5432/arenasite_bench_front_door"
FLOODER, QUIET, VOTER = "203.0.113.9", "198.51.100.20", "203.0.113.50"
SITE = {
    "ARENA_TRUSTED_PROXIES": "127.0.0.1/32",
    "ARENA_CHALLENGE": "0",
    "ARENA_DEMO_CHUNK_DELAY": "0.01",
    "ARENA_ANSWER_SAVE_INTERVAL": "0.25",
    # arena_load turns these off for its simulated voters; here they are what is measured.
    "ARENA_ADDRESS_DAILY_VOTES": "100",
    "ARENA_VOTER_DAILY_VOTES": "100",
    "ARENA_NETWORK_DAILY_VOTES": "1000",
    "ARENA_BATTLE_RATE_VOTER": "6/m,60/h,300/d",
    "ARENA_BATTLE_RATE_ADDRESS": "10/m,120/h,600/d",
    "ARENA_BATTLE_RATE_NETWORK": "60/m,1200/h,6000/d",
    "ARENA_BATTLES_IN_FLIGHT_VOTER": "2",
    "ARENA_BATTLES_IN_FLIGHT_ADDRESS": "4",
}


class Client:
    """One cookie jar at one forwarded client address."""

    def __init__(self, base: str, address: str):
        self.base, self.address = base, address
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def call(self, path: str, body: dict | None = None) -> tuple[int, dict, dict]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method="GET" if body is None else "POST")
        request.add_header("X-Forwarded-For", self.address)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with self.opener.open(request, timeout=60) as response:
                return response.status, dict(response.headers), json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), json.loads(error.read() or b"{}")

    def battle(self, prompt: str) -> tuple[float, dict]:
        """Start a battle and wait for both answers: (seconds, battle)."""
        started = time.monotonic()
        status, _, battle = self.call("/api/v1/battles/", {"prompt": prompt})
        assert status == 201, (status, battle)
        while battle["status"] == "answering":
            time.sleep(0.05)
            _, _, battle = self.call(f"/api/v1/battles/{battle['id']}/")
        return time.monotonic() - started, battle


def stored_battles(database_url: str) -> int:
    import psycopg

    with psycopg.connect(database_url) as connection:
        return connection.execute("SELECT count(*) FROM battles_battle WHERE source = 'arena'").fetchone()[0]


def counted_votes(database_url: str) -> Counter:
    import psycopg

    with psycopg.connect(database_url) as connection:
        rows = connection.execute("SELECT excluded_reason, count(*) FROM battles_vote GROUP BY 1").fetchall()
    return Counter({reason or "counted": n for reason, n in rows})


def flood(args, base: str) -> None:
    alone = [Client(base, f"198.51.100.{20 + n}").battle("How do tides work?")[0] for n in range(3)]
    before = stored_battles(args.database_url)
    statuses: Counter = Counter()
    missing_retry_after = 0
    lock = threading.Lock()

    def start(n: int) -> None:
        nonlocal missing_retry_after
        status, headers, _ = Client(base, FLOODER).call("/api/v1/battles/", {"prompt": f"Flood {n}: " + "x" * 7900})
        with lock:
            statuses[status] += 1
            if status == 429 and not headers.get("Retry-After"):
                missing_retry_after += 1

    during: list[float] = []
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(start, n) for n in range(300)]
        time.sleep(0.1)  # the flood is under way
        # Other voters' battles, one after another, for as long as the flood lasts.
        while not all(future.done() for future in futures):
            during.append(Client(base, f"198.51.100.{40 + len(during)}").battle("How do tides work on Mars?")[0])
        for future in futures:
            future.result()
    flood_seconds = time.monotonic() - started
    stored = stored_battles(args.database_url) - before - len(during)
    print("\n2. 300 starts from one forwarded address, fresh cookies each, 8 at a time")
    print(f"   answers: {dict(sorted(statuses.items()))}; 429 without Retry-After: {missing_retry_after}")
    print(f"   battles stored from the flood: {stored}; the flood took {flood_seconds:.2f} s")
    print(
        f"   other addresses' battles: median {statistics.median(during):.2f} s during the flood "
        f"({len(during)} battles, slowest {max(during):.2f} s), {statistics.median(alone):.2f} s alone (median of 3)"
    )


def cookie_clearing_votes(args, base: str) -> None:
    before = counted_votes(args.database_url)

    def one(n: int) -> None:
        client = Client(base, VOTER)  # a fresh cookie jar every time
        _, battle = client.battle(f"Question {n}: name a river.")
        status, _, _ = client.call(f"/api/v1/battles/{battle['id']}/vote/", {"winner": "model_a"})
        assert status == 200, status

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(150)))
    after = counted_votes(args.database_url)
    delta = {reason: after[reason] - before.get(reason, 0) for reason in after}
    print("\n3. 150 votes from fresh cookie jars at one forwarded address")
    cap = SITE["ARENA_ADDRESS_DAILY_VOTES"]
    print(f"   counted: {delta.get('counted', 0)} (ARENA_ADDRESS_DAILY_VOTES={cap}), ", end="")
    print(f"excluded as rate_limited: {delta.get('rate_limited', 0)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--port", type=int, default=8093)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    # What arena_load's set-up reads: a small pool of listed demo models and a little history.
    args.models, args.seed_votes, args.seed, args.conn_max_age, args.profile = 4, 300, 1, 60, False
    ensure_database(args.database_url)
    ensure_redis()
    progress("preparing the database")
    prepare_database(args)
    out = Path(tempfile.mkdtemp(prefix="front-door-"))
    base = f"http://127.0.0.1:{args.port}"

    progress("the site with its default limits")
    server = start_server(args, out, env=SITE)
    try:
        alone, _ = Client(base, QUIET).battle("Warm-up: what is a prime?")
        print(f"1. one battle from a quiet address, nothing else going on: {alone:.2f} s")
        flood(args, base)
    finally:
        stop_server(server)

    progress("the site with the battle limits off, the vote caps at their defaults")
    relaxed = SITE | {
        "ARENA_BATTLE_RATE_VOTER": "",
        "ARENA_BATTLE_RATE_ADDRESS": "",
        "ARENA_BATTLE_RATE_NETWORK": "",
        "ARENA_BATTLES_IN_FLIGHT_VOTER": "0",
        "ARENA_BATTLES_IN_FLIGHT_ADDRESS": "0",
    }
    server = start_server(args, out, env=relaxed)
    try:
        cookie_clearing_votes(args, base)
    finally:
        stop_server(server)


if __name__ == "__main__":
    sys.exit(main())

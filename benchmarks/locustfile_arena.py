"""Simulated voters for the load benchmark of the battle API (benchmarks/arena_load.py runs it).

Each locust user is one voter with its own cookie jar (its session): it starts a battle
with a varied prompt, polls it every ARENA_LOAD_POLL_INTERVAL seconds until it is no
longer answering, votes with a random winner, sometimes sends the same vote again (which
must answer 200 with the same body) and sometimes reads the leaderboard. Requests are
named per endpoint ("create", "poll", "vote", "vote again", "leaderboard"), so locust's
statistics group them so; a failure's message starts with the status it had
("status 409: ..."; "status 0" when no response came back).

Every vote is written to a JSON-lines file per process in ARENA_LOAD_OUT, twice: a
"sent" line before the request and an "ack" line once the server answered 200, so the
driver can tell an acknowledged vote from one whose answer was lost (cut when the run
stopped, or a connection error). Each battle also gets a "battle" line with its number of
polls and the seconds from the create request to the end of answering.

At the end, the process that holds the totals (locust's master with --processes) writes
summary.json to ARENA_LOAD_OUT: per request name its count, failures, percentiles and
maximum, the errors, and the run's first and last request times. The driver reads that
rather than locust_stats.csv, which locust rewrites from a greenlet once a second and
whose last state can miss the end of the run.

Settings from the environment (the driver sets them): ARENA_LOAD_OUT (folder, required),
ARENA_LOAD_POLL_INTERVAL (0.05), ARENA_LOAD_REPEAT_SHARE (0.2), ARENA_LOAD_LEADERBOARD_SHARE
(0.1), ARENA_LOAD_ANSWER_TIMEOUT (60 s).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
from pathlib import Path

import gevent
from locust import FastHttpUser, events, task
from locust.runners import WorkerRunner

OUT = Path(os.environ.get("ARENA_LOAD_OUT", "."))
POLL_INTERVAL = float(os.environ.get("ARENA_LOAD_POLL_INTERVAL", "0.05"))
REPEAT_SHARE = float(os.environ.get("ARENA_LOAD_REPEAT_SHARE", "0.2"))
LEADERBOARD_SHARE = float(os.environ.get("ARENA_LOAD_LEADERBOARD_SHARE", "0.1"))
ANSWER_TIMEOUT = float(os.environ.get("ARENA_LOAD_ANSWER_TIMEOUT", "60"))
WINNERS = ("model_a", "model_b", "tie", "tie (bothbad)")

# Prompts are put together from parts, so they differ in topic, length and wording.
_ASKS = (
    "Explain",
    "Summarise",
    "Give three examples of",
    "What are the trade-offs of",
    "Write a short paragraph about",
    "How would you teach",
    "List common mistakes with",
    "Compare two approaches to",
)
_TOPICS = (
    "binary search",
    "sourdough bread",
    "the water cycle",
    "compound interest",
    "garbage collection",
    "photosynthesis",
    "a three-day trip to Lisbon",
    "public key cryptography",
    "the French Revolution",
    "database indexes",
    "learning to juggle",
    "rainwater harvesting",
)
_TAILS = (
    "",
    " to a new programmer.",
    " in plain words, please.",
    " for a ten-year-old.",
    " with one worked example.",
    " and say when it is the wrong choice.",
)

_file = None
_sequence = itertools.count()


def record(kind: str, **fields) -> None:
    """One JSON line in this process's file (opened on first use, so locust's master writes none)."""
    global _file
    if _file is None:
        OUT.mkdir(parents=True, exist_ok=True)
        _file = open(OUT / f"votes-{os.getpid()}.jsonl", "a", buffering=1)  # noqa: SIM115 (open for the process)
    _file.write(json.dumps({"kind": kind, "t": time.time(), **fields}) + "\n")


def prompt(rng: random.Random) -> str:
    return f"{rng.choice(_ASKS)} {rng.choice(_TOPICS)}{rng.choice(_TAILS)} (#{os.getpid()}-{next(_sequence)})"


def failed(response, what: str) -> None:
    detail = response.text[:200] if response.status_code else repr(response.error)[:200]
    response.failure(f"status {response.status_code}: {what}: {detail}")


class Voter(FastHttpUser):
    """One voter: a battle, its polls, a vote; then the next battle at once (no think time)."""

    # Keep the connection open between requests, as a browser does.
    concurrency = 1
    network_timeout = 30.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        self.rng = random.Random()

    @task
    def battle(self) -> None:
        started = time.monotonic()
        with self.client.post(
            "/api/v1/battles/", json={"prompt": prompt(self.rng)}, name="create", catch_response=True
        ) as response:
            if response.status_code != 201:
                failed(response, "create")
                return
            battle_id = response.json()["id"]

        polls, status = 0, "answering"
        while status == "answering":
            if time.monotonic() - started > ANSWER_TIMEOUT:
                record("battle", battle=battle_id, polls=polls, seconds=None, status="timeout")
                return
            gevent.sleep(POLL_INTERVAL)
            polls += 1
            with self.client.get(f"/api/v1/battles/{battle_id}/", name="poll", catch_response=True) as response:
                if response.status_code != 200:
                    failed(response, "poll")
                    continue
                status = response.json()["status"]
        record("battle", battle=battle_id, polls=polls, seconds=time.monotonic() - started, status=status)

        winner = self.rng.choice(WINNERS)
        body = self.vote(battle_id, winner, "vote")
        if body is not None and self.rng.random() < REPEAT_SHARE:
            again = self.vote(battle_id, winner, "vote again")
            if again is not None and again != body:
                record("mismatch", battle=battle_id, first=body, again=again)
        if self.rng.random() < LEADERBOARD_SHARE:
            with self.client.get("/api/v1/leaderboard/", name="leaderboard", catch_response=True) as response:
                if response.status_code != 200:
                    failed(response, "leaderboard")

    def vote(self, battle_id: str, winner: str, name: str) -> dict | None:
        """POST the vote; its body when acknowledged (200), else None."""
        record("sent", battle=battle_id, winner=winner, repeat=name != "vote")
        with self.client.post(
            f"/api/v1/battles/{battle_id}/vote/", json={"winner": winner}, name=name, catch_response=True
        ) as response:
            if response.status_code != 200:
                failed(response, name)
                return None
            body = response.json()
            if body.get("winner") != winner:
                response.failure(f"status 200: {name}: answered winner {body.get('winner')!r}, sent {winner!r}")
                return None
            record("ack", battle=battle_id, winner=winner, repeat=name != "vote")
            return body


_environment = None


@events.init.add_listener
def remember_environment(environment, **kwargs) -> None:
    global _environment
    _environment = environment


@events.quit.add_listener
def write_summary(**kwargs) -> None:
    if _environment is None or isinstance(_environment.runner, WorkerRunner):
        return
    stats = _environment.stats

    def entry(e) -> dict:
        return {
            "requests": e.num_requests,
            "failures": e.num_failures,
            "p50": e.get_response_time_percentile(0.5),
            "p99": e.get_response_time_percentile(0.99),
            "max": e.max_response_time,
            "mean": e.avg_response_time,
        }

    summary = {
        "entries": {e.name: entry(e) for e in stats.entries.values()},
        "total": entry(stats.total),
        "errors": [
            {"name": e.name, "error": str(e.error), "occurrences": e.occurrences} for e in stats.errors.values()
        ],
        "first_request": stats.total.start_time,
        "last_request": stats.total.last_request_timestamp,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "summary.json").write_text(json.dumps(summary, indent=1))

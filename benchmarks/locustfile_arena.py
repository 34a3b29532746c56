"""Simulated voters for the load benchmark of the battle API (benchmarks/arena_load.py runs it).

Each locust user is one voter with its own cookie jar (its session): it starts a battle
with a varied prompt, follows its answers to the end, votes with a random winner,
sometimes sends the same vote again (which must answer 200 with the same body) and
sometimes reads the leaderboard. It follows the answers as the battle page does
(ARENA_LOAD_MODE=stream): it reads the battle's event stream, GET /api/v1/battles/{id}/stream/,
to its `end` event and checks that each side's text events put together are the answer the
end's battle holds; or as the page did before the stream (ARENA_LOAD_MODE=poll): it polls
the battle every ARENA_LOAD_POLL_INTERVAL seconds until it is no longer answering. Requests
are named per endpoint ("create", "stream", "poll", "vote", "vote again", "leaderboard"), so
locust's statistics group them so; a stream's time is the whole stream's, to its end; a
failure's message starts with the status it had ("status 409: ..."; "status 0" when no
response came back).

Every vote is written to a JSON-lines file per process in ARENA_LOAD_OUT, twice: a
"sent" line before the request and an "ack" line once the server answered 200, so the
driver can tell an acknowledged vote from one whose answer was lost (cut when the run
stopped, or a connection error). Each battle also gets a "battle" line with its number of
polls (0 when streamed), the seconds from the create request to the end of answering and,
when streamed, whether the stream carried both answers whole.

With ARENA_LOAD_PACING (seconds) each voter starts a battle every that many seconds instead
of at once after the last (locust's constant_pacing): the users together offer a steady rate
of battles, users / pacing per second, as long as a battle takes less than the pacing.

At the end, the process that holds the totals (locust's master with --processes) writes
summary.json to ARENA_LOAD_OUT: per request name its count, failures, percentiles and
maximum, the errors, and the run's first and last request times. The driver reads that
rather than locust_stats.csv, which locust rewrites from a greenlet once a second and
whose last state can miss the end of the run.

Settings from the environment (the driver sets them): ARENA_LOAD_OUT (folder, required),
ARENA_LOAD_MODE (stream), ARENA_LOAD_POLL_INTERVAL (0.05), ARENA_LOAD_PACING (none),
ARENA_LOAD_REPEAT_SHARE (0.2), ARENA_LOAD_LEADERBOARD_SHARE (0.1), ARENA_LOAD_ANSWER_TIMEOUT (60 s).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
from pathlib import Path

import gevent
from locust import FastHttpUser, constant, constant_pacing, events, task
from locust.runners import WorkerRunner

OUT = Path(os.environ.get("ARENA_LOAD_OUT", "."))
MODE = os.environ.get("ARENA_LOAD_MODE", "stream")
PACING = float(os.environ.get("ARENA_LOAD_PACING") or 0)
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
    """One voter: a battle, its answers followed to the end, a vote; then the next battle, at
    once (no think time) or at the next ARENA_LOAD_PACING tick."""

    # Keep the connection open between requests, as a browser does.
    concurrency = 1
    network_timeout = 30.0
    connection_timeout = 10.0
    wait_time = constant_pacing(PACING) if PACING else constant(0)

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

        if MODE == "stream":
            whole = self.follow_stream(battle_id)
            if whole is None:
                return
            record("battle", battle=battle_id, polls=0, seconds=time.monotonic() - started, whole=whole)
        else:
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

    def follow_stream(self, battle_id: str) -> bool | None:
        """Read the battle's event stream to its end; whether each side's text events put
        together are the answer the end carries (None when the stream failed)."""
        began = time.perf_counter()
        with self.client.get(
            f"/api/v1/battles/{battle_id}/stream/", name="stream", stream=True, catch_response=True
        ) as response:
            if response.status_code != 200:
                failed(response, "stream")
                return None
            try:
                # The server ends the response after the end event: read it whole, then parse.
                data = b"".join(response.iter_content(chunk_size=65536, decode_content=False))
            except Exception as exc:  # noqa: BLE001 (any transport error fails this stream)
                response.failure(f"status 0: stream: {exc!r}"[:200])
                return None
            response.request_meta["response_time"] = (time.perf_counter() - began) * 1000
            texts, end = {"a": [], "b": []}, None
            for block in data.decode().split("\n\n"):
                fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
                if "data" not in fields:
                    continue
                if fields.get("event") == "end":
                    end = json.loads(fields["data"])
                else:
                    piece = json.loads(fields["data"])
                    texts[piece["side"]].append(piece["text"])
            if end is None:
                response.failure("status 200: stream: no end event")
                return None
            return all("".join(texts[side]) == end[f"conversation_{side}"][-1]["content"] for side in ("a", "b"))

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

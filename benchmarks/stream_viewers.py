"""The viewers of benchmarks/stream_load.py: an asyncio load generator, run in its own process.

    .venv/bin/python benchmarks/stream_viewers.py --base http://127.0.0.1:8766 --viewers 250 --out DIR

Each viewer has its own httpx client, so its own cookie jar (its session) and connection, and
its own connection for the event streams (EventStream below: a plain HTTP/1.1 reader, with
the session's cookies, kept open from one stream to the next). It starts a battle, follows
its answers to the end, votes with a random winner and starts the next, with no think time.
It follows the answers either as the battle page does (--mode
stream: it reads GET /api/v1/battles/{id}/stream/ to its `end` event), or as the page did
before the stream (--mode poll: GET /api/v1/battles/{id}/ every --poll-interval seconds
until the battle is no longer answering).

The viewers start evenly over --spawn seconds; the measured window is the --duration seconds
after that. Only battles started in the window count, and only requests sent in it; at the
window's end no viewer starts another battle, and each may take --drain seconds to finish
the one it follows. The process prints the window's edges on stdout at its start, as
`window <start> <end>` in seconds of the machine's monotonic clock (the driver samples the
processors' time there).

The delay of a word: a demo answer comes word by word, one every --pace seconds. For each
side of a battle, were every word exactly `pace` after the one before, word k would arrive at
t0 + k * pace; t0 is the earliest start that no word of the side beats, so the most punctual
word is on time (delay 0) and every other is late by its delay. A word's delay is the time
the viewer receives it (the event, or the poll, that first carries it) minus t0 + k * pace.
So a piece of several words gives each its own delay: words the server holds back to join
them, or that a poll finds late, count as late as they are; a generator that falls behind
its pace shows as words late by as much. Every word of every side counts.

Written to --out: summary.json (counts, percentiles of the delays and of each request's
latency, errors, the viewers streaming at once) and votes-<pid>.jsonl, a "sent" line before
each vote and an "ack" line once it is answered 200, in the format of
benchmarks/locustfile_arena.py, for the driver's check against the database.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import re
import sys
import time
from array import array
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx

WINNERS = ("model_a", "model_b", "tie", "tie (bothbad)")
WORD = re.compile(r"\S+\s*")  # a demo answer's pieces (battles/clients/demo.py)
_ASKS = ("Explain", "Summarise", "Give three examples of", "What are the trade-offs of", "How would you teach")
_TOPICS = ("binary search", "sourdough bread", "the water cycle", "compound interest", "database indexes")


class EventStream:
    """A viewer's connection for its event streams: HTTP/1.1 on asyncio's streams, kept open
    from one battle's stream to the next, as a browser keeps it.

    The viewer's other requests go through httpx; the streams do not, because httpx (through
    httpcore and h11) spends about 75 µs of processor time on each chunk of a stream where
    this reader spends about 15 (measured side by side on this machine): a thousand viewers
    at 60 events a second would need more than the machine's two cores through httpx, and the
    delays would be the load generator's, not the server's."""

    def __init__(self, base: str):
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def open(self, path: str, cookies: httpx.Cookies) -> tuple[int, dict[str, str]]:
        """Send the GET; its status and headers. A kept connection the server closed meanwhile
        is opened again once."""
        cookie = "; ".join(f"{c.name}={c.value}" for c in cookies.jar)
        request = f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAccept: text/event-stream\r\n"
        request += (f"Cookie: {cookie}\r\n" if cookie else "") + "\r\n"
        for attempt in (1, 2):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            self.writer.write(request.encode())
            try:
                status_line = await self.reader.readline()
            except ConnectionError:
                status_line = b""
            if status_line:
                break
            self.close()
            if attempt == 2:
                raise ConnectionError("the server closed the connection without an answer")
        headers = {}
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(status_line.split()[1]), headers

    async def chunks(self, headers: dict[str, str]) -> AsyncIterator[bytes]:
        """The body, as it comes (chunked, or of a given length)."""
        reader = self.reader
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await reader.readline()).split(b";")[0], 16)
                if size == 0:
                    while (await reader.readline()) not in (b"\r\n", b""):
                        pass  # trailers
                    break
                yield (await reader.readexactly(size + 2))[:-2]
        else:
            yield await reader.readexactly(int(headers.get("content-length", 0)))
        if headers.get("connection", "").lower() == "close":
            self.close()


class Viewers:
    def __init__(self, args):
        self.args = args
        self.delays = array("d")  # seconds, every counted word
        self.first_piece = array("d")  # seconds from the create request to the first piece
        self.latency: dict[str, array] = defaultdict(lambda: array("d"))
        self.requests: Counter = Counter()  # requests sent in the window, by name
        self.errors: Counter = Counter()
        self.battles = Counter()  # battles started in the window: ended, whole, voted, failed...
        self.streaming = 0  # viewers reading a stream (or polling) right now
        self.streaming_samples: list[int] = []
        self.window = (float("inf"), float("inf"))
        self.stopping = False
        self.numbers = itertools.count()
        self.votes = open(Path(args.out) / f"votes-{os.getpid()}.jsonl", "w", buffering=1)  # noqa: SIM115

    def in_window(self, at: float) -> bool:
        return self.window[0] <= at < self.window[1]

    def timed(self, name: str, began: float, counted: bool) -> None:
        if counted:
            self.requests[name] += 1
            self.latency[name].append(time.monotonic() - began)

    def failed(self, name: str, what: str, counted: bool) -> None:
        if counted:
            self.errors[f"{name}: {what}"] += 1

    def record(self, kind: str, **fields) -> None:
        self.votes.write(json.dumps({"kind": kind, "t": time.time(), **fields}) + "\n")

    async def viewer(self, k: int) -> None:
        await asyncio.sleep(k * self.args.spawn / self.args.viewers)
        rng = random.Random(k)
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        timeout = httpx.Timeout(self.args.timeout, connect=30.0)
        events = EventStream(self.args.base)
        async with httpx.AsyncClient(base_url=self.args.base, limits=limits, timeout=timeout) as client:
            while not self.stopping:
                try:
                    await self.battle(client, events, rng)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 (counted; the viewer goes on)
                    self.failed("battle", type(exc).__name__, True)
                    events.close()
                    await asyncio.sleep(0.5)
        events.close()

    async def battle(self, client: httpx.AsyncClient, events: EventStream, rng: random.Random) -> None:
        began = time.monotonic()
        counted = self.in_window(began)
        prompt = f"{rng.choice(_ASKS)} {rng.choice(_TOPICS)} (#{os.getpid()}-{next(self.numbers)})"
        try:
            response = await client.post("/api/v1/battles/", json={"prompt": prompt})
        except httpx.HTTPError as exc:
            self.failed("create", type(exc).__name__, counted)
            await asyncio.sleep(0.5)
            return
        self.timed("create", began, counted)
        if response.status_code != 201:
            self.failed("create", f"status {response.status_code}", counted)
            await asyncio.sleep(0.5)
            return
        battle_id = response.json()["id"]
        if counted:
            self.battles["started"] += 1
        self.streaming += 1
        try:
            if self.args.mode == "stream":
                end = await self.follow_stream(client, events, battle_id, began, counted)
            else:
                end = await self.poll(client, battle_id, began, counted)
        finally:
            self.streaming -= 1
        if end is None:
            return
        if counted:
            self.battles["ended"] += 1
        if end.get("status") != "ready":
            self.failed("battle", f"ended {end.get('status')}", counted)
            return
        winner = rng.choice(WINNERS)
        self.record("sent", battle=battle_id, winner=winner, repeat=False)
        began_vote = time.monotonic()
        try:
            response = await client.post(f"/api/v1/battles/{battle_id}/vote/", json={"winner": winner})
        except httpx.HTTPError as exc:
            self.failed("vote", type(exc).__name__, counted)
            return
        self.timed("vote", began_vote, counted)
        if response.status_code != 200 or response.json().get("winner") != winner:
            self.failed("vote", f"status {response.status_code}", counted)
            return
        self.record("ack", battle=battle_id, winner=winner, repeat=False)
        if counted:
            self.battles["voted"] += 1

    @staticmethod
    def arrived(side: dict, text: str, at: float) -> None:
        """Note the words `text` brings to one side, and when."""
        side["text"].append(text)
        words = len(WORD.findall(text))
        if words:
            side["pieces"].append((at, side["words"], side["words"] + words - 1))
            side["words"] += words

    def count_delays(self, sides: dict) -> None:
        """Each word's delay over its pace (see the module's docstring)."""
        pace = self.args.pace
        for side in sides.values():
            if not side["pieces"]:
                continue
            # A piece's last word is its most punctual: the earliest start no word beats.
            t0 = min(at - last * pace for at, _, last in side["pieces"])
            for at, first, last in side["pieces"]:
                for k in range(first, last + 1):
                    self.delays.append(at - (t0 + k * pace))

    async def follow_stream(self, client, events: EventStream, battle_id: str, began: float, counted: bool):
        sides = {s: {"pieces": [], "words": 0, "text": []} for s in "ab"}
        end, first, opened = None, None, time.monotonic()
        try:
            async with asyncio.timeout(self.args.timeout):
                status, headers = await events.open(f"/api/v1/battles/{battle_id}/stream/", client.cookies)
                if status != 200:
                    async for _ in events.chunks(headers):
                        pass
                    self.failed("stream", f"status {status}", counted)
                    return None
                buffer = b""
                async for chunk in events.chunks(headers):
                    at = time.monotonic()
                    buffer += chunk
                    while b"\n\n" in buffer:
                        block, buffer = buffer.split(b"\n\n", 1)
                        fields = dict(line.split(": ", 1) for line in block.decode().split("\n") if ": " in line)
                        if "data" not in fields:
                            continue
                        if fields.get("event") == "end":
                            end = json.loads(fields["data"])
                            continue
                        piece = json.loads(fields["data"])
                        if first is None:
                            first = at - began
                        self.arrived(sides[piece["side"]], piece["text"], at)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
            events.close()
            self.failed("stream", type(exc).__name__, counted)
            return None
        self.timed("stream", opened, counted)
        if end is None:
            self.failed("stream", "no end event", counted)
            return None
        if counted:
            self.count_delays(sides)
            if first is not None:
                self.first_piece.append(first)
            whole = all("".join(sides[s]["text"]) == end[f"conversation_{s}"][-1]["content"] for s in "ab")
            self.battles["whole" if whole else "not whole"] += 1
        return end

    async def poll(self, client, battle_id: str, began: float, counted: bool) -> dict | None:
        sides = {s: {"pieces": [], "words": 0, "text": []} for s in "ab"}
        first = None
        while True:
            await asyncio.sleep(self.args.poll_interval)
            polled = time.monotonic()
            try:
                response = await client.get(f"/api/v1/battles/{battle_id}/")
            except httpx.HTTPError as exc:
                self.failed("poll", type(exc).__name__, self.in_window(polled))
                continue
            at = time.monotonic()
            self.timed("poll", polled, self.in_window(polled))
            if response.status_code != 200:
                self.failed("poll", f"status {response.status_code}", self.in_window(polled))
                continue
            battle = response.json()
            for s in "ab":
                last = battle[f"conversation_{s}"][-1]
                answer = last["content"] if last["role"] == "assistant" else ""
                have = sum(len(t) for t in sides[s]["text"])
                if len(answer) > have:
                    if first is None:
                        first = at - began
                    self.arrived(sides[s], answer[have:], at)
            if battle["status"] != "answering":
                break
            if at - began > self.args.timeout:
                self.failed("poll", "still answering at the timeout", counted)
                return None
        if counted:
            self.count_delays(sides)
            if first is not None:
                self.first_piece.append(first)
            whole = all("".join(sides[s]["text"]) == battle[f"conversation_{s}"][-1]["content"] for s in "ab")
            self.battles["whole" if whole else "not whole"] += 1
        return battle

    async def run(self) -> None:
        args = self.args
        start = time.monotonic()
        self.window = (start + args.spawn, start + args.spawn + args.duration)
        # On the machine's monotonic clock, which the driver shares: it samples the processors
        # at these times itself, however late this loop runs.
        print("window", *self.window, flush=True)
        tasks = [asyncio.create_task(self.viewer(k)) for k in range(args.viewers)]
        await asyncio.sleep(args.spawn)
        while time.monotonic() < self.window[1]:
            await asyncio.sleep(min(1.0, max(0.0, self.window[1] - time.monotonic())))
            self.streaming_samples.append(self.streaming)
        self.stopping = True
        done, pending = await asyncio.wait(tasks, timeout=args.drain)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self.battles["cut at the drain"] += len(pending)
        self.votes.close()

    def summary(self) -> dict:
        import numpy as np

        def quantiles(values) -> dict:
            if not len(values):
                return {"n": 0}
            data = np.frombuffer(values, dtype=np.float64)
            p50, p99, p999 = np.percentile(data, [50, 99, 99.9])
            return {"n": len(data), "p50": p50, "p99": p99, "p999": p999, "max": float(data.max())}

        return {
            "viewers": self.args.viewers,
            "mode": self.args.mode,
            "seconds": self.args.duration,
            "delays": quantiles(self.delays),
            "first_piece": quantiles(self.first_piece),
            "latency": {name: quantiles(values) for name, values in self.latency.items()},
            "requests": dict(self.requests),
            "errors": dict(self.errors),
            "battles": dict(self.battles),
            "streaming": {
                "min": min(self.streaming_samples, default=0),
                "mean": sum(self.streaming_samples) / max(len(self.streaming_samples), 1),
            },
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the site, e.g. http://127.0.0.1:8766")
    parser.add_argument("--viewers", type=int, required=True)
    parser.add_argument("--mode", choices=("stream", "poll"), default="stream")
    parser.add_argument("--spawn", type=float, default=10.0, help="seconds over which the viewers start")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds measured after the spawn")
    parser.add_argument("--drain", type=float, default=30.0, help="seconds to finish the battles followed")
    parser.add_argument("--pace", type=float, required=True, help="seconds between two words of an answer")
    parser.add_argument("--poll-interval", type=float, default=0.4)
    parser.add_argument("--timeout", type=float, default=120.0, help="the longest a request or battle may take")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    viewers = Viewers(args)
    try:
        import uvloop  # the server's event loop too (uvicorn[standard]): less of the processors for the viewers

        uvloop.run(viewers.run())
    except ImportError:
        asyncio.run(viewers.run())
    (Path(args.out) / "summary.json").write_text(json.dumps(viewers.summary(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

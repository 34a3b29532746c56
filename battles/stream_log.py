"""The pieces of a battle's answers on their way to viewers: a log per battle turn.

The answering tasks (battles/answering.py) append each piece of each side's answer as it
arrives, then mark the turn closed once the battle is ready or failed. Viewers of
`GET /api/v1/battles/{id}/stream/` (battles/stream_api.py) follow the log of the battle's
latest turn.

Where the log lives:

- With Redis (ARENA_STREAM_REDIS_URL), a Redis Stream per battle turn: XADD per piece,
  readers block in XREAD, so any web process or machine serves any viewer. Streams are
  capped in length and expire ARENA_STREAM_KEEP_SECONDS after their last entry.
- Without (the embedded default, no server), an in-process broadcaster: a viewer served by
  the process that generates follows the pieces as they come; any other viewer follows the
  battle row, whose checkpoints (ARENA_ANSWER_SAVE_INTERVAL) it reads as they are written.

Whatever the source, the battle row is the truth at the end: when the turn is closed the
reader sends whatever of the final answers the viewer does not have yet, so nothing is lost
if a log entry was (a Redis hiccup, an expired stream, a process that was not the generator).

Event ids are cursors over the answers, `<turn>.<characters of A>.<characters of B>`: what
the viewer has after that event. A regenerate answers the turn again with fresh pieces, so
the answers of its attempt `n` (2 and after) are counted in ids `<turn>.<n>.<A>.<B>`: never
an id of an earlier attempt, and an id of one names where to resume in that attempt only. A
viewer that reconnects with `Last-Event-ID` is sent the answers from there on, whichever
process serves it and whether it reads the log or the row, so no piece is sent twice and
none is missed; nothing is generated again.

The log also carries the voter's stop back to the generator (`request_stop`): each side's
writer learns it as it adds its next piece (in the same Redis round trip, or from the
in-process channel), and the row's checkpoint write refuses a stopped turn, so a generator
in another process without Redis learns it at its next checkpoint.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection

from .models import Battle

logger = logging.getLogger(__name__)

SIDES = ("a", "b")
# Connections to Redis per process: the viewers' (one each while it waits for pieces) and the
# answer loop's (shared by every answer it generates).
READER_CONNECTIONS = 10_000
# A viewer's log is read at most this often; the pieces in between go out together.
COALESCE_SECONDS = 0.1
# An answer's pieces are written to Redis at most this often (after the first, at once).
WRITE_INTERVAL = 0.05
WRITER_CONNECTIONS = 32


class Cursor(NamedTuple):
    """How much of each side's answer of `turn` (its `attempt`) a viewer has."""

    turn: int
    a: int = 0
    b: int = 0
    attempt: int = 1

    @property
    def event_id(self) -> str:
        if self.attempt == 1:
            return f"{self.turn}.{self.a}.{self.b}"
        return f"{self.turn}.{self.attempt}.{self.a}.{self.b}"

    @classmethod
    def parse(cls, last_event_id: str, turn: int, attempt: int = 1) -> Cursor:
        """The cursor a reconnecting viewer names; from the start of `turn` when it names none,
        names something else, another turn or another attempt (begun since)."""
        try:
            parts = [int(part) for part in last_event_id.split(".")]
        except ValueError:
            return cls(turn, attempt=attempt)
        if len(parts) == 3:
            their_turn, a, b = parts
            their_attempt = 1
        elif len(parts) == 4 and parts[1] > 1:
            their_turn, their_attempt, a, b = parts
        else:
            return cls(turn, attempt=attempt)
        if their_turn != turn or their_attempt != attempt or a < 0 or b < 0:
            return cls(turn, attempt=attempt)
        return cls(turn, a, b, attempt)

    def advanced(self, side: str, characters: int) -> Cursor:
        return self._replace(**{side: getattr(self, side) + characters})


# What a reader yields: the next text of a side, or the end of the turn (the row is final then).
@dataclass(frozen=True)
class Text:
    side: str
    text: str
    cursor: Cursor


@dataclass(frozen=True)
class End:
    cursor: Cursor
    battle: Battle  # the row as it ended, with its vote: what the end event carries


def _key(question_id: str, turn: int, attempt: int = 1) -> str:
    # The first attempt keeps the key it always had; a regenerate's answers get their own log.
    return f"arena:stream:{question_id}:{turn}" + (f".{attempt}" if attempt > 1 else "")


def _stop_key(key: str) -> str:
    return key.replace("arena:stream:", "arena:stop:", 1)


def redis_url() -> str:
    return settings.ARENA_STREAM_REDIS_URL


# --- writing: the answering tasks ------------------------------------------------------------


class TurnLog:
    """One side's writer of one battle turn. Never raises: a log that cannot be written costs
    the viewers their live pieces (they fall back to the row), never the voter the answer."""

    def __init__(self, question_id: str, turn: int, side: str, attempt: int = 1):
        self.question_id, self.turn, self.side = question_id, turn, side
        self.key = _key(question_id, turn, attempt)
        self.offset = 0
        # Whether the voter asked to stop, as learnt when the latest piece was added.
        self.stop_requested = False
        # add(): the pieces waiting to be written to Redis, and when they will be.
        self._pending: list[str] = []
        self._sent = False
        self._timer: asyncio.TimerHandle | None = None
        self._writing = asyncio.Lock()
        self._flushes: set[asyncio.Task] = set()
        if not redis_url():
            # Open the turn's channel before the first piece: a viewer of this process who
            # arrives while the model has not answered yet follows it, not the row's checkpoints.
            _local.open(self.key)

    def piece(self, text: str) -> None:
        """Add the next piece of the side's answer (blocking)."""
        if not text:
            return
        try:
            if redis_url():
                stopped = _redis_append(self.key, {"s": self.side, "o": self.offset, "t": text})
            else:
                stopped = _local.append(self.key, self.side, self.offset, text)
            self.stop_requested = self.stop_requested or stopped
        except Exception:
            logger.exception("battle %s: could not add a piece to the stream log", self.question_id)
        self.offset += len(text)

    async def add(self, text: str) -> None:
        """`piece()` for a writer on an event loop. The embedded log is a list append under a
        lock, written in place. Redis is written without blocking the loop, and the pieces that
        arrive within WRITE_INTERVAL of each other go as one entry: a round trip per token
        would cost more than the rest of the answer's work. The first piece goes at once (the
        viewer is waiting for it); call flush() when the answer ends."""
        if not text:
            return
        if not redis_url():
            try:
                self.stop_requested = _local.append(self.key, self.side, self.offset, text) or self.stop_requested
            except Exception:
                logger.exception("battle %s: could not add a piece to the stream log", self.question_id)
            self.offset += len(text)
            return
        self._pending.append(text)
        if not self._sent:
            await self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(WRITE_INTERVAL, self._flush_later)

    def _flush_later(self) -> None:
        self._timer = None
        task = asyncio.ensure_future(self.flush())
        self._flushes.add(task)  # kept referenced until done
        task.add_done_callback(self._flushes.discard)

    async def flush(self) -> None:
        """Write what is waiting (Redis only; a no-op otherwise)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        async with self._writing:  # entries in order, each with its offset
            if not self._pending:
                return
            text = "".join(self._pending)
            self._pending.clear()
            offset, self.offset, self._sent = self.offset, self.offset + len(text), True
            try:
                stopped = await _redis_append_async(self.key, {"s": self.side, "o": offset, "t": text})
                self.stop_requested = self.stop_requested or stopped
            except Exception:
                logger.exception("battle %s: could not add a piece to the stream log", self.question_id)


def close_turn(question_id: str, turn: int, attempt: int = 1) -> None:
    """The turn is over and its battle row final: readers send the end. Never raises."""
    try:
        if redis_url():
            _redis_append(_key(question_id, turn, attempt), {"end": 1})
        else:
            _local.close(_key(question_id, turn, attempt))
    except Exception:
        logger.exception("battle %s: could not close the stream log", question_id)


def request_stop(question_id: str, turn: int, attempt: int = 1) -> None:
    """Tell the writers of the turn that the voter stopped it (they end at their next piece).
    Never raises: the row's checkpoint carries the stop too, later."""
    key = _key(question_id, turn, attempt)
    try:
        if redis_url():
            _sync_redis(redis_url()).set(_stop_key(key), 1, ex=settings.ARENA_STREAM_KEEP_SECONDS)
        else:
            _local.stop(key)
    except Exception:
        logger.exception("battle %s: could not signal the stop on the stream log", question_id)


@functools.cache
def _sync_redis(url: str):
    import redis

    return redis.Redis.from_url(url)


def _redis_append(key: str, fields: dict) -> bool:
    """Add an entry to the turn's stream; whether the voter has asked to stop the turn (read in
    the same round trip, so learning of a stop costs the writer nothing)."""
    pipe = _sync_redis(redis_url()).pipeline(transaction=False)
    _append_commands(pipe, key, fields)
    return bool(pipe.execute()[-1])


async def _redis_append_async(key: str, fields: dict) -> bool:
    pipe = _async_redis_writer().pipeline(transaction=False)
    _append_commands(pipe, key, fields)
    return bool((await pipe.execute())[-1])


def _append_commands(pipe, key: str, fields: dict) -> None:
    # Capped well above the longest answer in pieces (each piece is at least a character), so
    # a turn's log is never trimmed while read; it expires once nobody can still be watching.
    cap = 2 * settings.ARENA_MODEL_MAX_ANSWER_CHARS + 16
    pipe.xadd(key, fields, maxlen=cap, approximate=True)
    pipe.expire(key, settings.ARENA_STREAM_KEEP_SECONDS)
    pipe.exists(_stop_key(key))


# --- the in-process broadcaster (no server) --------------------------------------------------


@dataclass
class _Channel:
    pieces: list[tuple[str, int, str]] = field(default_factory=list)  # (side, offset, text)
    closed: bool = False
    touched: float = field(default_factory=time.monotonic)
    waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(default_factory=set)


class _LocalLog:
    """Each battle turn this process generates: its pieces so far, and the readers waiting."""

    def __init__(self):
        self._lock = threading.Lock()
        self._channels: dict[str, _Channel] = {}
        self._stopped: dict[str, float] = {}  # key -> when the stop was asked

    def append(self, key: str, side: str, offset: int, text: str) -> bool:
        """Add a piece; whether the voter has asked to stop the turn."""
        with self._lock:
            channel = self._channels.get(key)
            if channel is None:
                self._sweep()
                channel = self._channels[key] = _Channel()
            channel.pieces.append((side, offset, text))
            self._wake(channel)
            return key in self._stopped

    def open(self, key: str) -> None:
        with self._lock:
            if key not in self._channels:
                self._sweep()
                self._channels[key] = _Channel()

    def stop(self, key: str) -> None:
        # Kept apart from the channels: a channel in this process means "generated here", and
        # readers follow it; a stop may arrive before the first piece, or for another process.
        with self._lock:
            self._sweep()
            self._stopped[key] = time.monotonic()

    def close(self, key: str) -> None:
        with self._lock:
            channel = self._channels.setdefault(key, _Channel())
            channel.closed = True
            self._wake(channel)

    def channel(self, key: str) -> _Channel | None:
        with self._lock:
            return self._channels.get(key)

    def read(self, key: str, start: int) -> tuple[list[tuple[str, int, str]], bool]:
        with self._lock:
            channel = self._channels[key]
            return channel.pieces[start:], channel.closed

    def waiter(self, key: str) -> asyncio.Event:
        """An event set at the next change of the channel; call forget() when done with it."""
        event = asyncio.Event()
        with self._lock:
            self._channels[key].waiters.add((asyncio.get_running_loop(), event))
        return event

    def forget(self, key: str, event: asyncio.Event) -> None:
        with self._lock:
            channel = self._channels.get(key)
            if channel is not None:
                channel.waiters = {(loop, e) for loop, e in channel.waiters if e is not event}

    def _wake(self, channel: _Channel) -> None:
        channel.touched = time.monotonic()
        for loop, event in channel.waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # the viewer's loop is gone
                pass

    def _sweep(self) -> None:
        horizon = time.monotonic() - settings.ARENA_STREAM_KEEP_SECONDS
        for key in [k for k, c in self._channels.items() if c.touched < horizon]:
            del self._channels[key]
        for key in [k for k, at in self._stopped.items() if at < horizon]:
            del self._stopped[key]


_local = _LocalLog()


# --- reading: the viewers ----------------------------------------------------------------------


def db(function: Callable) -> Callable:
    """A database read for an async reader, run as Django runs the request's other sync code.

    The connection is closed after each read: a viewer may wait minutes between reads, and an
    open connection per viewer would run a busy database out of them. (Never inside a
    transaction, which only a test holds around a request.)
    """

    def run(*args):
        try:
            return function(*args)
        finally:
            if not connection.in_atomic_block:
                connection.close()

    return sync_to_async(run, thread_sensitive=True)


def _answers(pk: int) -> tuple[str, tuple[int, int], str, str]:
    """The row's status, (turn, attempt) and latest answers (as last checkpointed or final)."""
    status, turn, attempt, a, b = Battle.objects.filter(pk=pk).values_list(
        "status", "turn", "attempt", "conversation_a", "conversation_b"
    )[0]
    return status, (turn, attempt), a[-1]["content"], b[-1]["content"]


def _final_row(pk: int) -> Battle:
    return Battle.objects.select_related("vote").get(pk=pk)


async def follow(battle: Battle, cursor: Cursor) -> AsyncIterator[Text | End]:
    """The rest of the battle's latest turn after `cursor`, then its end."""
    key = _key(battle.question_id, cursor.turn, cursor.attempt)
    round_ = (cursor.turn, cursor.attempt)
    if redis_url():
        source = _follow_redis(battle, key, round_)
    elif _local.channel(key) is not None:
        source = _follow_local(key)
    else:
        source = _follow_row(battle, round_, key)
    async for side, offset, text in source:
        have = getattr(cursor, side)
        if offset + len(text) <= have:
            continue  # the viewer had it (a reconnect)
        if offset > have:
            # A gap in the log (it expired or lost an entry): the row fills it at the end.
            continue
        text = text[have - offset :]
        cursor = cursor.advanced(side, len(text))
        yield Text(side, text, cursor)
    # The turn is over and the row final: what the log did not carry, the row does. Read once,
    # with the vote, for the end event too.
    final = await db(_final_row)(battle.pk)
    if (final.turn, final.attempt) == round_:
        for side in SIDES:
            answer = getattr(final, f"conversation_{side}")[-1]["content"]
            have = getattr(cursor, side)
            if len(answer) > have:
                cursor = cursor.advanced(side, len(answer) - have)
                yield Text(side, answer[have:], cursor)
    yield End(cursor, final)


class _Pace:
    """At most one read of the log per COALESCE_SECONDS for a viewer: what arrives in between is
    sent as one event per side. A model sends a token at a time (30 a second per side is usual),
    and an event per token would cost the server a read, a write to the socket and the viewer's
    page a render each; a tenth of a second is below what a reader notices. A piece that arrives
    after a quiet spell is sent at once."""

    def __init__(self):
        self.next_read = 0.0

    async def wait(self) -> None:
        loop = asyncio.get_running_loop()
        delay = self.next_read - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        self.next_read = loop.time() + COALESCE_SECONDS


def _coalesced(pieces: list[tuple[str, int, str]]) -> list[tuple[str, int, str]]:
    """Pieces read together, adjacent pieces of a side joined: fewer, larger events."""
    merged: list[tuple[str, int, str]] = []
    for side, offset, text in pieces:
        if merged and merged[-1][0] == side and merged[-1][1] + len(merged[-1][2]) == offset:
            merged[-1] = (side, merged[-1][1], merged[-1][2] + text)
        else:
            merged.append((side, offset, text))
    return merged


async def _follow_local(key: str) -> AsyncIterator[tuple[str, int, str]]:
    read = 0
    pace = _Pace()
    while True:
        await pace.wait()
        event = _local.waiter(key)
        try:
            pieces, closed = _local.read(key, read)
            if not pieces and not closed:
                await event.wait()
                pieces, closed = _local.read(key, read)
        finally:
            _local.forget(key, event)
        read += len(pieces)
        for piece in _coalesced(pieces):
            yield piece
        if closed:
            return


async def _follow_row(battle: Battle, round_: tuple[int, int], key: str) -> AsyncIterator[tuple[str, int, str]]:
    """Another process generates (or did): the answers as its checkpoints reach the row. If
    this process turns out to be the one generating (its answering thread had not started
    when the viewer came), the viewer moves to its live pieces."""
    interval = max(settings.ARENA_STREAM_POLL_INTERVAL, 0.05)
    while True:
        if _local.channel(key) is not None:
            async for piece in _follow_local(key):
                yield piece
            return
        status, row_round, a, b = await db(_answers)(battle.pk)
        if row_round != round_ or status != Battle.Status.ANSWERING:
            return  # the end reads the final row
        for side, answer in (("a", a), ("b", b)):
            if answer:
                yield side, 0, answer  # follow() keeps what the viewer does not have
        await asyncio.sleep(interval)


_async_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _async_redis():
    """One connection pool per event loop (a uvicorn worker has one; tests have several)."""
    import redis.asyncio

    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        # A blocked XREAD waits up to ARENA_STREAM_IDLE_CHECK_SECONDS for an entry: the socket's
        # read timeout must outlast it with room to spare (redis-py 8's default, 5 s, cut quiet
        # waits, and under load a reply was seen to come several seconds after the block).
        timeout = settings.ARENA_STREAM_IDLE_CHECK_SECONDS + 30
        # Each viewer holds a connection while its XREAD blocks: as many as viewers, which Redis
        # bounds itself (maxclients, 10,000 by default), not redis-py's default of 100.
        client = _async_clients[loop] = redis.asyncio.Redis.from_url(
            redis_url(), socket_timeout=timeout, max_connections=READER_CONNECTIONS
        )
    return client


_async_writers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _async_redis_writer():
    """The answer loop's client: every answer being generated appends its pieces through a few
    shared connections (each append is one short round trip), waiting for a free one rather
    than opening a connection per answer."""
    import redis.asyncio

    loop = asyncio.get_running_loop()
    client = _async_writers.get(loop)
    if client is None:
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            redis_url(), max_connections=WRITER_CONNECTIONS, timeout=10, socket_timeout=10
        )
        client = _async_writers[loop] = redis.asyncio.Redis(connection_pool=pool)
    return client


async def _follow_redis(battle: Battle, key: str, round_: tuple[int, int]) -> AsyncIterator[tuple[str, int, str]]:
    client = _async_redis()
    last = "0-0"
    block_ms = int(settings.ARENA_STREAM_IDLE_CHECK_SECONDS * 1000)
    if not await client.exists(key):
        status, row_round, _, _ = await db(_answers)(battle.pk)
        if status != Battle.Status.ANSWERING or row_round != round_:
            return  # an old turn, its log expired: the row has it all
    pace = _Pace()
    while True:
        await pace.wait()
        found = await client.xread({key: last}, count=1000, block=block_ms)
        if not found:
            # Silence: the generating process may have died, or the stream expired. The row says
            # whether the turn is still being answered (expire_stuck ends a dead one).
            status, row_round, _, _ = await db(_answers)(battle.pk)
            if status != Battle.Status.ANSWERING or row_round != round_:
                return
            continue
        pieces: list[tuple[str, int, str]] = []
        ended = False
        for entry_id, fields in found[0][1]:
            last = entry_id
            if b"end" in fields:
                ended = True
                break
            pieces.append((fields[b"s"].decode(), int(fields[b"o"]), fields[b"t"].decode()))
        for piece in _coalesced(pieces):
            yield piece
        if ended:
            return

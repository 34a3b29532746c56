"""Getting both answers of a battle turn, in the background, into the database.

When a battle is created or a turn added, `start(battle_id)` (called on commit) hands
the turn, both sides, to the process's answer loop: one asyncio event loop, on a thread of its own,
where every answer the process is generating is a task. Each side streams its model's
answer (battles/clients/, with an async HTTP client: httpx, one connection pool per loop),
hands every piece to the battle's stream log (battles/stream_log.py, which viewers of the
SSE stream follow), and writes the text to the row once when the answer ends, plus a
checkpoint at most every ARENA_ANSWER_SAVE_INTERVAL seconds (2 by default) while it grows:
a crash loses little, and the JSON API and the page without JavaScript, which read the
row, show the answer as it grows. Each side writes only its own conversation column, so the
two never overwrite each other.

No thread is held by an answer: while a model is thinking or sending, its side is a
coroutine waiting on a socket. The database work (a few short writes per answer, and the
turn's tags at the end) runs on a small pool of threads, ARENA_ANSWER_DB_THREADS, each job
opening and keeping its connection as a request does.

A side that ends counts its call against the model's budget and writes its answer with its
state in one statement, whose row lock makes the two sides end one after the other; the one
that finds the other ended closes the turn: it tags the language and moderation (first
turn: language; every turn: moderation of the prompts and answers), stores the style
features, and sets the battle `ready`, or `failed` when a model could not answer. Votes wait
for that (battles/arena.py).

The voter may stop the turn (battles/arena.py `stop_answers`). Each side learns it between
two pieces, from the stream log as it adds a piece or from the row as it checkpoints, stops
reading its model (which closes the model call), writes what it had and ends `stopped`.
Every write is for one turn and attempt (`Battle.attempt`, one more per regenerate) and only
while the battle is still answering it, so a side that ends late, after a stop it could not
hear (waiting for a first token) or after its battle expired, never writes into the next
answers.

Why in the web process and not Celery tasks: an answer is a long, mostly idle HTTP stream
that a voter is watching. A worker process per stream would take the workers from the
rating and release tasks for minutes, and the answers must not wait behind them in a queue.
Generation goes on when the viewer's connection drops (it is not tied to any request). If
the process dies mid-answer, the battle would stay `answering`; `expire_stuck` ends such a
battle as failed once no answer could still be arriving, and reading the battle calls it.
A process that is stopped waits up to SHUTDOWN_WAIT_SECONDS for its answers to end first.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, NamedTuple, TypeVar

from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import Case, F, Value, When

from arenasite import clock

from . import budgets, language, moderation, stream_log
from .clients import FailureKind, ModelCallFailed, NoAnswerBackend, astream_answer
from .models import Battle, BattleStyle

logger = logging.getLogger(__name__)

SIDES = ("a", "b")
# How long a process being stopped waits for the answers it is generating to end.
SHUTDOWN_WAIT_SECONDS = 30

T = TypeVar("T")


class _DatabaseThreads(ThreadPoolExecutor):
    """The answer loop's threads for blocking work: each job runs as a request would, with
    its thread's connection checked before and closed after when DB_CONN_MAX_AGE says so
    (kept otherwise: a session costs the database a process start)."""

    def submit(self, fn, /, *args, **kwargs):
        return super().submit(_as_a_request, fn, *args, **kwargs)


def _as_a_request(fn: Callable[..., T], *args, **kwargs) -> T:
    close_old_connections()
    try:
        return fn(*args, **kwargs)
    finally:
        close_old_connections()


class _AnswerLoop:
    """The process's event loop for answers, on a thread of its own, started on first use
    (so a forked web worker starts its own rather than inheriting a dead copy)."""

    def __init__(self):
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        # The loop's default executor: asyncio.to_thread in the clients lands here too.
        self.loop.set_default_executor(
            _DatabaseThreads(max_workers=settings.ARENA_ANSWER_DB_THREADS, thread_name_prefix="answer-db")
        )
        self.thread = threading.Thread(target=self._run, name="answer-loop", daemon=True)
        self.thread.start()
        # The language detector takes seconds to load: load it while the first answers stream,
        # not when the first turn closes and its voter is waiting for the vote buttons.
        self.loop.call_soon_threadsafe(self.loop.run_in_executor, None, _load_language_detector)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()


def _load_language_detector() -> None:
    try:
        language.detect_language("warm up")
    except Exception:  # tagging the first turn will say what is wrong
        logger.exception("the language detector could not be loaded")


_answer_loop: _AnswerLoop | None = None
_answer_loop_lock = threading.Lock()


def _loop() -> asyncio.AbstractEventLoop:
    global _answer_loop
    with _answer_loop_lock:
        if _answer_loop is None or _answer_loop.pid != os.getpid():
            _answer_loop = _AnswerLoop()
            _register_shutdown_wait()
        return _answer_loop.loop


async def _db(function: Callable[..., T], *args: Any) -> T:
    """Run blocking (database) work of an answer on the loop's threads."""
    return await asyncio.get_running_loop().run_in_executor(None, function, *args)


# Answers submitted and not yet ended, in this process: a shutdown (or a test tearing its
# database down) can wait for them instead of cutting them off mid-write.
_running = 0
_running_changed = threading.Condition()


def start(battle_id: int) -> None:
    """Answer the latest turn of the battle on both sides, in the background."""
    global _running
    loop = _loop()
    with _running_changed:
        _running += 1
    asyncio.run_coroutine_threadsafe(_answer_turn(battle_id), loop).add_done_callback(_ended)


def _ended(_future) -> None:
    global _running
    with _running_changed:
        _running -= 1
        _running_changed.notify_all()


def wait_until_idle(timeout: float) -> bool:
    """Wait until every answer this process started has ended; False if some still run."""
    with _running_changed:
        return _running_changed.wait_for(lambda: _running == 0, timeout=timeout)


def _register_shutdown_wait() -> None:
    # Called when the interpreter starts shutting down, before it joins its threads and before
    # thread pools refuse new work (the hook concurrent.futures itself uses; later
    # registrations run first): answers being generated get to end and be written.
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        try:
            register(lambda: wait_until_idle(SHUTDOWN_WAIT_SECONDS))
        except RuntimeError:  # already shutting down
            pass


def stuck_after() -> timedelta:
    """How long after a turn starts no answer can still be arriving: every attempt's wait for
    the first text, the backoff between them, then the longest answer."""
    attempts = settings.ARENA_MODEL_RETRIES + 1
    waiting = attempts * (settings.ARENA_MODEL_CONNECT_TIMEOUT + settings.ARENA_MODEL_FIRST_TOKEN_TIMEOUT)
    return timedelta(seconds=waiting + attempts * 10 + settings.ARENA_MODEL_TOTAL_TIMEOUT + 30)


def expire_stuck(battle: Battle) -> Battle:
    """End a battle still `answering` long after any answer could arrive (its process died)."""
    if battle.status != Battle.Status.ANSWERING or battle.turn_started_at is None:
        return battle
    if clock.now() - battle.turn_started_at < stuck_after():
        return battle
    message = "The answers stopped arriving. Please start a new round."
    updated = Battle.objects.filter(pk=battle.pk, status=Battle.Status.ANSWERING).update(
        status=Battle.Status.FAILED, failure=message
    )
    if updated:
        logger.warning("battle %s: no answer arrived in time, ended as failed", battle.question_id)
    battle.refresh_from_db()
    return battle


async def _answer_turn(battle_id: int) -> None:
    # The battle and both its models in one read; each side then writes only its own column.
    try:
        battle = await _db(_battle_for_turn, battle_id)
    except Exception:
        logger.exception("battle %s: could not be read to answer it", battle_id)
        return
    await asyncio.gather(*(_answer_side_and_close(battle, side) for side in SIDES))


async def _answer_side_and_close(battle: Battle, side: str) -> None:
    round_ = Round(battle.question_id, battle.turn, battle.attempt)
    over = False
    try:
        ending = await _answer_side(battle, side)
        over = await _db(_finish_side, battle, side, ending, round_)
    except Exception:
        logger.exception("battle %s side %s: answering failed", battle.pk, side)
        try:
            failed = Ending(Battle.AnswerState.FAILED, "Something went wrong on our side.", called=False)
            over = await _db(_finish_side, battle, side, failed, round_)
        except Exception:
            logger.exception("battle %s side %s: could not record the failure", battle.pk, side)
    if over:
        # The row is final now: viewers of the stream may send the end. (Never raises.)
        await _db(stream_log.close_turn, round_.question_id, round_.turn, round_.attempt)


def _battle_for_turn(battle_id: int) -> Battle:
    return Battle.objects.select_related("model_a", "model_b").get(pk=battle_id)


class Round(NamedTuple):
    """The answers one side is writing: a battle's turn, as its `attempt`."""

    question_id: str
    turn: int
    attempt: int


class Ending(NamedTuple):
    """How one side's answer ended: its state, what the voter is told, and whether (and how)
    its model was called, which costs the model's budget."""

    state: str
    failure: str = ""
    called: bool = True
    failure_kind: FailureKind | None = None


async def _answer_side(battle: Battle, side: str) -> Ending:
    """Stream one side's answer into its conversation (the last message's text, checkpointed
    to the row as it grows); how it ended. The answer as it ended is written by _finish_side."""
    battle_id = battle.pk
    model = getattr(battle, f"model_{side}")
    conversation = getattr(battle, f"conversation_{side}")
    column = f"conversation_{side}"
    asked, answer = conversation[:-1], conversation[-1]
    pieces: list[str] = []
    interval = settings.ARENA_ANSWER_SAVE_INTERVAL
    saved_at = time.monotonic()
    log = stream_log.TurnLog(battle.question_id, battle.turn, side, battle.attempt)
    turn, attempt = battle.turn, battle.attempt

    def checkpoint() -> bool:
        return write_answer(battle_id, column, conversation, turn=turn, attempt=attempt, checkpoint=True)

    chunks = None
    stopped = False
    try:
        chunks = astream_answer(model, asked)
        async for piece in chunks:
            pieces.append(piece)
            await log.add(piece)
            if log.stop_requested:
                stopped = True
                break
            if time.monotonic() - saved_at >= interval:
                answer["content"] = "".join(pieces)
                if not await _db(checkpoint):
                    stopped = True
                    break  # stopped (the row says so), or the turn is no longer this side's to write
                saved_at = time.monotonic()
    except NoAnswerBackend:
        await log.flush()
        answer["content"] = "".join(pieces)
        return Ending(Battle.AnswerState.FAILED, f"Model {side.upper()} cannot answer right now.", called=False)
    except ModelCallFailed as exc:
        await log.flush()
        answer["content"] = "".join(pieces)
        if exc.kind == FailureKind.TOO_LONG:
            return Ending(Battle.AnswerState.CUT, failure_kind=exc.kind)
        return Ending(Battle.AnswerState.FAILED, f"Model {side.upper()}: {exc.user_message}", failure_kind=exc.kind)
    await log.flush()
    answer["content"] = "".join(pieces)
    if stopped:
        # The voter stopped the turn: closing the stream closes the model call (the demo
        # backend stops drawing words, an endpoint's connection is closed), and records no
        # outcome on the endpoint's health. The call was made: it costs its budget.
        await chunks.aclose()
        logger.info("battle %s side %s: stopped by the voter", battle.question_id, side)
        return Ending(Battle.AnswerState.STOPPED)
    return Ending(Battle.AnswerState.DONE)


def write_answer(
    battle_id: int,
    column: str,
    conversation: list[dict],
    *,
    turn: int,
    attempt: int,
    checkpoint: bool = False,
    ending: Ending | None = None,
) -> bool:
    """Write one side's conversation: a checkpoint, or the answer as it ended (with `ending`,
    the side's state and the battle's failure message, in the same statement). Only while the
    battle still answers this turn and attempt; a checkpoint, only while nobody asked to stop
    it. Whether it was written."""
    rows = Battle.objects.filter(pk=battle_id, turn=turn, attempt=attempt, status=Battle.Status.ANSWERING)
    if checkpoint:
        rows = rows.filter(stop_requested_at__isnull=True)
    fields: dict[str, Any] = {column: conversation}
    if ending is not None:
        fields[f"state_{column[-1]}"] = ending.state
        if ending.failure:  # the first side to fail says why
            fields["failure"] = Case(When(failure="", then=Value(ending.failure)), default=F("failure"))
    return rows.update(**fields) == 1


def _count_call(model_id: int, asked: list[dict], answer: str, failure: FailureKind | None = None) -> None:
    # A call that was made costs its budget whether or not the answer came out whole.
    characters = sum(len(message["content"]) for message in asked) + len(answer)
    try:
        budgets.record_call(
            model_id,
            characters,
            refused=failure == FailureKind.REFUSED,
            rate_limited=failure == FailureKind.RATE_LIMITED,
        )
    except Exception:  # counting must never cost the voter the answer
        logger.exception("model %s: could not count the call against its budget", model_id)


def _finish_side(battle: Battle, side: str, ending: Ending, round_: Round) -> bool:
    """Everything a side does when its answer ends, in one trip to the database threads: count
    the call, write the answer with the side's state, and, for the side that ends last, close
    the turn. Whether the turn is over."""
    conversation = getattr(battle, f"conversation_{side}")
    if ending.called:
        _count_call(
            getattr(battle, f"model_{side}_id"), conversation[:-1], conversation[-1]["content"], ending.failure_kind
        )
    other = "b" if side == "a" else "a"
    with transaction.atomic():
        written = write_answer(
            battle.pk, f"conversation_{side}", conversation, turn=round_.turn, attempt=round_.attempt, ending=ending
        )
        if not written:
            return True  # ended already (expired as stuck, or stopped without waiting for this side)
        # Read after this side's write, which holds the row until commit: of two sides ending
        # at once, the second one's write waits for the first one's commit, then reads it.
        last = (
            Battle.objects.filter(pk=battle.pk).values_list(f"state_{other}", flat=True).get()
            != Battle.AnswerState.ANSWERING
        )
    if last:
        # The other side had written its answer and ended before this one: the row is whole.
        _close_turn(Battle.objects.get(pk=battle.pk))
    return last


def stop_now(battle_id: int, round_: Round) -> bool:
    """End the round's sides still answering as `stopped`, with the text their last checkpoint
    wrote, and close the turn, without waiting for them: a side waiting for its model's first
    token hears the stop only when a piece arrives, and a generator that died never does.
    Their late writes are refused (write_answer). Idempotent: whether this call ended it."""
    with transaction.atomic():
        battle = Battle.objects.select_for_update().get(pk=battle_id)
        if battle.status != Battle.Status.ANSWERING or (battle.turn, battle.attempt) != round_[1:]:
            return False
        fields = {}
        for side in SIDES:
            if getattr(battle, f"state_{side}") == Battle.AnswerState.ANSWERING:
                setattr(battle, f"state_{side}", Battle.AnswerState.STOPPED)
                fields[f"state_{side}"] = Battle.AnswerState.STOPPED
        # Over at once, under the lock: from here no side may write into these answers.
        failed = Battle.AnswerState.FAILED in (battle.state_a, battle.state_b)
        battle.status = fields["status"] = Battle.Status.FAILED if failed else Battle.Status.READY
        Battle.objects.filter(pk=battle_id).update(**fields)
    # Tagged after, outside the lock (moderation may call a service): a vote on stopped answers
    # is excluded whatever the tags say, and the tags are for exports.
    tags = _tags(battle)
    if tags:
        Battle.objects.filter(pk=battle_id, turn=round_.turn, attempt=round_.attempt).update(**tags)
    logger.info("battle %s: stopped by the voter, closed without waiting for the answers", battle.question_id)
    stream_log.close_turn(round_.question_id, round_.turn, round_.attempt)
    return True


def _close_turn(battle: Battle) -> None:
    """Both sides have ended: tag the turn, then open the battle for a vote (or end it)."""
    battle_id = battle.pk
    failed = Battle.AnswerState.FAILED in (battle.state_a, battle.state_b)
    fields: dict = _tags(battle) if not failed else {}
    fields["status"] = Battle.Status.FAILED if failed else Battle.Status.READY
    Battle.objects.filter(pk=battle_id, status=Battle.Status.ANSWERING).update(**fields)


def _tags(battle: Battle) -> dict:
    """The turn's language and moderation (and its style row, stored here): for exports and
    exclusions. A fault in one must not keep the voter waiting, so it is logged and left out."""
    if battle.status == Battle.Status.FAILED:
        return {}
    fields: dict = {}
    try:
        if battle.turn == 1 or not battle.language:
            fields["language"] = language.detect_language(_first_prompt(battle))
        fields["openai_moderation"] = _moderate(battle)
        BattleStyle.store([battle])
    except Exception:
        logger.exception("battle %s: tagging the turn failed", battle.question_id)
    return fields


def _first_prompt(battle: Battle) -> str:
    return next((m["content"] for m in battle.conversation_a if m["role"] == "user"), "")


def _moderate(battle: Battle) -> dict | None:
    """Moderation of everything said so far; a turn's result replaces the previous one,
    since it covers all the earlier text too."""
    texts = [m["content"] for m in battle.conversation_a if m["role"] == "user"]
    texts += [
        m["content"]
        for conversation in (battle.conversation_a, battle.conversation_b)
        for m in conversation
        if m["role"] == "assistant"
    ]
    return moderation.moderate(texts)

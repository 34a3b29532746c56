"""Getting both answers of a battle turn, in the background, into the database.

When a battle is created or a turn added, `start(battle_id)` (called on commit) hands
both sides to a pool of threads in the web process. Each side streams its model's answer
(battles/clients/), hands every piece to the battle's stream log (battles/stream_log.py,
which viewers of the SSE stream follow), and writes the text to the row once when the
answer ends, plus a checkpoint at most every ARENA_ANSWER_SAVE_INTERVAL seconds (2 by
default) while it grows: a crash loses little, and the polling page and the JSON API,
which read the row, show the answer as it grows. Each side writes only its own
conversation column, so the two never overwrite each other.

The side that ends last closes the turn, under a row lock so exactly one of them does:
it tags the language and moderation (first turn: language; every turn: moderation of the
prompts and answers), stores the style features, and sets the battle `ready`, or
`failed` when a model could not answer. Votes wait for that (battles/arena.py).

Why threads in the web process and not Celery tasks: an answer is a long, mostly idle
HTTP stream that a voter is watching. A worker process per stream would take the
workers from the rating and release tasks for minutes, and the answers must not wait
behind them in a queue. If the process dies mid-answer, the battle would stay
`answering`; `expire_stuck` ends such a battle as failed once no answer could still be
arriving, and reading the battle calls it.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, transaction

from arenasite import clock

from . import budgets, language, moderation, stream_log
from .clients import FailureKind, ModelCallFailed, NoAnswerBackend, stream_answer
from .models import Battle, BattleStyle

logger = logging.getLogger(__name__)

SIDES = ("a", "b")

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    # Made on first use, so a forked web worker gets its own threads, not its parent's.
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=settings.ARENA_ANSWER_THREADS, thread_name_prefix="answer")
        return _executor


def start(battle_id: int) -> None:
    """Answer the latest turn of the battle on both sides, in the background."""
    for side in SIDES:
        _pool().submit(_answer_side_and_close, battle_id, side)


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


def _answer_side_and_close(battle_id: int, side: str) -> None:
    over = False
    try:
        state, failure = _answer_side(battle_id, side)
        over = _end_side(battle_id, side, state, failure)
    except Exception:
        logger.exception("battle %s side %s: answering failed", battle_id, side)
        try:
            over = _end_side(battle_id, side, Battle.AnswerState.FAILED, "Something went wrong on our side.")
        except Exception:
            logger.exception("battle %s side %s: could not record the failure", battle_id, side)
    try:
        if over:
            # The row is final now: viewers of the stream may send the end.
            question_id, turn = Battle.objects.values_list("question_id", "turn").get(pk=battle_id)
            stream_log.close_turn(question_id, turn)
    except Exception:
        logger.exception("battle %s: could not close the turn's stream", battle_id)
    finally:
        # As at the end of a request: the thread's connection is kept for the next answer when
        # DB_CONN_MAX_AGE allows it (a session costs the database a process start), else closed.
        close_old_connections()


def _answer_side(battle_id: int, side: str) -> tuple[str, str]:
    """Stream one side's answer into its conversation. Returns (state, message for the voter)."""
    close_old_connections()
    battle = Battle.objects.select_related(f"model_{side}").get(pk=battle_id)
    model = getattr(battle, f"model_{side}")
    conversation = getattr(battle, f"conversation_{side}")
    column = f"conversation_{side}"
    asked, answer = conversation[:-1], conversation[-1]
    pieces: list[str] = []
    interval = settings.ARENA_ANSWER_SAVE_INTERVAL
    saved_at = time.monotonic()
    log = stream_log.TurnLog(battle.question_id, battle.turn, side)

    def save() -> None:
        answer["content"] = "".join(pieces)
        write_answer(battle_id, column, conversation)

    try:
        for piece in stream_answer(model, asked):
            pieces.append(piece)
            log.piece(piece)
            if time.monotonic() - saved_at >= interval:
                save()
                saved_at = time.monotonic()
    except NoAnswerBackend:
        save()
        return Battle.AnswerState.FAILED, f"Model {side.upper()} cannot answer right now."
    except ModelCallFailed as exc:
        _count_call(model.pk, asked, pieces, exc.kind)
        save()
        if exc.kind == FailureKind.TOO_LONG:
            return Battle.AnswerState.CUT, ""
        return Battle.AnswerState.FAILED, f"Model {side.upper()}: {exc.user_message}"
    _count_call(model.pk, asked, pieces)
    save()
    return Battle.AnswerState.DONE, ""


def write_answer(battle_id: int, column: str, conversation: list[dict]) -> None:
    """Write one side's conversation: a checkpoint, or the answer as it ended."""
    Battle.objects.filter(pk=battle_id).update(**{column: conversation})


def _count_call(model_id: int, asked: list[dict], pieces: list[str], failure: FailureKind | None = None) -> None:
    # A call that was made costs its budget whether or not the answer came out whole.
    characters = sum(len(message["content"]) for message in asked) + sum(len(piece) for piece in pieces)
    try:
        budgets.record_call(
            model_id,
            characters,
            refused=failure == FailureKind.REFUSED,
            rate_limited=failure == FailureKind.RATE_LIMITED,
        )
    except Exception:  # counting must never cost the voter the answer
        logger.exception("model %s: could not count the call against its budget", model_id)


def _end_side(battle_id: int, side: str, state: str, failure: str) -> bool:
    """Record how the side ended; the last side closes the turn. Whether the turn is over."""
    other = "b" if side == "a" else "a"
    with transaction.atomic():
        battle = Battle.objects.select_for_update().get(pk=battle_id)
        if battle.status != Battle.Status.ANSWERING:
            return True  # ended already (expired as stuck)
        setattr(battle, f"state_{side}", state)
        fields = [f"state_{side}"]
        if failure and not battle.failure:
            battle.failure = failure
            fields.append("failure")
        last = getattr(battle, f"state_{other}") != Battle.AnswerState.ANSWERING
        Battle.objects.filter(pk=battle_id).update(**{f: getattr(battle, f) for f in fields})
    if last:
        # The row as locked above, with this side's state set: the other side had saved its
        # answer and ended before, so nothing in it has changed since.
        _close_turn(battle)
    return last


def _close_turn(battle: Battle) -> None:
    """Both sides have ended: tag the turn, then open the battle for a vote (or end it)."""
    battle_id = battle.pk
    failed = Battle.AnswerState.FAILED in (battle.state_a, battle.state_b)
    fields: dict = {}
    if not failed:
        # Tags are for exports and exclusions; a fault in one must not keep the voter waiting.
        try:
            if battle.turn == 1 or not battle.language:
                fields["language"] = language.detect_language(_first_prompt(battle))
            fields["openai_moderation"] = _moderate(battle)
            BattleStyle.store([battle])
        except Exception:
            logger.exception("battle %s: tagging the turn failed", battle.question_id)
    fields["status"] = Battle.Status.FAILED if failed else Battle.Status.READY
    Battle.objects.filter(pk=battle_id, status=Battle.Status.ANSWERING).update(**fields)


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

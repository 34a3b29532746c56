"""GET /api/v1/battles/{id}/stream/: the latest turn's answers as server-sent events.

An async view, streamed over an async iterator: a viewer waiting for the next piece is a
coroutine waiting in the event loop (run under an ASGI server, bin/run), not a thread blocked
on a socket, and holds no database connection.

Events (docs/api.md):

    id: 1.42.17
    data: {"side": "a", "text": "the next piece of A's answer"}

    event: end
    id: 1.512.388
    data: {...the battle, as GET /api/v1/battles/{id}/ returns it...}

Ids are cursors (battles/stream_log.py): reconnecting with `Last-Event-ID` sends the rest.
Who may read it is decided as for the other battle endpoints: the battle's own voter, by
session or bearer token; anyone else gets 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import TypeVar

from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.settings import api_settings

from . import arena, stream_log
from .api import battle_payload
from .models import Battle
from .voters import judge_for

# A comment line on a quiet stream this often, so proxies and browsers that drop idle
# connections (nginx after 60 s by default) keep it open while a model thinks.
KEEPALIVE_SECONDS = 15.0

T = TypeVar("T")


def _owned_battle(request: HttpRequest, battle_id: str) -> Battle:
    """The voter's battle, found as the DRF views find it (the API's authenticators, then
    the session), or BattleRefused / AuthenticationFailed."""
    drf_request = Request(request, authenticators=[auth() for auth in api_settings.DEFAULT_AUTHENTICATION_CLASSES])
    request.user = drf_request.user  # a bearer token's user, else the session's
    return arena.battle_of(battle_id, judge_for(request, create=False), fields=arena.HANDLE_FIELDS)


async def battle_stream(request: HttpRequest, battle_id: str):
    if request.method != "GET":
        return JsonResponse({"detail": f'Method "{request.method}" not allowed.'}, status=405)
    try:
        battle = await stream_log.db(_owned_battle)(request, battle_id)
    except exceptions.AuthenticationFailed as exc:
        return JsonResponse({"detail": str(exc.detail)}, status=401)
    except arena.BattleRefused as exc:
        return JsonResponse({"detail": exc.message}, status=exc.status_code)
    cursor = stream_log.Cursor.parse(request.headers.get("Last-Event-ID", ""), battle.turn, battle.attempt)
    response = StreamingHttpResponse(_events(battle, cursor), content_type="text/event-stream")
    response["Cache-Control"] = "no-store"
    response["X-Accel-Buffering"] = "no"  # a proxy such as nginx must pass each event on at once
    return response


async def _events(battle: Battle, cursor: stream_log.Cursor) -> AsyncIterator[bytes]:
    # How long a client waits before reconnecting after the connection drops, in ms.
    yield b"retry: 1000\n\n"
    async for item in _with_keepalives(stream_log.follow(battle, cursor), KEEPALIVE_SECONDS):
        if item is None:
            yield b": keep-alive\n\n"
        elif isinstance(item, stream_log.Text):
            yield _event(item.cursor.event_id, {"side": item.side, "text": item.text})
        else:
            yield _event(item.cursor.event_id, await stream_log.db(battle_payload)(item.battle), name="end")


async def _with_keepalives(items: AsyncIterator[T], every: float) -> AsyncIterator[T | None]:
    """The items, and None whenever `every` seconds pass without one (a model may think for a
    minute before its first token). The wait for the next item is never cancelled by a
    keep-alive: cancelling a reader in the middle of its read would end it."""
    pending: asyncio.Future | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(items))
            done, _ = await asyncio.wait({pending}, timeout=every)
            if not done:
                yield None
                continue
            future, pending = pending, None
            try:
                item = future.result()
            except StopAsyncIteration:
                return
            yield item
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending


def _event(event_id: str, data: dict, name: str | None = None) -> bytes:
    # JSON on one line: no newline in a data field, whatever the answer holds.
    lines = [f"event: {name}"] if name else []
    lines += [f"id: {event_id}", "data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":"))]
    return ("\n".join(lines) + "\n\n").encode()

"""The load benchmark's floor: an ASGI application that answers the battle API's requests
with no work at all (no Django, no database), for benchmarks/arena_load.py to run its voters
against under the same ASGI server as the site. What it reaches on a machine is the most any
implementation of the API can reach there with the same voters, server and protocol.

It answers a battle as answered once it is ANSWER_AFTER seconds old (so voters poll about
as often as against the site), streams it as the site does (a text event per side, then the
end with the battle) once it is that old, and echoes a vote's winner. A battle's id carries
its creation time, so any worker can answer its polls and its stream.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time

ANSWER_AFTER = 0.06
# Each side's whole answer, in every floor battle (the voters check the stream carried it).
ANSWER = "A floor answer."
_numbers = itertools.count(1)


def battle_body(battle: str, status: str) -> dict:
    """The fields of a battle the voters read, as the site returns them."""
    conversation = [{"role": "user", "content": "?"}]
    if status == "ready":
        conversation.append({"role": "assistant", "content": ANSWER})
    return {"id": battle, "status": status, "conversation_a": conversation, "conversation_b": conversation}


def stream_events(battle: str) -> list[bytes]:
    """The events of a finished floor battle: a text event per side, then the end."""
    events = [b"retry: 1000\n\n"]
    for k, side in enumerate("ab", start=1):
        data = json.dumps({"side": side, "text": ANSWER})
        events.append(f"id: 1.{len(ANSWER)}.{len(ANSWER) * (k - 1)}\ndata: {data}\n\n".encode())
    data = json.dumps(battle_body(battle, "ready"))
    events.append(f"event: end\nid: 1.{len(ANSWER)}.{len(ANSWER)}\ndata: {data}\n\n".encode())
    return events


def until_answered(battle: str) -> float:
    """Seconds until the battle counts as answered (0 when it does)."""
    return max(0.0, float(battle.split("-")[0]) + ANSWER_AFTER - time.time())


async def _json(send, status: int, body: dict) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def _body(receive) -> dict:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    data = b"".join(chunks)
    return json.loads(data) if data else {}


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    method, path = scope["method"], scope["path"]
    parts = [part for part in path.split("/") if part]
    if path == "/healthz":
        return await _json(send, 200, {"ok": True})
    if parts == ["api", "v1", "leaderboard"]:
        return await _json(send, 200, {"results": []})
    if parts[:3] == ["api", "v1", "battles"]:
        body = await _body(receive) if method == "POST" else {}
        if method == "POST" and len(parts) == 3:
            return await _json(send, 201, {"id": f"{time.time():.4f}-{next(_numbers)}", "status": "answering"})
        if len(parts) < 4:
            return await _json(send, 404, {"detail": "Not found."})
        battle = parts[3]
        if method == "GET" and len(parts) == 4:
            return await _json(send, 200, battle_body(battle, "answering" if until_answered(battle) else "ready"))
        if method == "GET" and parts[4:] == ["stream"]:
            headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-store")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await asyncio.sleep(until_answered(battle))
            for event in stream_events(battle):
                await send({"type": "http.response.body", "body": event, "more_body": True})
            return await send({"type": "http.response.body", "body": b""})
        if method == "POST" and parts[4:] == ["vote"]:
            return await _json(send, 200, {"winner": body.get("winner")})
    return await _json(send, 404, {"detail": "Not found."})

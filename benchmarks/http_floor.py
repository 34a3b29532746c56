"""The load benchmark's floor: a WSGI application that answers the battle API's requests
with no work at all (no Django, no database), for benchmarks/arena_load.py to run locust
against under the same gunicorn. What it reaches on a machine is the most any
implementation of the API can reach there with the same voters, server and protocol.

It answers a battle as answered once it is ANSWER_AFTER seconds old (so voters poll about
as often as against the site) and echoes a vote's winner. A battle's id carries its
creation time, so any worker can answer its polls.
"""

from __future__ import annotations

import itertools
import json
import time

ANSWER_AFTER = 0.06
_numbers = itertools.count(1)


def _json(start_response, status: str, body: dict) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def application(environ, start_response):
    method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
    parts = [part for part in path.split("/") if part]
    if path == "/healthz":
        return _json(start_response, "200 OK", {"ok": True})
    if parts == ["api", "v1", "leaderboard"]:
        return _json(start_response, "200 OK", {"results": []})
    if parts[:3] == ["api", "v1", "battles"]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(length) or b"{}") if length else {}
        if method == "POST" and len(parts) == 3:
            battle = f"{time.time():.4f}-{next(_numbers)}"
            return _json(start_response, "201 Created", {"id": battle, "status": "answering"})
        if len(parts) < 4:
            return _json(start_response, "404 Not Found", {"detail": "Not found."})
        started = float(parts[3].split("-")[0])
        if method == "GET" and len(parts) == 4:
            status = "ready" if time.time() - started >= ANSWER_AFTER else "answering"
            return _json(start_response, "200 OK", {"id": parts[3], "status": status})
        if method == "POST" and parts[4:] == ["vote"]:
            return _json(start_response, "200 OK", {"winner": body.get("winner")})
    return _json(start_response, "404 Not Found", {"detail": "Not found."})

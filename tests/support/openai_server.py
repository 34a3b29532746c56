"""An OpenAI-compatible chat-completions server on loopback, for tests, load tests and browser tests.

It speaks the real protocol over real sockets: `POST /v1/chat/completions` answered as
server-sent events in HTTP/1.1 chunked encoding (or as one JSON body when `stream` is
false), `POST /v1/moderations`, plus `GET /v1/models`. How it answers is scripted per model id:

    with OpenAIServer() as server:
        server.script("flaky", Script(fail_times=2, status=503))
        server.script("slow", Script(mode=Mode.HANG_MID_STREAM, chunks_before=3))
        ... point a model at server.base_url with endpoint_model_id "flaky" ...
        assert len(server.requests_for("flaky")) == 3

A model id that names a mode (e.g. "garbage", "hang_before_first_byte") gets that mode
with default settings without any set-up, so a browser or load test can pick the
behaviour per request just by the model it asks for. Everything else gets the default
script (a normal streamed answer). Every request is recorded with its headers and body;
`peak_streams` is the most answers the server was producing at once.

Moderations follow the same scripts (a model id naming "error", "garbage",
"hang_before_first_byte" or "close_mid_stream" behaves so; other modes answer normally),
and the verdict is scripted by the text itself: "FLAG:violence" flags violence (score
0.99), "SCORE:hate=0.3" sets a score without flagging, anything else is clean (0.0001).

Run it alone with `python -m tests.support.openai_server --port 8001`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from battles.moderation_categories import CATEGORIES

# omni-moderation's categories: the public dataset's eleven and two it does not have.
MODERATION_CATEGORIES = tuple(sorted((*CATEGORIES, "illicit", "illicit/violent")))
_FLAG = re.compile(r"FLAG:([\w/-]+)")
_SCORE = re.compile(r"SCORE:([\w/-]+)=(\d+(?:\.\d+)?)")


class Mode(StrEnum):
    STREAM = "stream"  # a normal streamed answer: role chunk, text chunks, finish reason, [DONE]
    JSON = "json"  # one chat.completion JSON body, even when a stream was asked for
    HANG_BEFORE_FIRST_BYTE = "hang_before_first_byte"  # read the request, then send nothing
    HANG_MID_STREAM = "hang_mid_stream"  # go silent after `chunks_before` text chunks
    KEEPALIVE_ONLY = "keepalive_only"  # SSE comments every `chunk_delay` s (0.05 if unset), never a chunk
    GARBAGE = "garbage"  # non-JSON event data after `chunks_before` text chunks
    CLOSE_MID_STREAM = "close_mid_stream"  # drop the connection after `chunks_before` chunks
    END_WITHOUT_DONE = "end_without_done"  # the text, then a clean end of the body with no finish reason or [DONE]
    ENDLESS = "endless"  # text chunks until the client goes away
    ERROR = "error"  # HTTP `status` with `error_body`, every time
    ERROR_EVENT = "error_event"  # an {"error": ...} event after `chunks_before` text chunks


@dataclass(frozen=True)
class Script:
    mode: Mode = Mode.STREAM
    text: str | None = None  # the answer; None: "Loopback answer to: <last user message>"
    chunks: tuple[str, ...] | None = None  # exact pieces to send; None: the text word by word
    chunk_delay: float = 0.0  # seconds before each text chunk
    chunks_before: int = 2  # text chunks sent before the *_MID_STREAM, GARBAGE and ERROR_EVENT behaviour
    fail_times: int = 0  # answer HTTP `status` to this model's first N requests, then follow `mode`
    status: int = 500  # for fail_times and Mode.ERROR
    retry_after: str | None = None  # Retry-After header on those failures
    error_body: str = '{"error": {"message": "simulated failure", "type": "server_error"}}'
    echo_authorization: bool = False  # append the request's Authorization header to error bodies
    hang_seconds: float | None = None  # how long the hangs last; None: until the server stops

    def __post_init__(self):
        if self.chunk_delay < 0 or self.chunks_before < 0 or self.fail_times < 0:
            raise ValueError("chunk_delay, chunks_before and fail_times must be 0 or more")
        if not 100 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP status code, got {self.status}")


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or None
    model: str | None
    received_at: float = field(default_factory=time.monotonic)


class OpenAIServer:
    """A ThreadingHTTPServer on loopback in a daemon thread. Use as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, default: Script | None = None):
        self._httpd = ThreadingHTTPServer((host, port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self.default = default or Script()
        self._scripts: dict[str, Script] = {}
        self._failures_served: dict[str, int] = {}
        self.requests: list[ReceivedRequest] = []
        self.active_streams = 0
        self.peak_streams = 0

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def script(self, model_id: str, script: Script) -> None:
        with self._lock:
            self._scripts[model_id] = script
            self._failures_served[model_id] = 0

    def requests_for(self, model_id: str) -> list[ReceivedRequest]:
        with self._lock:
            return [r for r in self.requests if r.model == model_id]

    def start(self) -> OpenAIServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="openai-loopback", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()  # ends every hang
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # --- used by the handler threads ---

    def _record(self, request: ReceivedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _plan(self, model_id: str) -> tuple[Script, bool]:
        """The script for this request and whether it is one of the scripted failures."""
        with self._lock:
            if model_id in self._scripts:
                script = self._scripts[model_id]
            elif model_id in {mode.value for mode in Mode}:
                script = replace(self.default, mode=Mode(model_id))
            else:
                script = self.default
            served = self._failures_served.get(model_id, 0)
            if served < script.fail_times:
                self._failures_served[model_id] = served + 1
                return script, True
            return script, False

    def _stream_started(self) -> None:
        with self._lock:
            self.active_streams += 1
            self.peak_streams = max(self.peak_streams, self.active_streams)

    def _stream_ended(self) -> None:
        with self._lock:
            self.active_streams -= 1


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "openai-loopback/1"

    @property
    def owner(self) -> OpenAIServer:
        return self.server.owner  # type: ignore[attr-defined]

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self._received(None)
        if self.path.rstrip("/") != "/v1/models":
            return self._json(404, {"error": {"message": f"no such path: {self.path}"}})
        ids = sorted(set(self.owner._scripts) | {mode.value for mode in Mode})
        self._json(200, {"object": "list", "data": [{"id": i, "object": "model"} for i in ids]})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        request = self._received(body)
        if self.path.rstrip("/") == "/v1/moderations":
            return self._moderate(body)
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._json(404, {"error": {"message": f"no such path: {self.path}"}})
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body.get("model"):
            return self._json(400, {"error": {"message": "expected a JSON body with 'model' and 'messages'"}})
        script, fail_now = self.owner._plan(request.model)
        if fail_now or script.mode == Mode.ERROR:
            return self._error(script)
        self.owner._stream_started()
        self._counted = True
        try:
            self._answer(script, body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away, as clients that time out do
        finally:
            self._stop_counting()

    def _received(self, body: Any) -> ReceivedRequest:
        request = ReceivedRequest(
            method=self.command,
            path=self.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            model=body.get("model") if isinstance(body, dict) else None,
        )
        self.owner._record(request)
        return request

    def _stop_counting(self) -> None:
        # Called before the finish chunk goes out, so a client that has read the whole
        # answer never sees this stream still counted (concurrency tests rely on it).
        if getattr(self, "_counted", False):
            self._counted = False
            self.owner._stream_ended()

    # --- answers ---

    def _answer(self, script: Script, body: dict) -> None:
        pieces = self._pieces(script, body)
        model = body["model"]
        if script.mode == Mode.HANG_BEFORE_FIRST_BYTE:
            self._hang(script)
            self.close_connection = True
            return
        if script.mode == Mode.JSON or body.get("stream") is not True:
            text = "".join(pieces)
            self._stop_counting()
            return self._json(200, _completion(model, text))

        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        self._event(_chunk(model, {"role": "assistant", "content": ""}))

        if script.mode == Mode.KEEPALIVE_ONLY:
            while not self.owner.stopping.wait(script.chunk_delay or 0.05):
                self._send_chunk(b": keep-alive\n\n")
            return
        if script.mode == Mode.ENDLESS:
            for piece in itertools.cycle(pieces):
                if self.owner.stopping.is_set():
                    return
                self._text(script, model, piece)

        mid = script.mode in (
            Mode.HANG_MID_STREAM,
            Mode.GARBAGE,
            Mode.CLOSE_MID_STREAM,
            Mode.ERROR_EVENT,
        )
        for piece in pieces[: script.chunks_before] if mid else pieces:
            self._text(script, model, piece)
        if script.mode == Mode.HANG_MID_STREAM:
            self._hang(script)
            return
        if script.mode == Mode.GARBAGE:
            self._event("this is not JSON {")
            return self._end_body()
        if script.mode == Mode.CLOSE_MID_STREAM:
            # No terminating zero-length chunk: the client sees the body break off.
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if script.mode == Mode.ERROR_EVENT:
            self._event({"error": {"message": "simulated failure mid-stream", "type": "server_error"}})
            return self._end_body()
        self._stop_counting()
        if script.mode == Mode.END_WITHOUT_DONE:
            return self._end_body()
        self._event(_chunk(model, {}, finish_reason="stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            self._event({**_chunk(model, {}), "choices": [], "usage": _usage(body, "".join(pieces))})
        self._event("[DONE]")
        self._end_body()

    def _moderate(self, body: Any) -> None:
        inputs = body.get("input") if isinstance(body, dict) else None
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or not all(isinstance(text, str) for text in inputs):
            return self._json(400, {"error": {"message": "expected a JSON body with 'input': a string or strings"}})
        model = body.get("model") or "omni-moderation-latest"
        script, fail_now = self.owner._plan(model)
        if fail_now or script.mode == Mode.ERROR:
            return self._error(script)
        if script.mode == Mode.HANG_BEFORE_FIRST_BYTE:
            self._hang(script)
            self.close_connection = True
            return
        if script.mode == Mode.CLOSE_MID_STREAM:
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if script.mode == Mode.GARBAGE:
            data = b"this is not JSON {"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self._json(200, {"id": "modr-loopback", "model": model, "results": [_verdict(text) for text in inputs]})

    def _pieces(self, script: Script, body: dict) -> list[str]:
        if script.chunks is not None:
            return list(script.chunks) or [""]
        text = script.text
        if text is None:
            last = body["messages"][-1] if body["messages"] else {}
            text = f"Loopback answer to: {last.get('content', '') if isinstance(last, dict) else ''}"
        return re.findall(r"\S+\s*", text) or [text]

    def _text(self, script: Script, model: str, piece: str) -> None:
        if script.chunk_delay:
            time.sleep(script.chunk_delay)
        self._event(_chunk(model, {"content": piece}))

    def _hang(self, script: Script) -> None:
        self.owner.stopping.wait(script.hang_seconds)

    def _error(self, script: Script) -> None:
        body = script.error_body
        if script.echo_authorization:
            body += f" (you sent: {self.headers.get('Authorization', '')})"
        data = body.encode()
        self.send_response(script.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if script.retry_after is not None:
            self.send_header("Retry-After", script.retry_after)
        self.end_headers()
        self.wfile.write(data)

    # --- wire format ---

    def _json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _event(self, payload: Any) -> None:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        self._send_chunk(f"data: {data}\n\n".encode())

    def _send_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _end_body(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def _chunk(model: str, delta: dict, finish_reason: str | None = None) -> dict:
    return {
        "id": "chatcmpl-loopback",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def _completion(model: str, text: str) -> dict:
    return {
        "id": "chatcmpl-loopback",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
    }


def _verdict(text: str) -> dict:
    flags = set(_FLAG.findall(text)) & set(MODERATION_CATEGORIES)
    scores = {name: 0.99 if name in flags else 0.0001 for name in MODERATION_CATEGORIES}
    for name, score in _SCORE.findall(text):
        if name in scores:
            scores[name] = float(score)
    return {
        "flagged": bool(flags),
        "categories": {name: name in flags for name in MODERATION_CATEGORIES},
        "category_scores": scores,
        "category_applied_input_types": {name: ["text"] if name in flags else [] for name in MODERATION_CATEGORIES},
    }


def _usage(body: dict, text: str) -> dict:
    prompt = sum(len(str(m.get("content", "")).split()) for m in body["messages"] if isinstance(m, dict))
    completion = len(text.split())
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--chunk-delay", type=float, default=0.02, help="seconds between text chunks")
    args = parser.parse_args()
    server = OpenAIServer(args.host, args.port, default=Script(chunk_delay=args.chunk_delay))
    server.start()
    print(f"Serving chat completions and moderations at {server.base_url} (model ids naming a mode: {', '.join(Mode)})")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()

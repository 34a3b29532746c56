"""An OpenAI-compatible chat-completions endpoint, streamed as server-sent events, with
timeouts, retries before the first text and a per-endpoint concurrency limit."""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import random
import re
import ssl
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass

import httpx
from django.conf import settings

from providers.endpoints import endpoint_refusal

from .base import FailureKind, Message, ModelCallFailed, check_messages

# The longest wait before a retry, also when a 429 asks for longer: a voter is watching.
MAX_BACKOFF_SECONDS = 10.0

# Statuses that refuse this request, not the endpoint: a malformed or oversized request, or a
# conversation past the model's context window (OpenAI, vLLM and llama.cpp answer that 400).
# 401, 403 and 404 (a wrong key or model id) fail every request, so they stay endpoint failures.
REQUEST_REFUSED = frozenset({400, 413, 422})


@dataclass(frozen=True)
class CallLimits:
    connect_timeout: float
    first_token_timeout: float
    chunk_timeout: float
    total_timeout: float
    retries: int
    retry_backoff: float
    concurrency: int
    max_answer_chars: int

    @classmethod
    def from_settings(cls) -> CallLimits:
        return cls(
            connect_timeout=settings.ARENA_MODEL_CONNECT_TIMEOUT,
            first_token_timeout=settings.ARENA_MODEL_FIRST_TOKEN_TIMEOUT,
            chunk_timeout=settings.ARENA_MODEL_CHUNK_TIMEOUT,
            total_timeout=settings.ARENA_MODEL_TOTAL_TIMEOUT,
            retries=settings.ARENA_MODEL_RETRIES,
            retry_backoff=settings.ARENA_MODEL_RETRY_BACKOFF,
            concurrency=settings.ARENA_MODEL_CONCURRENCY,
            max_answer_chars=settings.ARENA_MODEL_MAX_ANSWER_CHARS,
        )


# The concurrency limit is a semaphore per endpoint base URL *per process*: with several
# web processes an endpoint can see processes x limit streams. That is enough to keep one
# busy process from flooding an endpoint; a global limit would need a shared store (Redis).
# A thread's semaphore, so the answers on the process's event loop (battles/answering.py)
# and a blocking call from a thread (the portal's endpoint test) count against one limit.
_slots: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_slots_lock = threading.Lock()


def _endpoint_slots(base_url: str, limit: int) -> threading.BoundedSemaphore:
    with _slots_lock:
        return _slots.setdefault((base_url, limit), threading.BoundedSemaphore(limit))


async def _take_slot(slots: threading.BoundedSemaphore, timeout: float) -> bool:
    """Take a slot without blocking the event loop: at once when one is free (the usual case),
    else by looking again after short, growing sleeps until `timeout`."""
    deadline = time.monotonic() + timeout
    pause = 0.005
    while not slots.acquire(blocking=False):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        await asyncio.sleep(min(pause, left))
        pause = min(pause * 2, 0.1)
    return True


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context per process, with httpx's default trust rules (SSL_CERT_FILE,
    SSL_CERT_DIR, else certifi). Building it is most of what a new httpx client costs:
    measured 20 ms of CPU per client without it, 0.06 ms with it."""
    return httpx.create_ssl_context()


# One connection pool per event loop: the answers of a process share the loop's pool, so
# answers to the same endpoint reuse its connections (keep-alive, TLS sessions) instead of
# opening one per answer. Connections are bounded per endpoint by the slots above.
_pools: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _shared_http() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    http = _pools.get(loop)
    if http is None:
        http = _pools[loop] = _new_http()
    return http


def _new_http() -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=64, keepalive_expiry=30)
    return httpx.AsyncClient(verify=_tls_context(), limits=limits)


class _Retryable(Exception):
    """A failure before any answer arrived that another attempt may not meet."""

    def __init__(self, kind: FailureKind, detail: str, retry_after: float | None = None):
        super().__init__(detail)
        self.kind, self.detail, self.retry_after = kind, detail, retry_after


class OpenAIChatClient:
    """POST {base_url}/chat/completions with `stream: true`, read as server-sent events.

    `astream()` is the answer as an async iterator, for code on an event loop (the battle
    answers, battles/answering.py: every answer of a process is a task on one loop, with no
    thread held per answer). Every wait for the next chunk is an `asyncio.wait_for` that
    cancels the read, which is what makes the deadlines exact: a blocking client only has a
    per-socket-read timeout that a trickle of keep-alive bytes would reset forever, and that
    cannot change between the first-token and the between-chunks deadline.

    `stream()` is the same answer for blocking code (the portal's endpoint test): it drives
    `astream()` on a small loop of its own, with a connection of its own.
    """

    def __init__(
        self,
        *,
        base_url: str,
        model_id: str,
        api_key: str = "",
        limits: CallLimits | None = None,
        temperature: float | None = None,
    ):
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r:.100}")
        if not model_id:
            raise ValueError("model_id must not be empty")
        self.base_url = base_url.rstrip("/")
        self.model_id = model_id
        self._api_key = api_key
        self.limits = limits or CallLimits.from_settings()
        self.temperature = temperature  # ArenaModel.temperature; None: the endpoint's default

    def __repr__(self) -> str:  # never the key
        return f"OpenAIChatClient(base_url={self.base_url!r}, model_id={self.model_id!r})"

    def _body(self, messages: Sequence[Message]) -> dict:
        body = {"model": self.model_id, "messages": check_messages(messages), "stream": True}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        return body

    def astream(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        """The answer in pieces; bad messages raise ValueError here, before any call."""
        return self._answer(self._body(messages), http=None)

    def stream(self, messages: Sequence[Message]) -> Iterator[str]:
        body = self._body(messages)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError("OpenAIChatClient.stream() blocks; from async code use astream()")
        return self._blocking(body)

    def _blocking(self, body: dict) -> Iterator[str]:
        loop = asyncio.new_event_loop()
        http = _new_http()
        pieces = self._answer(body, http=http)
        try:
            while True:
                try:
                    piece = loop.run_until_complete(anext(pieces))
                except StopAsyncIteration:
                    return
                yield piece
        finally:
            try:
                loop.run_until_complete(pieces.aclose())
                loop.run_until_complete(http.aclose())
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    async def _answer(self, body: dict, http: httpx.AsyncClient | None) -> AsyncIterator[str]:
        # Checked at each call, not only when the URL was saved: a name can be re-pointed.
        # (It may resolve the host name, so it runs off the event loop.)
        refusal = await asyncio.to_thread(endpoint_refusal, self.base_url)
        if refusal:
            raise self._failed(FailureKind.CONNECT, refusal)
        limits = self.limits
        slots = _endpoint_slots(self.base_url, limits.concurrency)
        # Waiting for a free slot counts as connecting.
        if not await _take_slot(slots, limits.connect_timeout):
            raise ModelCallFailed(
                FailureKind.BUSY,
                f"all {limits.concurrency} streams this process allows to the endpoint stayed busy "
                f"for {limits.connect_timeout:g} s",
            )
        try:
            async for piece in self._attempts(body, http or _shared_http()):
                yield piece
        finally:
            slots.release()

    async def _attempts(self, body: dict, http: httpx.AsyncClient) -> AsyncIterator[str]:
        limits = self.limits
        total_deadline = time.monotonic() + limits.total_timeout
        for attempt in itertools.count(1):
            events = self._attempt(body, http)
            try:
                async for piece in self._relay(events, total_deadline):
                    yield piece
                return
            except _Retryable as exc:
                # Raised only before the response started, so no text has been shown.
                failure = exc
            finally:
                await events.aclose()
            delay = self._backoff(attempt, failure.retry_after)
            if attempt > limits.retries or time.monotonic() + delay >= total_deadline:
                tries = f" (after {attempt} attempts)" if attempt > 1 else ""
                raise self._failed(failure.kind, failure.detail + tries)
            await asyncio.sleep(delay)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        delay = min(MAX_BACKOFF_SECONDS, self.limits.retry_backoff * 2 ** (attempt - 1))
        # Equal jitter: callers that failed together do not come back together.
        delay = delay / 2 + random.uniform(0, delay / 2)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, MAX_BACKOFF_SECONDS)

    async def _relay(self, events: AsyncIterator[str], total_deadline: float) -> AsyncIterator[str]:
        """Pass the attempt's text on, holding it to the deadlines and the length limit."""
        limits = self.limits
        first_text_deadline = min(time.monotonic() + limits.first_token_timeout, total_deadline)
        shown = 0
        while True:
            # Measured from when the next chunk is asked for, so a slow reader is not the
            # endpoint's fault (what arrives meanwhile waits in the socket buffer).
            deadline = min(time.monotonic() + limits.chunk_timeout, total_deadline) if shown else first_text_deadline
            try:
                piece = await asyncio.wait_for(anext(events), deadline - time.monotonic())
            except StopAsyncIteration:
                return
            except TimeoutError:
                if deadline >= total_deadline:
                    detail = f"the answer was not finished within {limits.total_timeout:g} s"
                elif shown:
                    detail = f"no new text for {limits.chunk_timeout:g} s in the middle of the answer"
                else:
                    detail = f"no answer text within {limits.first_token_timeout:g} s"
                raise self._failed(FailureKind.TIMEOUT, detail) from None
            if not piece:
                continue
            room = limits.max_answer_chars - shown
            if len(piece) > room:
                if room:
                    yield piece[:room]
                raise self._failed(FailureKind.TOO_LONG, f"the answer ran past {limits.max_answer_chars} characters")
            shown += len(piece)
            yield piece

    async def _attempt(self, body: dict, http: httpx.AsyncClient) -> AsyncIterator[str]:
        """One request: yields the text of each chunk ('' for chunks without text, which
        still show the endpoint is alive) and ends normally only on a complete answer."""
        headers = {"Accept": "text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        # Reads and writes are bounded by the caller's wait_for, only connecting here.
        timeout = httpx.Timeout(None, connect=self.limits.connect_timeout)
        try:
            async with http.stream(
                "POST", f"{self.base_url}/chat/completions", json=body, headers=headers, timeout=timeout
            ) as response:
                if response.status_code != 200:
                    await self._reject(response)
                content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if content_type == "application/json":
                    # An endpoint that ignores `stream: true` still gives a usable answer.
                    yield await self._whole_answer(response)
                    return
                if content_type != "text/event-stream":
                    raise self._failed(
                        FailureKind.PROTOCOL, f"expected text/event-stream, got {content_type or 'no content type'!r}"
                    )
                async for data, at_end in _sse_data(response.aiter_lines()):
                    if data == "[DONE]":
                        return
                    text, finished = self._chunk_text(data, at_end)
                    yield text
                    if finished:
                        # Usage chunks and [DONE] may follow; the answer is complete without them.
                        return
                raise self._failed(FailureKind.CUT, "the stream ended without [DONE] or a finish reason")
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise _Retryable(FailureKind.CONNECT, f"could not connect: {type(exc).__name__}: {exc}") from exc
        except httpx.TimeoutException as exc:
            raise self._failed(FailureKind.TIMEOUT, f"{type(exc).__name__}: {exc}") from exc
        except httpx.HTTPError as exc:  # the peer closed or reset the connection mid-answer
            raise self._failed(FailureKind.CUT, f"the connection broke: {type(exc).__name__}: {exc}") from exc

    async def _reject(self, response: httpx.Response) -> None:
        excerpt = (await _read_at_most(response, 300)).decode("utf-8", "replace").strip()
        detail = f"HTTP {response.status_code}" + (f": {excerpt[:200]}" if excerpt else "")
        if response.status_code == 429 or response.status_code >= 500:
            retry_after = response.headers.get("retry-after", "")
            seconds = float(retry_after) if re.fullmatch(r"\d+(\.\d+)?", retry_after.strip()) else None
            kind = FailureKind.RATE_LIMITED if response.status_code == 429 else FailureKind.HTTP
            raise _Retryable(kind, self._scrub(detail), retry_after=seconds)
        if response.status_code in REQUEST_REFUSED:
            raise self._failed(FailureKind.REFUSED, detail)
        raise self._failed(FailureKind.HTTP, detail)

    async def _whole_answer(self, response: httpx.Response) -> str:
        # JSON escapes can take up to 6 bytes a character; anything bigger is too long anyway.
        limit = self.limits.max_answer_chars * 6 + 65536
        raw = await _read_at_most(response, limit + 1)
        if len(raw) > limit:
            raise self._failed(FailureKind.TOO_LONG, f"the answer ran past {self.limits.max_answer_chars} characters")
        try:
            content = json.loads(raw)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise self._failed(FailureKind.PROTOCOL, f"not a chat-completions answer ({type(exc).__name__})") from None
        if not isinstance(content, str):
            raise self._failed(FailureKind.PROTOCOL, "the answer's content is not text")
        return content

    def _chunk_text(self, data: str, at_end: bool) -> tuple[str, bool]:
        """The text of one streamed chunk and whether it finished the answer."""
        try:
            chunk = json.loads(data)
        except ValueError:
            if at_end:  # half an event when the connection dropped
                raise self._failed(FailureKind.CUT, "the stream ended in the middle of an event") from None
            raise self._failed(FailureKind.PROTOCOL, f"an event is not JSON: {data[:80]!r}") from None
        if isinstance(chunk, dict) and "error" in chunk:
            error = chunk["error"]
            message = error.get("message", error) if isinstance(error, dict) else error
            raise self._failed(FailureKind.HTTP, f"error event: {str(message)[:200]}")
        choices = chunk.get("choices") if isinstance(chunk, dict) else None
        if not isinstance(choices, list):
            raise self._failed(FailureKind.PROTOCOL, f"an event has no choices list: {data[:80]!r}")
        if not choices:
            return "", False  # e.g. a usage-only chunk
        choice = choices[0]
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            raise self._failed(FailureKind.PROTOCOL, f"an event has no delta: {data[:80]!r}")
        content = delta.get("content")
        if content is not None and not isinstance(content, str):
            raise self._failed(FailureKind.PROTOCOL, "a delta's content is not text")
        return content or "", bool(choice.get("finish_reason"))

    def _failed(self, kind: FailureKind, detail: str) -> ModelCallFailed:
        return ModelCallFailed(kind, self._scrub(detail))

    def _scrub(self, text: str) -> str:
        # An endpoint may echo the request back in an error; the key never leaves here.
        return text.replace(self._api_key, "[API key]") if self._api_key else text


async def _read_at_most(response: httpx.Response, limit: int) -> bytes:
    body = b""
    async for part in response.aiter_bytes():
        body += part
        if len(body) >= limit:
            break
    return body[:limit]


async def _sse_data(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, bool]]:
    """The data of each server-sent event, and whether it was cut short by the end of the stream.

    Comments (keep-alives) and other fields are skipped; multi-line data is joined with
    newlines, as the SSE standard says.
    """
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield "\n".join(data), False
                data = []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if name == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data), True

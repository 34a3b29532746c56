"""Asking a model for a streamed answer.

One interface for every model in a battle: `stream_answer(model, messages)` yields the
answer's text in pieces as they arrive and records the outcome on the model's endpoint
health, the same fields the lifecycle health checks keep (providers/health.py). Behind
it, `client_for(model)` picks the backend:

- `OpenAIChatClient`: an OpenAI-compatible chat-completions endpoint, streamed as
  server-sent events, with timeouts, retries before the first text and a per-endpoint
  concurrency limit;
- `DemoClient`: a local backend that answers without any network, so a fresh machine
  has a working arena.

Every way a real endpoint can fail surfaces as one exception, `ModelCallFailed`, whose
`kind` says what happened and whose `user_message` can be shown to the voter.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import itertools
import json
import logging
import random
import re
import ssl
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import httpx
from django.conf import settings

from arenasite import clock
from providers import health
from providers.endpoints import endpoint_refusal
from providers.models import ArenaModel

logger = logging.getLogger(__name__)

Message = Mapping[str, str]
ROLES = ("system", "user", "assistant")

# The longest wait before a retry, also when a 429 asks for longer: a voter is watching.
MAX_BACKOFF_SECONDS = 10.0


class FailureKind(StrEnum):
    CONNECT = "connect"  # the endpoint could not be reached
    TIMEOUT = "timeout"  # no first text in time, silent mid-answer, or the whole answer too slow
    HTTP = "http"  # the endpoint answered with an error status or an error event
    PROTOCOL = "protocol"  # what came back is not chat completions (garbage)
    CUT = "cut"  # the stream stopped before the answer was complete
    TOO_LONG = "too_long"  # longer than ARENA_MODEL_MAX_ANSWER_CHARS; the stream was cut here
    BUSY = "busy"  # every connection this process allows to the endpoint is in use


_USER_MESSAGES = {
    FailureKind.CONNECT: "The model's server could not be reached.",
    FailureKind.TIMEOUT: "The model took too long to answer.",
    FailureKind.HTTP: "The model's server answered with an error.",
    FailureKind.PROTOCOL: "The model's server sent something that is not an answer.",
    FailureKind.CUT: "The model's answer broke off before it was finished.",
    FailureKind.TOO_LONG: "The model's answer ran too long and was stopped.",
    FailureKind.BUSY: "The model is busy with other conversations.",
}


class ModelCallFailed(Exception):
    """A model could not give a complete answer. `str()` is the line kept in the health record."""

    def __init__(self, kind: FailureKind | str, detail: str):
        self.kind = FailureKind(kind)
        self.detail = detail
        super().__init__(f"{self.kind}: {detail}")

    @property
    def user_message(self) -> str:
        return _USER_MESSAGES[self.kind]

    @property
    def counts_against_endpoint(self) -> bool:
        # Busy is this process's own limit, not a sign that the endpoint is down.
        return self.kind != FailureKind.BUSY


class NoAnswerBackend(LookupError):
    """The model is neither a demo model nor has an endpoint, so nothing can answer for it."""


class ModelClient(Protocol):
    def stream(self, messages: Sequence[Message]) -> Iterator[str]: ...


def check_messages(messages: Sequence[Message]) -> list[dict[str, str]]:
    """The conversation as the endpoint gets it, or a ValueError naming what is wrong."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
        raise ValueError("messages must be a non-empty list of {'role', 'content'} dicts")
    checked = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or "role" not in message or "content" not in message:
            raise ValueError(f"messages[{i}] must be a dict with 'role' and 'content', got {message!r:.100}")
        role, content = message["role"], message["content"]
        if role not in ROLES:
            raise ValueError(f"messages[{i}]: role must be one of {', '.join(ROLES)}, got {role!r:.40}")
        if not isinstance(content, str):
            raise ValueError(f"messages[{i}]: content must be a string, got {type(content).__name__}")
        checked.append({"role": role, "content": content})
    if checked[-1]["role"] != "user":
        raise ValueError("the last message must be the user's turn")
    return checked


# --- The battle entry point --------------------------------------------------------------


def client_for(model: ArenaModel) -> ModelClient:
    if model.is_demo:
        return DemoClient(model.name)
    if model.has_endpoint:
        return OpenAIChatClient(
            base_url=model.endpoint_base_url, model_id=model.endpoint_model_id, api_key=model.endpoint_api_key
        )
    raise NoAnswerBackend(
        f"Model {model.name!r} has no answer backend: it is not a demo model and has no endpoint "
        "(both a base URL and a model id are needed)."
    )


def stream_answer(model: ArenaModel, messages: Sequence[Message]) -> Iterator[str]:
    """The model's answer to the conversation, in pieces as they arrive.

    Bad messages raise ValueError at once; a failed call raises ModelCallFailed while
    iterating, after recording it on the model. A complete answer records a success. An
    answer the caller stops reading (the voter left) records nothing.
    """
    chunks = client_for(model).stream(messages)
    return _recording_outcome(model, chunks)


def _recording_outcome(model: ArenaModel, chunks: Iterator[str]) -> Iterator[str]:
    try:
        yield from chunks
    except ModelCallFailed as exc:
        record_failure(model, exc)
        raise
    record_success(model)


def record_failure(model: ArenaModel, error: ModelCallFailed) -> ArenaModel:
    """Keep a failed battle call on the model like a failed health check, so the lifecycle
    tasks see it (offline since, last error, retirement candidate)."""
    if not error.counts_against_endpoint:
        return model
    logger.warning("battle: %s endpoint failed: %s", model.name, error)
    return health.record_check(model, health.CheckResult(ok=False, error=f"In a battle: {error}"), clock.now())


def record_success(model: ArenaModel) -> ArenaModel:
    """Clear a recorded failure after a complete answer, as a passing health check would.

    A model with nothing on record is not written: one write per answer would make the
    pool's busiest rows the hottest rows in the database. The instance may be a little
    stale (loaded when the battle started); the next health check corrects any miss.
    """
    if model.endpoint_offline_since is None and not model.endpoint_last_error:
        return model
    return health.record_check(model, health.CheckResult(ok=True), clock.now())


# --- OpenAI-compatible endpoints ---------------------------------------------------------


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
_slots: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_slots_lock = threading.Lock()


def _endpoint_slots(base_url: str, limit: int) -> threading.BoundedSemaphore:
    with _slots_lock:
        return _slots.setdefault((base_url, limit), threading.BoundedSemaphore(limit))


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context per process, with httpx's default trust rules (SSL_CERT_FILE,
    SSL_CERT_DIR, else certifi). Building it is most of what a new httpx client costs:
    measured 20 ms of CPU per client without it, 0.06 ms with it."""
    return httpx.create_ssl_context()


class _Retryable(Exception):
    """A failure before any answer arrived that another attempt may not meet."""

    def __init__(self, kind: FailureKind, detail: str, retry_after: float | None = None):
        super().__init__(detail)
        self.kind, self.detail, self.retry_after = kind, detail, retry_after


class OpenAIChatClient:
    """POST {base_url}/chat/completions with `stream: true`, read as server-sent events.

    Each stream runs its own small asyncio loop in the calling thread, driven one chunk at
    a time. That is what makes the deadlines exact: every wait for the next chunk is an
    `asyncio.wait_for` that cancels the read, where a blocking client only has a
    per-socket-read timeout that a trickle of keep-alive bytes would reset forever, and
    that cannot change between the first-token and the between-chunks deadline. The cost
    is a new connection per answer (no pool shared across loops): a few milliseconds on
    loopback once the TLS context is shared (see _tls_context), small next to an answer.
    """

    def __init__(self, *, base_url: str, model_id: str, api_key: str = "", limits: CallLimits | None = None):
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r:.100}")
        if not model_id:
            raise ValueError("model_id must not be empty")
        self.base_url = base_url.rstrip("/")
        self.model_id = model_id
        self._api_key = api_key
        self.limits = limits or CallLimits.from_settings()

    def __repr__(self) -> str:  # never the key
        return f"OpenAIChatClient(base_url={self.base_url!r}, model_id={self.model_id!r})"

    def stream(self, messages: Sequence[Message]) -> Iterator[str]:
        body = {"model": self.model_id, "messages": check_messages(messages), "stream": True}
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError("OpenAIChatClient.stream() blocks; from async code call it in a thread")
        return self._stream(body)

    def _stream(self, body: dict) -> Iterator[str]:
        # Checked at each call, not only when the URL was saved: a name can be re-pointed.
        refusal = endpoint_refusal(self.base_url)
        if refusal:
            raise self._failed(FailureKind.CONNECT, refusal)
        limits = self.limits
        slots = _endpoint_slots(self.base_url, limits.concurrency)
        # Waiting for a free slot counts as connecting.
        if not slots.acquire(timeout=limits.connect_timeout):
            raise ModelCallFailed(
                FailureKind.BUSY,
                f"all {limits.concurrency} streams this process allows to the endpoint stayed busy "
                f"for {limits.connect_timeout:g} s",
            )
        loop = asyncio.new_event_loop()
        try:
            yield from self._attempts(loop, body)
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                slots.release()

    def _attempts(self, loop: asyncio.AbstractEventLoop, body: dict) -> Iterator[str]:
        limits = self.limits
        total_deadline = time.monotonic() + limits.total_timeout
        for attempt in itertools.count(1):
            events = self._attempt(body)
            try:
                yield from self._relay(loop, events, total_deadline)
                return
            except _Retryable as exc:
                # Raised only before the response started, so no text has been shown.
                failure = exc
            finally:
                loop.run_until_complete(events.aclose())
            delay = self._backoff(attempt, failure.retry_after)
            if attempt > limits.retries or time.monotonic() + delay >= total_deadline:
                tries = f" (after {attempt} attempts)" if attempt > 1 else ""
                raise self._failed(failure.kind, failure.detail + tries)
            time.sleep(delay)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        delay = min(MAX_BACKOFF_SECONDS, self.limits.retry_backoff * 2 ** (attempt - 1))
        # Equal jitter: callers that failed together do not come back together.
        delay = delay / 2 + random.uniform(0, delay / 2)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, MAX_BACKOFF_SECONDS)

    def _relay(
        self, loop: asyncio.AbstractEventLoop, events: AsyncIterator[str], total_deadline: float
    ) -> Iterator[str]:
        """Pass the attempt's text on, holding it to the deadlines and the length limit."""
        limits = self.limits
        first_text_deadline = min(time.monotonic() + limits.first_token_timeout, total_deadline)
        shown = 0
        while True:
            # Measured from when the next chunk is asked for, so a slow reader is not the
            # endpoint's fault (what arrives meanwhile waits in the socket buffer).
            deadline = min(time.monotonic() + limits.chunk_timeout, total_deadline) if shown else first_text_deadline
            try:
                piece = loop.run_until_complete(asyncio.wait_for(anext(events), deadline - time.monotonic()))
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

    async def _attempt(self, body: dict) -> AsyncIterator[str]:
        """One request: yields the text of each chunk ('' for chunks without text, which
        still show the endpoint is alive) and ends normally only on a complete answer."""
        headers = {"Accept": "text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        # Reads and writes are bounded by the caller's wait_for, only connecting here.
        timeout = httpx.Timeout(None, connect=self.limits.connect_timeout)
        try:
            async with (
                httpx.AsyncClient(timeout=timeout, verify=_tls_context()) as http,
                http.stream("POST", f"{self.base_url}/chat/completions", json=body, headers=headers) as response,
            ):
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
            raise _Retryable(FailureKind.HTTP, self._scrub(detail), retry_after=seconds)
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


# --- The local demo backend --------------------------------------------------------------

# Each demo model gets a style from its name, so two demo models answer visibly differently.
_OPENINGS = (
    "Good question.",
    "Here is how I would think about it.",
    "Short version first, details after.",
    "Let's take this step by step.",
    "There are a few ways to look at this.",
    "It depends a little on what you need, but here is a solid default.",
)
_SENTENCES = (
    "The first thing to pin down is what a good result would look like for you.",
    "Most of the difficulty usually comes from one or two constraints, so name them early.",
    "A small worked example tends to reveal more than a long description.",
    "If you can measure the outcome, start with the simplest approach and compare against it.",
    "Keep the parts that change often apart from the parts that rarely change.",
    "It is worth writing down the assumptions, because they are what breaks first.",
    "When two options look equally good, prefer the one that is easier to undo.",
    "Edge cases matter here: empty inputs, very large inputs and unexpected formats.",
    "A quick sanity check at the end catches most mistakes.",
    "Sources disagree on the details, so treat specific numbers with some care.",
    "The trade-off is mostly between speed and clarity, and clarity usually wins.",
    "Breaking the problem into smaller questions makes each one easier to answer.",
    "Try the idea on a small case by hand before automating it.",
    "Whatever you choose, make the decision explicit so it can be revisited later.",
)
_POINTS = (
    "**Clarify the goal** before choosing a method.",
    "**Start small** and grow the solution once it works.",
    "**Check the inputs**, especially the unusual ones.",
    "**Measure** instead of guessing when performance matters.",
    "**Write it down**: notes save time the second time round.",
    "**Ask for feedback** early rather than late.",
    "**Keep it simple** until there is a reason not to.",
)
_CLOSINGS = (
    "Hope that helps!",
    "Let me know if you want me to go deeper on any part.",
    "If you share more details, I can give a more specific answer.",
    "That should give you a good starting point.",
)
_CODE = (
    "```python\ndef summarize(items):\n    counts = {}\n    for item in items:\n"
    "        counts[item] = counts.get(item, 0) + 1\n    return sorted(counts.items(), key=lambda kv: -kv[1])\n```",
    "```python\ndef chunks(seq, size):\n    return [seq[i:i + size] for i in range(0, len(seq), size)]\n```",
    "```bash\n# try it on a small sample first\nhead -n 100 input.txt | sort | uniq -c | sort -rn\n```",
)


def _topic(messages: Sequence[Message]) -> str:
    words = re.findall(r"[\w'-]+", messages[-1]["content"])[:8]
    return " ".join(words) if words else "this"


def _concise(rng: random.Random, topic: str) -> str:
    return " ".join([rng.choice(_OPENINGS), *rng.sample(_SENTENCES, rng.randint(1, 3))])


def _structured(rng: random.Random, topic: str) -> str:
    points = "\n".join(f"- {p}" for p in rng.sample(_POINTS, rng.randint(3, 5)))
    return f"**On “{topic}”:** {rng.choice(_SENTENCES)}\n\n{points}\n\n{rng.choice(_CLOSINGS)}"


def _explainer(rng: random.Random, topic: str) -> str:
    paragraphs = [" ".join(rng.sample(_SENTENCES, rng.randint(2, 4))) for _ in range(rng.randint(2, 4))]
    return f"{rng.choice(_OPENINGS)} You asked about “{topic}”.\n\n" + "\n\n".join(paragraphs)


def _stepwise(rng: random.Random, topic: str) -> str:
    steps = "\n".join(f"{i}. {s}" for i, s in enumerate(rng.sample(_SENTENCES, rng.randint(3, 5)), start=1))
    code = f"\n\nFor example:\n\n{rng.choice(_CODE)}" if rng.random() < 0.6 else ""
    return f"### Steps for “{topic}”\n\n{steps}{code}\n\n{rng.choice(_CLOSINGS)}"


_STYLES = (_concise, _structured, _explainer, _stepwise)


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def demo_answer(model_name: str, messages: Sequence[Message]) -> str:
    """A plausible answer, the same every time for the same model and conversation.

    It never names a model, so demo battles do not trip the identity checks on votes.
    """
    style = _STYLES[_digest(model_name) % len(_STYLES)]
    rng = random.Random(_digest(model_name + "\0" + json.dumps(list(map(dict, messages)), sort_keys=True)))
    return style(rng, _topic(messages))


class DemoClient:
    """Answers from `demo_answer`, word by word, with ARENA_DEMO_CHUNK_DELAY between words."""

    def __init__(self, model_name: str, *, chunk_delay: float | None = None):
        self.model_name = model_name
        self.chunk_delay = chunk_delay

    def stream(self, messages: Sequence[Message]) -> Iterator[str]:
        text = demo_answer(self.model_name, check_messages(messages))
        delay = settings.ARENA_DEMO_CHUNK_DELAY if self.chunk_delay is None else self.chunk_delay
        return _words(text, delay)


def _words(text: str, delay: float) -> Iterator[str]:
    for i, word in enumerate(re.findall(r"\S+\s*", text)):
        if i and delay:
            time.sleep(delay)
        yield word

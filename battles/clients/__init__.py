"""Asking a model for a streamed answer.

One interface for every model in a battle: `astream_answer(model, messages)` yields the
answer's text in pieces as they arrive, as an async iterator (the battle answers run on an
event loop, battles/answering.py), and records the outcome on the model's endpoint health
(health.py); `stream_answer` is the same for blocking code. Behind it, `client_for(model)` picks the backend:

- `OpenAIChatClient` (openai_compatible.py): an OpenAI-compatible chat-completions
  endpoint, streamed as server-sent events, with timeouts, retries before the first text
  and a per-endpoint concurrency limit;
- `DemoClient` (demo.py): a local backend that answers without any network, so a fresh
  machine has a working arena.

What they share (the interface, the failures, the checked conversation) is in base.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence

from providers.models import ArenaModel

from .base import ROLES, FailureKind, Message, ModelCallFailed, ModelClient, NoAnswerBackend, check_messages
from .demo import DemoClient, demo_answer
from .health import arecording_outcome, record_failure, record_success, recording_outcome
from .openai_compatible import MAX_BACKOFF_SECONDS, CallLimits, OpenAIChatClient

__all__ = [
    "MAX_BACKOFF_SECONDS",
    "ROLES",
    "astream_answer",
    "CallLimits",
    "DemoClient",
    "FailureKind",
    "Message",
    "ModelCallFailed",
    "ModelClient",
    "NoAnswerBackend",
    "OpenAIChatClient",
    "check_messages",
    "client_for",
    "demo_answer",
    "record_failure",
    "record_success",
    "stream_answer",
]


def client_for(model: ArenaModel) -> ModelClient:
    if model.is_demo:
        return DemoClient(model.name)
    if model.has_endpoint:
        return OpenAIChatClient(
            base_url=model.endpoint_base_url,
            model_id=model.endpoint_model_id,
            api_key=model.endpoint_api_key,
            temperature=model.temperature,
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
    return recording_outcome(model, chunks)


def astream_answer(model: ArenaModel, messages: Sequence[Message]) -> AsyncIterator[str]:
    """stream_answer for code on an event loop: the pieces as an async iterator. Bad messages
    and a model with no backend raise at once, before any call."""
    chunks = client_for(model).astream(messages)
    return arecording_outcome(model, chunks)

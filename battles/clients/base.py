"""What every model client is: the interface, its failures and the conversation it takes.

Every way a real endpoint can fail surfaces as one exception, `ModelCallFailed`, whose
`kind` says what happened, whose `user_message` can be shown to the voter and whose
`counts_against_endpoint` says whether the endpoint's health record takes it
(battles/clients/health.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from enum import StrEnum
from typing import Protocol

Message = Mapping[str, str]
ROLES = ("system", "user", "assistant")


class FailureKind(StrEnum):
    CONNECT = "connect"  # the endpoint could not be reached
    TIMEOUT = "timeout"  # no first text in time, silent mid-answer, or the whole answer too slow
    HTTP = "http"  # the endpoint answered with an error status or an error event
    PROTOCOL = "protocol"  # what came back is not chat completions (garbage)
    CUT = "cut"  # the stream stopped before the answer was complete
    TOO_LONG = "too_long"  # longer than ARENA_MODEL_MAX_ANSWER_CHARS; the stream was cut here
    BUSY = "busy"  # every connection this process allows to the endpoint is in use
    # The endpoint refused this request (400, 413, 422), e.g. a conversation past its context
    # window: the request's fault, not the endpoint's.
    REFUSED = "refused"
    RATE_LIMITED = "rate_limited"  # still 429 after the retries and their backoff


_USER_MESSAGES = {
    FailureKind.CONNECT: "The model's server could not be reached.",
    FailureKind.TIMEOUT: "The model took too long to answer.",
    FailureKind.HTTP: "The model's server answered with an error.",
    FailureKind.PROTOCOL: "The model's server sent something that is not an answer.",
    FailureKind.CUT: "The model's answer broke off before it was finished.",
    FailureKind.TOO_LONG: "The model's answer ran too long and was stopped.",
    FailureKind.BUSY: "The model is busy with other conversations.",
    FailureKind.REFUSED: "The model's server could not take this conversation (it may be too long for the model).",
    FailureKind.RATE_LIMITED: "The model's server is receiving too many requests right now.",
}

# Failures of one request, or of the load on the endpoint, that say nothing about whether it is
# up: they fail the battle, but the endpoint stays healthy and in the pool.
_NOT_ENDPOINT_FAILURES = frozenset({FailureKind.BUSY, FailureKind.REFUSED, FailureKind.RATE_LIMITED})


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
        # Busy is this process's own limit, a refusal is about this conversation (too long for
        # the model, say) and a 429 about the endpoint's load: none says the endpoint is down,
        # and marking it offline would take a working model out of the pool for every voter.
        return self.kind not in _NOT_ENDPOINT_FAILURES


class NoAnswerBackend(LookupError):
    """The model is neither a demo model nor has an endpoint, so nothing can answer for it."""


class ModelClient(Protocol):
    def stream(self, messages: Sequence[Message]) -> Iterator[str]: ...

    def astream(self, messages: Sequence[Message]) -> AsyncIterator[str]: ...


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

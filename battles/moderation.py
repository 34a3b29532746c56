"""Moderating a battle turn: the prompt and both answers, one verdict.

A verdict has the shape of the `openai_moderation` field of the public
`chatbot_arena_conversations` dataset, so imported and live battles can be read alike:

    {"categories": {"harassment": False, ..., "violence/graphic": False},
     "category_scores": {"harassment": 0.0001, ..., "violence/graphic": 0.0},
     "flagged": False}

`moderator()` picks the backend from the settings:

- `OpenAIModerator`: an OpenAI-compatible moderations endpoint, when
  ARENA_MODERATION_API_KEY is set. Every way it can fail raises `ModerationUnavailable`;
- `LocalModerator`: otherwise. A short list of unambiguous phrases per category, plus
  ARENA_MODERATION_TERMS; nothing leaves the machine.

`moderate(texts)` is the entry point for callers: the verdict, or None when the remote
moderator could not give one (the battle then keeps no verdict rather than a wrong "clean").
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
import ssl
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, TypedDict

import httpx
from django.conf import settings

from .moderation_categories import CATEGORIES

logger = logging.getLogger(__name__)


# Each text is cut to this many characters before it is sent. The moderation models read a
# bounded number of tokens (OpenAI's guidance is to send long texts in pieces of a few
# thousand characters), a request of three 20,000-character answers would cost time and
# money for what is a label on a stored battle rather than a gate in front of the voter,
# and an abusive prompt or answer shows itself well within its first 10,000 characters.
MAX_INPUT_CHARS = 10_000

# A verdict for a battle turn is a few KB; anything much bigger is not one.
MAX_RESPONSE_BYTES = 1 << 20

# Conservative on purpose: phrases that mean harm in nearly every context they appear in
# (threats like "I will kill you" are left out: mostly hyperbole or fiction). A phrase
# matches as whole words, in any case, with any white space between its words, and flags
# its own category only ("self-harm/intent", not also "self-harm").
BUILT_IN_TERMS: dict[str, tuple[str, ...]] = {
    "self-harm/intent": ("kill myself", "killing myself", "end my life", "take my own life"),
    "self-harm/instructions": ("how to kill myself", "best way to kill myself", "painless way to kill myself"),
    "violence": ("build a bomb", "make a bomb", "build a pipe bomb", "make a pipe bomb"),
    "sexual/minors": ("child porn", "child pornography"),
}


class ModerationResult(TypedDict):
    categories: dict[str, bool]
    category_scores: dict[str, float]
    flagged: bool


class ModerationUnavailable(Exception):
    """The remote moderator gave no usable verdict. `detail` says why; it never holds the key."""

    def __init__(self, detail: str):
        self.detail = detail
        super().__init__(detail)


class Moderator(Protocol):
    def moderate(self, texts: Sequence[str]) -> ModerationResult:
        """One verdict for all `texts`: flagged if any is, categories OR-ed, scores max-ed."""
        ...


def clean_result() -> ModerationResult:
    """A verdict that flags nothing."""
    return {
        "categories": dict.fromkeys(CATEGORIES, False),
        "category_scores": dict.fromkeys(CATEGORIES, 0.0),
        "flagged": False,
    }


def combine(results: Iterable[ModerationResult]) -> ModerationResult:
    """One verdict from several: flagged if any is, each category if any has it, the highest score."""
    combined = clean_result()
    for result in results:
        combined["flagged"] = combined["flagged"] or result["flagged"]
        for name in CATEGORIES:
            combined["categories"][name] = combined["categories"][name] or result["categories"][name]
            combined["category_scores"][name] = max(combined["category_scores"][name], result["category_scores"][name])
    return combined


# --- The entry point ---------------------------------------------------------------------


def moderator() -> Moderator:
    """The moderator the settings ask for: remote with an API key, local without."""
    if settings.ARENA_MODERATION_API_KEY:
        return OpenAIModerator(
            base_url=settings.ARENA_MODERATION_URL,
            api_key=settings.ARENA_MODERATION_API_KEY,
            model=settings.ARENA_MODERATION_MODEL,
            timeout=settings.ARENA_MODERATION_TIMEOUT,
        )
    return LocalModerator(settings.ARENA_MODERATION_TERMS)


def moderate(texts: Sequence[str]) -> ModerationResult | None:
    """The verdict on a battle turn's texts, or None (with a warning in the log) when the
    configured remote moderator is unavailable. Blocks for up to about twice
    ARENA_MODERATION_TIMEOUT: call it from a background thread or a task."""
    try:
        return moderator().moderate(texts)
    except ModerationUnavailable as exc:
        logger.warning("moderation: no verdict, the battle keeps none: %s", exc)
        return None


def _check_texts(texts: Sequence[str]) -> list[str]:
    # A bare string is a Sequence[str] too, and would be moderated one character at a time.
    if isinstance(texts, str) or not all(isinstance(text, str) for text in texts):
        raise TypeError("texts must be a list of strings")
    return list(texts)


# --- OpenAI-compatible endpoints ---------------------------------------------------------


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # One per process, as in battles/clients/openai_compatible.py: building it is most of a new client's cost.
    return httpx.create_ssl_context()


class OpenAIModerator:
    """POST {base_url}/moderations with every text of the turn in one request.

    `timeout` bounds connecting and each wait for data; reading the whole answer is held
    to it as well, so a call takes at most about twice `timeout`. No retries: the caller
    stores no verdict instead, and a later pass can moderate battles that have none.
    """

    def __init__(self, base_url: str, api_key: str, model: str, timeout: float):
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r:.100}")
        if not model:
            raise ValueError("model must not be empty")
        if not (math.isfinite(timeout) and timeout > 0):
            raise ValueError(f"timeout must be above 0, got {timeout!r}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self._api_key = api_key

    def __repr__(self) -> str:  # never the key
        return f"OpenAIModerator(base_url={self.base_url!r}, model={self.model!r})"

    def moderate(self, texts: Sequence[str]) -> ModerationResult:
        inputs = [text[:MAX_INPUT_CHARS] for text in _check_texts(texts)]
        if not inputs:
            return clean_result()
        payload = self._post({"model": self.model, "input": inputs})
        results = payload.get("results") if isinstance(payload, dict) else None
        if not isinstance(results, list) or len(results) != len(inputs):
            raise self._unavailable(f"expected a 'results' list with {len(inputs)} entries: {_excerpt(payload)}")
        return combine(self._result(result, i) for i, result in enumerate(results))

    def _post(self, body: dict) -> Any:
        url = f"{self.base_url}/moderations"
        headers = {"Authorization": f"Bearer {self._api_key}"}
        deadline = time.monotonic() + self.timeout
        try:
            with (
                httpx.Client(timeout=self.timeout, verify=_tls_context()) as http,
                http.stream("POST", url, json=body, headers=headers) as response,
            ):
                raw = b""
                for part in response.iter_bytes():
                    raw += part
                    if len(raw) > MAX_RESPONSE_BYTES:
                        raise self._unavailable(f"the answer ran past {MAX_RESPONSE_BYTES} bytes")
                    if time.monotonic() > deadline:
                        raise self._unavailable(f"the answer was not complete within {self.timeout:g} s")
        except httpx.TimeoutException as exc:
            raise self._unavailable(f"no answer from {url} within {self.timeout:g} s ({type(exc).__name__})") from exc
        except httpx.ConnectError as exc:
            raise self._unavailable(f"could not connect to {url}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise self._unavailable(f"the request to {url} failed: {type(exc).__name__}: {exc}") from exc
        if not 200 <= response.status_code < 300:
            text = raw[:300].decode("utf-8", "replace").strip()
            raise self._unavailable(f"{url} answered HTTP {response.status_code}" + (f": {text[:200]}" if text else ""))
        try:
            return json.loads(raw)
        except ValueError:
            raise self._unavailable(f"{url} answered with something that is not JSON: {raw[:80]!r}") from None

    def _result(self, result: Any, i: int) -> ModerationResult:
        """One entry of `results`, reduced to the dataset's categories (others are dropped;
        missing ones are False and 0.0). `flagged` is the service's own verdict, which can
        rest on a category the dataset does not have (omni-moderation's "illicit")."""
        if not isinstance(result, dict):
            raise self._unavailable(f"results[{i}] is not an object: {_excerpt(result)}")
        categories, scores, flagged = result.get("categories"), result.get("category_scores"), result.get("flagged")
        if not isinstance(categories, dict) or not isinstance(scores, dict) or not isinstance(flagged, bool):
            raise self._unavailable(
                f"results[{i}] needs 'categories' and 'category_scores' objects and a boolean 'flagged': "
                f"{_excerpt(result)}"
            )
        verdict = clean_result()
        verdict["flagged"] = flagged
        for name in CATEGORIES:
            value, score = categories.get(name), scores.get(name)
            if value is not None:
                if not isinstance(value, bool):
                    raise self._unavailable(f"results[{i}].categories[{name!r}] is not a boolean: {value!r:.40}")
                verdict["categories"][name] = value
            if score is not None:
                if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
                    raise self._unavailable(f"results[{i}].category_scores[{name!r}] is not a number: {score!r:.40}")
                verdict["category_scores"][name] = min(max(float(score), 0.0), 1.0)
        return verdict

    def _unavailable(self, detail: str) -> ModerationUnavailable:
        # An endpoint may echo the request back in an error; the key never leaves here.
        return ModerationUnavailable(detail.replace(self._api_key, "[API key]") if self._api_key else detail)


def _excerpt(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)[:120]


# --- The local term list -----------------------------------------------------------------


class LocalModerator:
    """Flags a category when a text contains one of its phrases (whole words, any case):
    score 1.0 for a matched category, 0.0 otherwise. No network, no model."""

    def __init__(self, extra_terms: Mapping[str, Iterable[str]] | None = None):
        terms: dict[str, list[str]] = {name: list(BUILT_IN_TERMS.get(name, ())) for name in CATEGORIES}
        for name, phrases in (extra_terms or {}).items():
            if name not in terms:
                raise ValueError(f"unknown moderation category {name!r}; known: {', '.join(CATEGORIES)}")
            terms[name].extend(phrases)
        # An empty phrase would match everywhere.
        terms = {name: [phrase for phrase in phrases if phrase.strip()] for name, phrases in terms.items()}
        self._patterns = {name: _phrases_pattern(phrases) for name, phrases in terms.items() if phrases}

    def moderate(self, texts: Sequence[str]) -> ModerationResult:
        texts = _check_texts(texts)
        verdict = clean_result()
        for name, pattern in self._patterns.items():
            if any(pattern.search(text) for text in texts):
                verdict["categories"][name] = True
                verdict["category_scores"][name] = 1.0
                verdict["flagged"] = True
        return verdict


def _phrases_pattern(phrases: Iterable[str]) -> re.Pattern[str]:
    # A typed apostrophe also matches a typographic one ("i'm" and "i’m").
    alternatives = [r"\s+".join(re.escape(word).replace("'", "['’]") for word in phrase.split()) for phrase in phrases]
    # Lookarounds rather than \b, so a phrase may start or end with punctuation.
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)", re.IGNORECASE)

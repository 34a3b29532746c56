"""Does a battle give away who is answering? Pure: texts and terms in, the term found out.

A vote on a battle whose prompt or answers name a model, a provider or a codename is kept
but does not count (`identity_revealed`): the voter may have judged the name rather than
the answer. The terms are the pool's own names (battles/arena.py reads them) plus a word
list, ARENA_IDENTITY_WORDS, after FastChat's vote cleaning (`clean_battle_data.py`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

# FastChat's IDENTITY_WORDS, which the public arena's vote cleaning used; extend through
# ARENA_IDENTITY_WORDS rather than editing it.
DEFAULT_IDENTITY_WORDS = (
    "vicuna",
    "lmsys",
    "koala",
    "uc berkeley",
    "open assistant",
    "laion",
    "chatglm",
    "chatgpt",
    "gpt-4",
    "openai",
    "anthropic",
    "claude",
    "bard",
    "palm",
    "lamda",
    "google",
    "gemini",
    "llama",
    "qianwan",
    "qwen",
    "alibaba",
    "mistral",
    "zhipu",
    "keg lab",
    "01.ai",
    "ai2",
    "tülu",
    "tulu",
    "deepseek",
    "hermes",
    "cohere",
    "dbrx",
    "databricks",
)


@functools.lru_cache(maxsize=8)
def _pattern(terms: frozenset[str]) -> re.Pattern[str] | None:
    cleaned = sorted({t.strip().casefold() for t in terms if t and t.strip()}, key=len, reverse=True)
    if not cleaned:
        return None
    # Whole words only: "palm" must not match "napalm", nor "bard" "bombarded". Longest
    # first, so the reported term is the most specific one.
    alternatives = "|".join(re.escape(t) for t in cleaned)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")


def revealed_term(texts: Iterable[str], terms: Iterable[str]) -> str | None:
    """The first identity term found in any of `texts` (case-insensitive), or None."""
    pattern = _pattern(frozenset(terms))
    if pattern is None:
        return None
    for text in texts:
        found = pattern.search(text.casefold())
        if found:
            return found.group(0)
    return None

"""What an answer looks like, apart from what it says: its length and its markdown.

Style control (see docs/ratings.md) fits these as covariates next to the ratings, so a
model is not rated up only for writing longer or more heavily formatted answers. The
features follow LMArena's style control: answer length in tokens and the counts of
markdown headers, list items and bold spans, summed over the model's turns. Tokens are
counted as words and punctuation marks, which tracks a BPE tokenizer's count closely
enough for a covariate and needs no model-specific vocabulary.

Pure Python, no Django: battles/models.py and the importer call it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_TOKEN = re.compile(r"\w+|[^\w\s]")
_HEADER = re.compile(r"^#{1,6}\s", re.MULTILINE)
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s", re.MULTILINE)
_BOLD = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class AnswerStyle:
    tokens: int
    headers: int
    list_items: int
    bold: int


def answer_style(conversation: list) -> AnswerStyle | None:
    """The style of a model's side of a conversation; None when it carries no answer text."""
    texts = [
        message["content"]
        for message in conversation or []
        if isinstance(message, dict) and message.get("role") == "assistant" and isinstance(message.get("content"), str)
    ]
    if not any(text.strip() for text in texts):
        return None
    return AnswerStyle(
        tokens=sum(len(_TOKEN.findall(text)) for text in texts),
        headers=sum(len(_HEADER.findall(text)) for text in texts),
        list_items=sum(len(_LIST_ITEM.findall(text)) for text in texts),
        bold=sum(len(_BOLD.findall(text)) for text in texts),
    )


def first_prompt(conversation: list) -> str:
    for message in conversation or []:
        if isinstance(message, dict) and message.get("role") == "user" and isinstance(message.get("content"), str):
            return message["content"]
    return ""


def prompt_hash(prompt: str) -> str:
    """The key that finds the same prompt asked again: case and runs of white space do not matter."""
    if not prompt.strip():
        return ""
    normalised = _SPACE.sub(" ", prompt.strip().casefold())
    return hashlib.sha256(normalised.encode()).hexdigest()[:32]


def style_columns(conversation_a: list, conversation_b: list) -> dict[str, int] | None:
    """The BattleStyle columns of a battle (tokens_a, tokens_b, headers_a, ...); None unless
    both sides carry answer text."""
    a, b = answer_style(conversation_a), answer_style(conversation_b)
    if a is None or b is None:
        return None
    return {
        f"{feature}_{side}": getattr(style, feature)
        for feature in ("tokens", "headers", "list_items", "bold")
        for side, style in (("a", a), ("b", b))
    }


def conversation_prompt_hash(conversation: list) -> str:
    """prompt_hash of a conversation's first user prompt: the key Battle.prompt_hash stores."""
    return prompt_hash(first_prompt(conversation))

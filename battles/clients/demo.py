"""A local backend that answers without any network, so a fresh machine has a working arena."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import secrets
import time
from collections.abc import AsyncIterator, Iterator, Sequence

from django.conf import settings

from .base import Message, check_messages

# Each demo model has a habitual style from its name, so two demo models answer visibly
# differently; the words, and half the time the style, vary from answer to answer.
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


def _showcase(rng: random.Random, topic: str) -> str:
    """Every kind of formatting the battle page renders: asked for by a prompt that mentions
    Markdown, so the page can be tried (and tested) on it."""
    steps = "\n".join(f"{i}. {s}" for i, s in enumerate(rng.sample(_SENTENCES, 3), start=1))
    points = "\n".join(f"- {p}" for p in rng.sample(_POINTS, 3))
    return (
        f"### On “{topic}”\n\n{rng.choice(_OPENINGS)} {rng.choice(_SENTENCES)}\n\n{steps}\n\n"
        f"For example:\n\n{rng.choice(_CODE)}\n\n{points}\n\n"
        f"> {rng.choice(_SENTENCES)}\n\nUse `summarize` on a small sample first. {rng.choice(_CLOSINGS)}"
    )


_STYLES = (_concise, _structured, _explainer, _stepwise)


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def demo_seed() -> int:
    """A fresh seed for one answer, from the system's randomness."""
    return secrets.randbits(64)


def demo_answer(model_name: str, messages: Sequence[Message], *, seed: int | None = None) -> str:
    """A plausible answer; the same only for the same model, conversation and `seed`.

    Without a seed every call draws one (demo_seed): were answers fixed per conversation, a
    visitor who once saw the models revealed after a vote could name both before voting
    whenever the prompt is asked again. The habitual style is chosen half the time, so the
    style alone does not name the model either. It never names a model, so demo battles do
    not trip the identity checks on votes.
    """
    if seed is None:
        seed = demo_seed()
    conversation = json.dumps(list(map(dict, messages)), sort_keys=True)
    rng = random.Random(_digest(f"{model_name}\0{conversation}\0{seed}"))
    habitual = _STYLES[_digest(model_name) % len(_STYLES)]
    style = habitual if rng.random() < 0.5 else rng.choice(_STYLES)
    if "markdown" in messages[-1]["content"].lower():
        style = _showcase
    return style(rng, _topic(messages))


class DemoClient:
    """Answers from `demo_answer`, word by word, with ARENA_DEMO_CHUNK_DELAY between words.
    Each stream draws its own seed unless one is given."""

    def __init__(self, model_name: str, *, chunk_delay: float | None = None, seed: int | None = None):
        self.model_name = model_name
        self.chunk_delay = chunk_delay
        self.seed = seed

    def stream(self, messages: Sequence[Message]) -> Iterator[str]:
        return _words(*self._answer(messages))

    def astream(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        """The same words for code on an event loop: the pauses are the loop's, not a thread's."""
        return _awords(*self._answer(messages))

    def _answer(self, messages: Sequence[Message]) -> tuple[str, float]:
        text = demo_answer(self.model_name, check_messages(messages), seed=self.seed)
        delay = settings.ARENA_DEMO_CHUNK_DELAY if self.chunk_delay is None else self.chunk_delay
        return text, delay


def _words(text: str, delay: float) -> Iterator[str]:
    for i, word in enumerate(re.findall(r"\S+\s*", text)):
        if i and delay:
            time.sleep(delay)
        yield word


async def _awords(text: str, delay: float) -> AsyncIterator[str]:
    # Paced against the clock from the first word, not by sleeping `delay` after each one, so
    # a busy loop that wakes a pause late does not make the whole answer slower.
    start = time.monotonic()
    for i, word in enumerate(re.findall(r"\S+\s*", text)):
        if i and delay:
            await asyncio.sleep(max(0.0, start + i * delay - time.monotonic()))
        else:
            await asyncio.sleep(0)  # let the loop serve others between words
        yield word

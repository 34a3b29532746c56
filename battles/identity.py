"""Does a battle give away who is answering? Pure: texts and terms in, the term found out.

A vote on a battle whose prompt or answers name a model, a provider or a codename is kept
but does not count (`identity_revealed`): the voter may have judged the name rather than
the answer. The terms are the identity terms staff approved (battles/identity_terms.py);
this module matches them, and says which words can never be one (`term_refusal`): a
common English word would exclude ordinary votes, so anyone able to name a provider or a
model could wipe out votes by choosing one.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

# FastChat's IDENTITY_WORDS, which the public arena's vote cleaning (`clean_battle_data.py`)
# used. Not read when votes are judged: migration battles/0007 made them identity terms, for
# staff to keep or refuse in admin.
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


# A single word among the COMMON_WORDS most frequent English words is refused, and so is a
# phrase made only of words among the PHRASE_WORDS most frequent ("let me", "of the"); a
# phrase with one rarer word ("open assistant", "apple intelligence") is specific enough.
COMMON_WORDS_FILE = Path(__file__).resolve().parent / "data" / "common_english_words.txt"
COMMON_WORDS = 5000
PHRASE_WORDS = 1000
MAX_TERM_CHARS = 100
# Characters a JSON text writes escaped: a term holding one could not be found in the stored
# conversations by the database (battles/identity_terms.py narrows its reads that way).
_UNSTORABLE = re.compile(r'["\\\x00-\x1f\x7f]')
_EDGE_PUNCTUATION = re.compile(r"^[^\w]+|[^\w]+$")


@functools.lru_cache(maxsize=1)
def common_words() -> dict[str, int]:
    """The common English words (battles/data/common_english_words.txt) with their rank, 0 the most frequent."""
    lines = COMMON_WORDS_FILE.read_text(encoding="utf-8").splitlines()
    words = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return {word: rank for rank, word in enumerate(words[:COMMON_WORDS])}


def normalise_term(term: str) -> str:
    """A term as stored and matched: compatibility forms folded (full-width letters, ligatures),
    case-folded, runs of white space made one space."""
    return " ".join(unicodedata.normalize("NFKC", term).casefold().split())


def term_refusal(term: str) -> str | None:
    """Why `term` cannot be an identity term, as a sentence for staff; None when it can be one."""
    term = normalise_term(term)
    if not term:
        return "An identity term cannot be empty."
    if len(term) > MAX_TERM_CHARS:
        return f"An identity term has at most {MAX_TERM_CHARS} characters."
    if _UNSTORABLE.search(term):
        return "An identity term cannot hold quotation marks, backslashes or control characters."
    if not any(ch.isalpha() for ch in term):
        return f"{term!r} has no letter: numbers and punctuation turn up in every kind of text."
    if len(term) < 2:
        return f"{term!r} is a single letter: it turns up in every kind of text."
    ranks = common_words()
    words = [_EDGE_PUNCTUATION.sub("", word) for word in term.split()]
    if len(words) == 1:
        rank = ranks.get(words[0]) if words[0] else 0
        if rank is not None:
            return (
                f"{term!r} is a common English word (one of the {COMMON_WORDS:,} most frequent): as an identity "
                "term it would exclude ordinary votes. Use a longer name that is specific to the model."
            )
    elif all(not word or ranks.get(word, PHRASE_WORDS) < PHRASE_WORDS for word in words):
        return (
            f"{term!r} is made only of very common English words (each among the {PHRASE_WORDS:,} most frequent): "
            "as an identity term it would exclude ordinary votes."
        )
    return None


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


# Prompts that ask the model who it is: a voter who asks learns (or guesses) the names,
# so the vote is not blind any more, whatever the answers say (`identity_probe`). One
# pattern per phrasing, per language; matched on the case-folded prompt, quoted text left out,
# runs of white space made single. English phrases that end in "you" must end the sentence, so "who are
# you going to call" or "what model are you using for the loss" are not probes.
_END = r"(?=\s*(?:$|[?!.,;:…？！。，]))"
_AI = r"(?:ai|llm|language model|model|chatbot|bot|assistant|version|system)"
PROBE_PATTERNS: dict[str, tuple[str, ...]] = {
    "en": (
        rf"\bwho (?:exactly |really )?(?:are|r) (?:you|u)\b{_END}",
        rf"\b(?:what|which) (?:kind of |type of |large )?{_AI} (?:are you|is this){_END}",
        rf"\b(?:what|which) (?:kind of |type of |large )?{_AI} am i (?:talking|speaking|chatting) (?:to|with)\b",
        r"\bare you (?:an? )?(?:gpt|claude|gemini|llama|bard|chatgpt|mistral|qwen|deepseek)\b",
        r"\bwhat(?:'s| is) your (?:model )?(?:name|model|version|identity|model name)\b",
        r"\bwho (?:made|created|built|trained|developed|designed|programmed) (?:you|this model|this ai)\b",
        r"\b(?:what|which) company (?:made|created|built|trained|developed|owns|are you from)\b",
        r"\b(?:tell me|say) (?:your|the) (?:model )?name\b",
        r"\bidentify yourself\b",
        r"\bwhat are you called\b",
    ),
    "zh": (
        r"你是谁",
        r"您是谁",
        r"你(?:是|叫)(?:什么|哪个|哪一个|哪种)(?:模型|ai|大模型|语言模型|版本|名字)",
        r"你叫什么",
        r"你的名字(?:是|叫)",
        r"(?:谁|哪家公司|哪个公司)(?:开发|创造|训练|制作|研发|创建)(?:了)?你",
        r"你是(?:由)?(?:谁|哪家公司|哪个公司)(?:开发|创造|训练|制作|研发|创建)的",
        r"介绍一下你自己",
    ),
    "es": (
        r"¿?\bquién eres\b",
        r"¿?\bquién es usted\b",
        r"\bqué (?:modelo|ia|inteligencia artificial|versión) eres\b",
        r"\bcuál es tu (?:nombre|modelo)\b",
        r"\bcómo te llamas\b",
        r"\bquién te (?:creó|entrenó|desarrolló|hizo|programó)\b",
    ),
    "fr": (
        r"\bqui es[- ]tu\b",
        r"\bqui êtes[- ]vous\b",
        r"\bquel (?:modèle|llm|ia) (?:es[- ]tu|êtes[- ]vous)\b",
        r"\bcomment (?:t'appelles[- ]tu|vous appelez[- ]vous)\b",
        r"\bquel est ton (?:nom|modèle)\b",
        r"\bqui t'a (?:créé|entraîné|développé|conçu)\b",
    ),
    "de": (
        r"\bwer bist du\b",
        r"\bwer sind sie\b",
        r"\bwelches (?:sprachmodell|modell|ki-modell|llm) (?:bist du|sind sie)\b",
        r"\bwas für ein (?:sprachmodell|modell|ki-modell) (?:bist du|sind sie)\b",
        r"\bwie heißt du\b",
        r"\bwer hat dich (?:erstellt|entwickelt|trainiert|gemacht|programmiert)\b",
    ),
    "ru": (
        r"(?<!\w)кто ты(?!\w)",
        r"(?<!\w)ты кто(?!\w)",
        r"(?<!\w)кто вы(?:\s+такие|\s+такой)?\s*[?]",
        r"(?<!\w)как(?:ая|ой) (?:ты|вы) (?:модель|нейросеть|ии)(?!\w)",
        r"(?<!\w)как тебя зовут(?!\w)",
        r"(?<!\w)кто тебя (?:создал|обучил|разработал|сделал)(?!\w)",
    ),
    "ja": (
        r"(?:あなた|君|きみ|お前)は(?:誰|だれ)",
        r"(?:あなた|君|きみ)は(?:何|なん|どの|どんな)の?(?:モデル|ai|aI|llm)",
        r"(?:あなた|君|きみ)の名前は",
        r"(?:誰|だれ|どこ)が(?:あなた|君|きみ)を(?:作|開発|訓練|学習)",
    ),
    "pt": (
        r"\bquem (?:é você|és tu|e voce|é vc)\b",
        r"\b(?:qual|que) modelo (?:é você|você é|és tu)\b",
        r"\bqual é o seu nome\b",
        r"\bcomo você se chama\b",
        r"\bquem te (?:criou|treinou|desenvolveu|fez)\b",
    ),
    "ko": (
        r"(?:너는|넌|당신은|너) 누구",
        r"누가 (?:너를|당신을|널) (?:만들|개발|훈련)",
        r"(?:무슨|어떤|어느) (?:모델|ai|언어 모델)(?:이야|이에요|인가요|입니까|이니)",
        r"(?:너의|당신의|네) 이름(?:은|이) (?:뭐|무엇)",
    ),
}


# Quoted text is text to work on, not a question to the model ("Translate: 'Who are you?'").
# A single quote counts only where it is not inside a word, so "what's" stays whole.
_QUOTED = re.compile(r"\"[^\"]*\"|“[^”]*”|«[^»]*»|「[^」]*」|『[^』]*』|(?<!\w)'[^']*'(?!\w)")


@functools.lru_cache(maxsize=1)
def _probe_pattern() -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for patterns in PROBE_PATTERNS.values() for p in patterns))


def identity_probe(prompts: Iterable[str]) -> str | None:
    """The first prompt text that asks the model who it is (as matched), or None."""
    pattern = _probe_pattern()
    for prompt in prompts:
        found = pattern.search(" ".join(_QUOTED.sub(" ", prompt.casefold()).split()))
        if found:
            return found.group(0)
    return None

"""The language of a battle's prompt, as an English name.

`detect_language(text)` names the language the way the public `chatbot_arena_conversations`
dataset does ("English", "Chinese", "Spanish", ...) and says "unknown" when the text has no
letters or the detector is not confident, so imported and live battles share one column and
the leaderboard's language categories (ARENA_LANGUAGE_CATEGORIES) match both.

The detector is lingua (lingua-language-detector): statistical n-gram models plus rules on
the alphabet, accurate on short texts, no network. Importing this module costs about 1 ms
and 4 MB; the detector and its models are built and loaded on the first call, once per
process, so a process that never detects pays nothing.
"""

from __future__ import annotations

import threading

from lingua import Language, LanguageDetector, LanguageDetectorBuilder

UNKNOWN = "unknown"

# The languages the detector chooses among. Measured on this machine (lingua 2.1.1; RSS of
# the process once the models its texts need are loaded; times per call after that; 113
# short prompts in 26 languages, 42 of them English, like "what is the capital of France"):
#
#                          RSS       first call  short    2,000 chars  right (no threshold)
#   all 75, high accuracy  1,150 MB  6 s         0.5 ms   3.7 ms       102/113
#   all 75, low accuracy     145 MB  0.3 s       0.1 ms   3.0 ms        82/113
#   this list, high          460 MB  2.2 s       0.1 ms   1.5 ms       107/113
#   this list, low            75 MB  0.1 s       0.04 ms  1.3 ms        92/113
#
# Low accuracy (trigrams only) misreads short prompts, the usual kind: "what is the capital
# of France" -> German, "tell me a joke" -> Finnish. All 75 languages in high accuracy
# still read short English as Swahili or Esperanto ("write a poem") and cost a gigabyte.
# So: high accuracy on the languages the arena sees. Memory goes to the languages sharing
# an alphabet with the text, as lingua loads every candidate's models: about 25-50 MB per
# Latin-script language (370 MB once an English text has been seen), ~80 MB for Russian and
# Ukrainian, ~40 MB for Arabic and Persian. Languages alone in their script are told by
# rules and load nothing, so all of those are in. The price: a language left out is read
# as its nearest neighbour on the list (Finnish as Swedish, Hungarian as Spanish) or, in a
# script of its own that is not here, as unknown. Add one when the arena starts seeing it.
LANGUAGES: tuple[Language, ...] = (
    # Latin script: the models that cost memory.
    Language.ENGLISH,
    Language.SPANISH,
    Language.PORTUGUESE,
    Language.GERMAN,
    Language.FRENCH,
    Language.ITALIAN,
    Language.DUTCH,
    Language.POLISH,
    Language.CZECH,
    Language.SWEDISH,
    Language.TURKISH,
    Language.VIETNAMESE,
    Language.INDONESIAN,
    # Cyrillic and Arabic script.
    Language.RUSSIAN,
    Language.UKRAINIAN,
    Language.ARABIC,
    Language.PERSIAN,
    # Each alone in its script among these: decided by rules, no models loaded.
    Language.CHINESE,
    Language.JAPANESE,
    Language.KOREAN,
    Language.GREEK,
    Language.HEBREW,
    Language.THAI,
    Language.HINDI,
    Language.BENGALI,
    Language.TAMIL,
    Language.TELUGU,
    Language.GUJARATI,
    Language.PUNJABI,
    Language.ARMENIAN,
    Language.GEORGIAN,
)

# The detector's confidences over the list sum to 1. Below this the text is too short or
# too odd to call: it turns "hi", "ok", "test", "a" and keyboard mashing into
# unknown instead of Vietnamese, Czech, Italian or Indonesian, at the cost of 3 of the 42
# short English prompts above ("write a poem" and "tell me a joke" score 0.18). It is
# tuned for this list: over all 75 languages the confidences spread thinner.
MIN_CONFIDENCE = 0.2

# Detection time grows with the text (1.5 ms for 2,000 characters, 5.6 ms for 10,000, 48 ms
# for 100,000), while 2,000 characters are far more than the detector needs to be sure
# (lingua finds even its trigram-only mode reliable from about 120). The rest of a pasted
# document or a long code listing would only cost time.
SAMPLE_CHARS = 2000

# Names where lingua's differ from the dataset's plain English names.
_NAMES = {
    # lingua tells the two written standards of Norwegian apart; the arena needs the language.
    "BOKMAL": "Norwegian",
    "NYNORSK": "Norwegian",
    "SLOVENE": "Slovenian",
}

_detector_instance: LanguageDetector | None = None
_detector_lock = threading.Lock()


def detect_language(text: str) -> str:
    """The language of `text` as an English name ("English", "Chinese", ...), or "unknown"
    when it has no letters or the detector is not confident. Thread-safe."""
    sample = text[:SAMPLE_CHARS]
    if not any(char.isalpha() for char in sample):
        return UNKNOWN
    confidences = _detector().compute_language_confidence_values(sample)
    if not confidences or confidences[0].value < MIN_CONFIDENCE:
        return UNKNOWN
    return language_name(confidences[0].language)


def language_name(language: Language) -> str:
    """The dataset-style name of one of lingua's languages: ENGLISH -> "English"."""
    return _NAMES.get(language.name) or language.name.title()


def _detector() -> LanguageDetector:
    # Built once per process. Building is cheap; the models load on first use, per
    # language, and lingua keeps them for the life of the detector (and so the process).
    global _detector_instance
    if _detector_instance is None:
        with _detector_lock:
            if _detector_instance is None:
                _detector_instance = LanguageDetectorBuilder.from_languages(*LANGUAGES).build()
    return _detector_instance

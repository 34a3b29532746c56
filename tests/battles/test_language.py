"""Battle language tags: dataset-style names from lingua, "unknown" when there is nothing to go on."""

import threading

import pytest
from lingua import Language

from battles import language
from battles.language import UNKNOWN, detect_language, language_name
from battles.models import Battle


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("what is the capital of France", "English"),
        ("Write a python function to reverse a linked list", "English"),
        ("法国的首都是哪里？", "Chinese"),
        ("请帮我写一首关于春天的诗", "Chinese"),
        ("¿Cuál es la capital de Francia?", "Spanish"),
        ("escribe un poema sobre el mar", "Spanish"),
        ("Was ist die Hauptstadt von Frankreich?", "German"),
        ("Schreib mir ein Gedicht über den Herbst", "German"),
        ("フランスの首都はどこですか？", "Japanese"),
        ("量子コンピュータについて説明してください", "Japanese"),
        ("Какая столица Франции?", "Russian"),
        ("напиши стихотворение о зиме", "Russian"),
    ],
)
def test_it_names_the_language_of_short_prompts(text, expected):
    assert detect_language(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "   \n\t", "12345", "3.14 + 2 = 5.14", "!!! ??? ...", "--- *** ---", "🙂👍🎉", "2024-05-01 12:00:00"],
)
def test_text_without_letters_is_unknown(text):
    assert detect_language(text) == UNKNOWN


@pytest.mark.parametrize("text", ["ok", "test", "hi"])
def test_a_word_too_short_to_tell_is_unknown(text):
    # Below the confidence threshold, instead of Czech, Italian or Vietnamese.
    assert detect_language(text) == UNKNOWN


def test_a_very_long_text_is_judged_by_its_beginning():
    english = "Please review the following report and tell me what you think about its conclusions. "
    german = "Bitte lies den folgenden Bericht und sag mir, was du von seinen Schlussfolgerungen hältst. "
    text = english * (language.SAMPLE_CHARS // len(english) + 1) + german * 5000
    assert len(text) > 400_000
    assert detect_language(text) == "English"
    assert detect_language(german * 5000) == "German"


@pytest.mark.parametrize(
    ("lingua_language", "name"),
    [
        (Language.ENGLISH, "English"),
        (Language.CHINESE, "Chinese"),
        (Language.PORTUGUESE, "Portuguese"),
        (Language.BOKMAL, "Norwegian"),
        (Language.NYNORSK, "Norwegian"),
        (Language.SLOVENE, "Slovenian"),
        (Language.AZERBAIJANI, "Azerbaijani"),
    ],
)
def test_lingua_languages_get_the_datasets_english_names(lingua_language, name):
    assert language_name(lingua_language) == name


def test_every_name_fits_the_battle_column():
    max_length = Battle._meta.get_field("language").max_length
    names = {language_name(each) for each in Language.all()}
    assert all(name and len(name) <= max_length for name in names)
    assert UNKNOWN not in names


def test_the_detector_is_built_once_across_threads(monkeypatch):
    real_detector = language._detector()
    builds = []

    class CountingBuilder:
        @staticmethod
        def from_languages(*languages):
            builds.append(languages)
            return CountingBuilder()

        def build(self):
            return real_detector

    monkeypatch.setattr(language, "LanguageDetectorBuilder", CountingBuilder)
    monkeypatch.setattr(language, "_detector_instance", None)
    start = threading.Barrier(8)
    results = []

    def detect():
        start.wait()
        results.append(detect_language("Wie geht es dir heute?"))

    threads = [threading.Thread(target=detect) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["German"] * 8
    assert len(builds) == 1
    assert builds[0] == language.LANGUAGES

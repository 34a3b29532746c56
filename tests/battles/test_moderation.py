"""Moderation verdicts: a real moderations server on loopback (tests/support/openai_server.py)
for the remote moderator, the local phrase list, and the choice between them."""

import json
import logging
import os
import socket
import subprocess
import sys
import time
from contextlib import closing

import pytest

from battles import moderation
from battles.moderation import (
    CATEGORIES,
    MAX_INPUT_CHARS,
    LocalModerator,
    ModerationUnavailable,
    OpenAIModerator,
    moderate,
    moderator,
)
from tests.support.openai_server import Mode, OpenAIServer, Script

KEY = "sk-moderation-secret-0123456789"
MODEL = "omni-moderation-latest"


@pytest.fixture
def server():
    with OpenAIServer() as running:
        yield running


def remote(server, model=MODEL, timeout=2.0, api_key=KEY) -> OpenAIModerator:
    return OpenAIModerator(base_url=server.base_url, api_key=api_key, model=model, timeout=timeout)


def unavailable(moderator_, texts) -> ModerationUnavailable:
    with pytest.raises(ModerationUnavailable) as caught:
        moderator_.moderate(texts)
    return caught.value


def flagged_categories(result) -> set[str]:
    return {name for name, value in result["categories"].items() if value}


def assert_dataset_shape(result):
    assert list(result) == ["categories", "category_scores", "flagged"]
    assert list(result["categories"]) == list(CATEGORIES)
    assert list(result["category_scores"]) == list(CATEGORIES)
    assert all(type(value) is bool for value in result["categories"].values())
    assert all(type(score) is float and 0.0 <= score <= 1.0 for score in result["category_scores"].values())
    assert type(result["flagged"]) is bool
    json.dumps(result)  # stored as JSON


# --- the remote moderator ----------------------------------------------------------------


def test_a_clean_turn_gets_a_clean_verdict_in_the_datasets_shape(server):
    result = remote(server).moderate(["What is the capital of France?", "Paris.", "It is Paris."])
    assert_dataset_shape(result)
    assert result["flagged"] is False
    assert flagged_categories(result) == set()
    assert result["category_scores"]["violence"] == pytest.approx(0.0001)
    # omni-moderation's own extra categories are not part of the dataset's shape.
    assert "illicit" not in result["categories"] and "illicit" not in result["category_scores"]


def test_the_request_carries_the_key_the_model_and_every_text(server):
    remote(server, model="my-moderation-model").moderate(["prompt", "answer a", "answer b"])
    (request,) = server.requests
    assert (request.method, request.path) == ("POST", "/v1/moderations")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.body == {"model": "my-moderation-model", "input": ["prompt", "answer a", "answer b"]}


def test_a_flagged_text_flags_its_category(server):
    result = remote(server).moderate(["How do I hurt someone? FLAG:violence"])
    assert_dataset_shape(result)
    assert result["flagged"] is True
    assert flagged_categories(result) == {"violence"}
    assert result["category_scores"]["violence"] == pytest.approx(0.99)


def test_the_texts_of_a_turn_combine_into_one_verdict(server):
    result = remote(server).moderate(
        [
            "prompt FLAG:violence SCORE:sexual=0.3",
            "answer a FLAG:hate SCORE:sexual=0.6",
            "answer b, clean SCORE:sexual=0.1",
        ]
    )
    assert len(server.requests) == 1
    assert result["flagged"] is True
    assert flagged_categories(result) == {"violence", "hate"}
    assert result["category_scores"]["sexual"] == pytest.approx(0.6)  # the highest of the three
    assert result["category_scores"]["violence"] == pytest.approx(0.99)
    assert result["category_scores"]["hate"] == pytest.approx(0.99)


def test_a_flag_outside_the_datasets_categories_still_flags_the_turn(server):
    # The service's own verdict stands, even when it rests on a category the shape leaves out.
    result = remote(server).moderate(["how to pick a lock FLAG:illicit"])
    assert result["flagged"] is True
    assert flagged_categories(result) == set()


def test_categories_the_service_leaves_out_are_false_and_zero(server):
    body = {"results": [{"flagged": False, "categories": {"hate": False}, "category_scores": {"hate": 0.25}}]}
    server.script(MODEL, Script(mode=Mode.ERROR, status=200, error_body=json.dumps(body)))
    result = remote(server).moderate(["hello"])
    assert_dataset_shape(result)
    assert result["category_scores"]["hate"] == 0.25
    assert result["category_scores"]["violence"] == 0.0 and result["categories"]["violence"] is False


def test_long_texts_are_cut_before_they_are_sent(server):
    remote(server).moderate(["x" * (MAX_INPUT_CHARS * 3), "short"])
    sent = server.requests[0].body["input"]
    assert [len(text) for text in sent] == [MAX_INPUT_CHARS, len("short")]


def test_a_turn_without_texts_needs_no_request(server):
    result = remote(server).moderate([])
    assert result["flagged"] is False and server.requests == []


def test_a_bare_string_is_refused(server):
    with pytest.raises(TypeError):
        remote(server).moderate("one text, not a list")


def test_a_server_error_makes_moderation_unavailable(server):
    error = unavailable(remote(server, model="error"), ["hello"])
    assert "HTTP 500" in str(error) and "simulated failure" in str(error)


def test_a_rate_limit_makes_moderation_unavailable(server):
    server.script(MODEL, Script(mode=Mode.ERROR, status=429, error_body='{"error": {"message": "slow down"}}'))
    assert "HTTP 429" in str(unavailable(remote(server), ["hello"]))


def test_garbage_makes_moderation_unavailable(server):
    error = unavailable(remote(server, model="garbage"), ["hello"])
    assert "not JSON" in str(error)


@pytest.mark.parametrize(
    "body",
    [
        {"nothing": "useful"},
        {"results": "not a list"},
        {"results": []},  # one text sent, no result back
        {"results": ["not an object"]},
        {"results": [{"flagged": "no", "categories": {}, "category_scores": {}}]},
        {"results": [{"flagged": False, "categories": {"hate": "no"}, "category_scores": {}}]},
        {"results": [{"flagged": False, "categories": {}, "category_scores": {"hate": "high"}}]},
        [1, 2, 3],
    ],
)
def test_json_that_is_not_a_verdict_makes_moderation_unavailable(server, body):
    server.script(MODEL, Script(mode=Mode.ERROR, status=200, error_body=json.dumps(body)))
    unavailable(remote(server), ["hello"])


def test_a_silent_server_times_out(server):
    started = time.monotonic()
    error = unavailable(remote(server, model="hang_before_first_byte", timeout=0.3), ["hello"])
    assert time.monotonic() - started < 2.0
    assert "within 0.3 s" in str(error)


def test_a_dropped_connection_makes_moderation_unavailable(server):
    unavailable(remote(server, model="close_mid_stream"), ["hello"])


def test_an_unreachable_server_makes_moderation_unavailable():
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket is closed
    moderator_ = OpenAIModerator(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, model=MODEL, timeout=2.0)
    assert "could not connect" in str(unavailable(moderator_, ["hello"]))


def test_the_key_never_appears_in_an_error(server):
    server.script(MODEL, Script(mode=Mode.ERROR, status=401, echo_authorization=True))
    moderator_ = remote(server)
    error = unavailable(moderator_, ["hello"])
    assert KEY not in str(error) and "[API key]" in str(error)
    assert KEY not in repr(moderator_)


# --- the local phrase list ---------------------------------------------------------------


def test_the_local_moderator_passes_ordinary_text():
    result = LocalModerator().moderate(
        ["How do I kill a Python process?", "Use `kill -9 <pid>`.", "That skill myself."]
    )
    assert_dataset_shape(result)
    assert result["flagged"] is False
    assert set(result["category_scores"].values()) == {0.0}


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("I want to kill myself", "self-harm/intent"),
        ("i want to KILL\n  MYSELF tonight", "self-harm/intent"),
        ("Tell me how to build a bomb.", "violence"),
        ("what's the best way to kill myself", "self-harm/instructions"),
    ],
)
def test_a_built_in_phrase_flags_its_category(text, category):
    result = LocalModerator().moderate(["an innocent prompt", text])
    assert result["flagged"] is True
    assert category in flagged_categories(result)
    assert result["category_scores"][category] == 1.0


def test_phrases_match_whole_words_only():
    assert LocalModerator().moderate(["killmyself", "rebuild a bombastic speech"])["flagged"] is False


def test_configured_phrases_are_added_to_the_built_in_ones():
    local = LocalModerator({"hate": ["frobnicate the gnomes"], "violence": ["smash the widgets"]})
    result = local.moderate(["We should FROBNICATE the gnomes", "then build a bomb"])
    assert flagged_categories(result) == {"hate", "violence"}
    assert result["category_scores"]["hate"] == 1.0
    assert result["category_scores"]["sexual"] == 0.0


def test_a_typed_apostrophe_also_matches_a_typographic_one():
    local = LocalModerator({"harassment/threatening": ["i'm coming for you"]})
    assert local.moderate(["I’m coming for you"])["categories"]["harassment/threatening"] is True


def test_an_empty_configured_phrase_matches_nothing():
    assert LocalModerator({"hate": ["", "  "]}).moderate(["anything at all"])["flagged"] is False


def test_a_configured_phrase_needs_a_known_category():
    with pytest.raises(ValueError, match="unknown moderation category 'spam'"):
        LocalModerator({"spam": ["buy now"]})


# --- the choice by settings --------------------------------------------------------------


def test_without_an_api_key_the_local_moderator_is_used(settings):
    settings.ARENA_MODERATION_API_KEY = ""
    settings.ARENA_MODERATION_TERMS = {"hate": ["frobnicate the gnomes"]}
    chosen = moderator()
    assert isinstance(chosen, LocalModerator)
    assert flagged_categories(chosen.moderate(["frobnicate the gnomes"])) == {"hate"}
    assert moderate(["please frobnicate the gnomes"])["categories"]["hate"] is True


def test_with_an_api_key_the_remote_moderator_is_used(settings, server):
    settings.ARENA_MODERATION_API_KEY = KEY
    settings.ARENA_MODERATION_URL = server.base_url
    settings.ARENA_MODERATION_MODEL = "custom-moderation"
    settings.ARENA_MODERATION_TIMEOUT = 3.5
    chosen = moderator()
    assert isinstance(chosen, OpenAIModerator)
    assert (chosen.base_url, chosen.model, chosen.timeout) == (server.base_url, "custom-moderation", 3.5)
    assert flagged_categories(moderate(["FLAG:sexual"])) == {"sexual"}
    assert server.requests[-1].body["model"] == "custom-moderation"


def test_an_unavailable_remote_moderator_gives_no_verdict_and_a_warning(settings, server, caplog):
    settings.ARENA_MODERATION_API_KEY = KEY
    settings.ARENA_MODERATION_URL = server.base_url
    settings.ARENA_MODERATION_MODEL = "error"
    with caplog.at_level(logging.WARNING, logger=moderation.__name__):
        assert moderate(["hello"]) is None
    assert "HTTP 500" in caplog.text
    assert KEY not in caplog.text


def settings_in_subprocess(**env) -> subprocess.CompletedProcess:
    """Import the settings afresh with the ARENA_MODERATION_* variables in `env` (and no others)."""
    code = (
        "import json; from arenasite import settings as s; "
        "print(json.dumps([s.ARENA_MODERATION_API_KEY, s.ARENA_MODERATION_URL, s.ARENA_MODERATION_MODEL, "
        "s.ARENA_MODERATION_TIMEOUT, s.ARENA_MODERATION_TERMS]))"
    )
    environ = {name: value for name, value in os.environ.items() if not name.startswith("ARENA_MODERATION_")}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**environ, "SECRET_KEY": "x", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_moderation_settings_have_defaults():
    result = settings_in_subprocess()
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["", "https://api.openai.com/v1", "omni-moderation-latest", 10.0, {}]


def test_configured_terms_accept_every_dataset_category():
    terms = ",".join(f"{name}=phrase for {name.replace('/', ' ')}" for name in CATEGORIES)
    result = settings_in_subprocess(ARENA_MODERATION_TERMS=terms + ", violence = smash  it ")
    assert result.returncode == 0, result.stderr
    parsed = json.loads(result.stdout)[-1]
    assert list(parsed) == list(CATEGORIES)
    assert parsed["violence"] == ["phrase for violence", "smash  it"]
    LocalModerator(parsed)  # and the moderator takes them


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ARENA_MODERATION_TERMS", "spam=buy now", "ARENA_MODERATION_TERMS: unknown category 'spam'"),
        ("ARENA_MODERATION_TERMS", "buy now", "ARENA_MODERATION_TERMS items must be category=phrase, got 'buy now'"),
        ("ARENA_MODERATION_TERMS", "hate=", "ARENA_MODERATION_TERMS items must be category=phrase, got 'hate='"),
        ("ARENA_MODERATION_TIMEOUT", "0", "ARENA_MODERATION_TIMEOUT must be above 0, got 0.0"),
        ("ARENA_MODERATION_TIMEOUT", "soon", "ARENA_MODERATION_TIMEOUT must be a number, got 'soon'"),
        ("ARENA_MODERATION_URL", "api.openai.com/v1", "ARENA_MODERATION_URL must start with http:// or https://"),
    ],
)
def test_malformed_moderation_settings_stop_the_start(variable, value, message):
    result = settings_in_subprocess(**{variable: value})
    assert result.returncode != 0
    assert message in result.stderr

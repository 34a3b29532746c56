"""Model clients against a real chat-completions server on loopback (tests/support/openai_server.py)."""

import socket
import threading
import time
from contextlib import closing

import pytest

from arenasite import clock
from battles import clients
from battles.clients import (
    CallLimits,
    DemoClient,
    FailureKind,
    ModelCallFailed,
    NoAnswerBackend,
    OpenAIChatClient,
    client_for,
    demo_answer,
    stream_answer,
)
from providers import health
from providers.models import ArenaModel
from tests.support.openai_server import Mode, OpenAIServer, Script

from ..conftest import make_model

KEY = "sk-loopback-secret-0123456789"
HELLO = [{"role": "user", "content": "Explain binary search briefly."}]
# Generous against a slow CI machine, small against the timeouts under test.
SLACK = 1.0


@pytest.fixture
def server():
    with OpenAIServer() as running:
        yield running


def fast_limits(**overrides) -> CallLimits:
    values = dict(
        connect_timeout=2.0,
        first_token_timeout=2.0,
        chunk_timeout=2.0,
        total_timeout=10.0,
        retries=2,
        retry_backoff=0.01,
        concurrency=4,
        max_answer_chars=10_000,
    )
    return CallLimits(**{**values, **overrides})


def client(server, model_id="stream", api_key=KEY, **limits) -> OpenAIChatClient:
    return OpenAIChatClient(base_url=server.base_url, model_id=model_id, api_key=api_key, limits=fast_limits(**limits))


def failure(stream) -> tuple[ModelCallFailed, list[str]]:
    """The failure a stream ends with, and the text it yielded before."""
    shown = []
    with pytest.raises(ModelCallFailed) as caught:
        for piece in stream:
            shown.append(piece)
    return caught.value, shown


# --- a normal answer ---------------------------------------------------------------------


def test_a_streamed_answer_arrives_whole_and_in_order(server):
    pieces = ("Binary", " search", " halves", " the range — ", "ünïcödé 🌍", "\n\n- **done**")
    server.script("m", Script(chunks=pieces, chunk_delay=0.01))
    assert list(client(server, "m").stream(HELLO)) == list(pieces)


def test_the_request_carries_the_key_and_the_conversation(server):
    conversation = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "What is 2+2?"},
    ]
    "".join(client(server, "m-1").stream(conversation))
    [request] = server.requests
    assert request.method == "POST" and request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.body == {"model": "m-1", "messages": conversation, "stream": True}


def test_a_models_sampling_temperature_is_sent_with_each_battle_call(provider_a, server, battle_limits):
    warm = endpoint_model(provider_a, server, "warm")
    ArenaModel.objects.filter(pk=warm.pk).update(temperature=0.8)
    warm.refresh_from_db()
    default = endpoint_model(provider_a, server, "default")

    "".join(stream_answer(warm, HELLO))
    "".join(stream_answer(default, HELLO))

    [sent] = server.requests_for("warm")
    assert sent.body["temperature"] == 0.8
    [unset] = server.requests_for("default")
    assert "temperature" not in unset.body  # the endpoint's own default


def test_a_request_without_a_key_sends_no_authorization(server):
    "".join(client(server, api_key="").stream(HELLO))
    assert "authorization" not in server.requests[0].headers


def test_an_endpoint_that_ignores_stream_true_still_answers(server):
    server.script("plain", Script(mode=Mode.JSON, text="A whole answer at once."))
    assert "".join(client(server, "plain").stream(HELLO)) == "A whole answer at once."


def test_the_loopback_server_also_passes_the_health_probe(server, provider_a):
    model = make_model(provider_a, endpoint_base_url=server.base_url, endpoint_model_id="m", endpoint_api_key=KEY)
    assert health.probe_endpoint(model) == health.CheckResult(ok=True)


# --- retries -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503, 429])
def test_it_retries_a_server_error_then_answers(server, status):
    server.script("flaky", Script(fail_times=2, status=status, text="Third time lucky."))
    assert "".join(client(server, "flaky", retries=2).stream(HELLO)) == "Third time lucky."
    assert len(server.requests_for("flaky")) == 3


def test_it_gives_up_after_the_configured_retries(server):
    server.script("down", Script(mode=Mode.ERROR, status=502))
    error, shown = failure(client(server, "down", retries=2).stream(HELLO))
    assert error.kind == FailureKind.HTTP and "HTTP 502" in error.detail and "after 3 attempts" in error.detail
    assert shown == [] and len(server.requests_for("down")) == 3


def test_it_waits_as_long_as_retry_after_asks(server):
    server.script("limited", Script(fail_times=1, status=429, retry_after="0.4"))
    started = time.monotonic()
    "".join(client(server, "limited").stream(HELLO))
    assert time.monotonic() - started >= 0.4
    assert len(server.requests_for("limited")) == 2


def test_a_client_error_is_not_retried(server):
    server.script("bad-key", Script(mode=Mode.ERROR, status=401))
    error, _ = failure(client(server, "bad-key").stream(HELLO))
    assert error.kind == FailureKind.HTTP and error.detail.startswith("HTTP 401")
    assert len(server.requests_for("bad-key")) == 1


def test_nothing_is_retried_once_text_has_been_shown(server):
    server.script("drops", Script(mode=Mode.CLOSE_MID_STREAM, chunks=("one ", "two ", "three"), chunks_before=2))
    error, shown = failure(client(server, "drops", retries=5).stream(HELLO))
    assert error.kind == FailureKind.CUT
    assert shown == ["one ", "two "]
    assert len(server.requests_for("drops")) == 1


def test_an_unreachable_endpoint_is_a_connect_failure():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    unreachable = OpenAIChatClient(base_url=f"http://127.0.0.1:{port}/v1", model_id="m", limits=fast_limits())
    error, _ = failure(unreachable.stream(HELLO))
    assert error.kind == FailureKind.CONNECT and "after 3 attempts" in error.detail


# --- hangs, garbage, cuts ----------------------------------------------------------------


def test_a_hang_before_the_first_byte_times_out_within_the_setting(server):
    started = time.monotonic()
    error, _ = failure(client(server, "hang_before_first_byte", first_token_timeout=0.4).stream(HELLO))
    elapsed = time.monotonic() - started
    assert error.kind == FailureKind.TIMEOUT and "no answer text within 0.4 s" in error.detail
    assert 0.4 <= elapsed < 0.4 + SLACK
    assert len(server.requests) == 1  # a timeout is not retried: the voter has waited enough


def test_a_hang_mid_stream_times_out_within_the_setting(server):
    server.script("stalls", Script(mode=Mode.HANG_MID_STREAM, chunks=("a ", "b ", "c"), chunks_before=2))
    started = time.monotonic()
    error, shown = failure(client(server, "stalls", chunk_timeout=0.3).stream(HELLO))
    assert error.kind == FailureKind.TIMEOUT and "in the middle of the answer" in error.detail
    assert shown == ["a ", "b "]
    assert time.monotonic() - started < 0.3 + SLACK


def test_keep_alive_comments_do_not_count_as_an_answer(server):
    started = time.monotonic()
    error, _ = failure(client(server, "keepalive_only", first_token_timeout=0.4).stream(HELLO))
    assert error.kind == FailureKind.TIMEOUT
    assert time.monotonic() - started < 0.4 + SLACK


def test_an_answer_that_drips_past_the_total_time_is_stopped(server):
    server.script("drip", Script(mode=Mode.ENDLESS, chunk_delay=0.05))
    error, shown = failure(client(server, "drip", chunk_timeout=1.0, total_timeout=0.5).stream(HELLO))
    assert error.kind == FailureKind.TIMEOUT and "not finished within 0.5 s" in error.detail
    assert shown


def test_garbage_is_a_protocol_error(server):
    error, shown = failure(client(server, "garbage").stream(HELLO))
    assert error.kind == FailureKind.PROTOCOL and "not JSON" in error.detail
    assert "".join(shown) == "Loopback answer "


@pytest.mark.parametrize("mode", [Mode.CLOSE_MID_STREAM, Mode.END_WITHOUT_DONE])
def test_a_stream_that_ends_early_is_cut(server, mode):
    error, _ = failure(client(server, mode.value).stream(HELLO))
    assert error.kind == FailureKind.CUT


def test_an_error_event_mid_stream_is_an_http_failure(server):
    error, _ = failure(client(server, "error_event").stream(HELLO))
    assert error.kind == FailureKind.HTTP and "simulated failure mid-stream" in error.detail


def test_a_runaway_answer_is_cut_at_the_length_limit(server):
    error, shown = failure(client(server, "endless", max_answer_chars=100).stream(HELLO))
    assert error.kind == FailureKind.TOO_LONG
    assert len("".join(shown)) == 100


def test_the_key_never_appears_in_an_error(server):
    server.script("echo", Script(mode=Mode.ERROR, status=400, echo_authorization=True))
    error, _ = failure(client(server, "echo").stream(HELLO))
    assert KEY not in str(error) and "[API key]" in str(error)
    assert KEY not in repr(client(server))


# --- the concurrency limit ---------------------------------------------------------------


def test_the_endpoint_never_sees_more_streams_than_the_limit(server):
    server.script("busy", Script(chunks=("a ", "b ", "c ", "d"), chunk_delay=0.05))
    answers, errors = [], []

    def ask():
        try:
            answers.append("".join(client(server, "busy", concurrency=2, connect_timeout=10).stream(HELLO)))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and answers == ["a b c d"] * 6
    assert server.peak_streams == 2


def test_a_full_endpoint_fails_as_busy_without_counting_against_it(server):
    server.script("slow", Script(mode=Mode.HANG_MID_STREAM, chunks_before=1))
    first = client(server, "slow", concurrency=1, chunk_timeout=5).stream(HELLO)
    with closing(first):
        next(first)  # holds the only slot
        error, _ = failure(client(server, "slow", concurrency=1, connect_timeout=0.2).stream(HELLO))
    assert error.kind == FailureKind.BUSY and not error.counts_against_endpoint
    assert len(server.requests) == 1


def test_a_stream_the_caller_stops_reading_gives_its_slot_back(server):
    server.script("long", Script(mode=Mode.HANG_MID_STREAM, chunks_before=1))
    with closing(client(server, "long", concurrency=1).stream(HELLO)) as abandoned:
        next(abandoned)
    assert "".join(client(server, "stream", concurrency=1, connect_timeout=0.2).stream(HELLO))


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "messages, complaint",
    [
        ([], "non-empty list"),
        ("hello", "non-empty list"),
        ([{"role": "user"}], "'role' and 'content'"),
        ([{"role": "robot", "content": "hi"}], "role must be one of"),
        ([{"role": "user", "content": 42}], "content must be a string"),
        ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], "last message"),
    ],
)
def test_bad_messages_are_refused_before_any_call(server, messages, complaint):
    for backend in (client(server), DemoClient("demo")):
        with pytest.raises(ValueError, match=complaint):
            backend.stream(messages)
    assert server.requests == []


def test_a_base_url_that_is_not_http_is_refused():
    with pytest.raises(ValueError, match="http:// or https://"):
        OpenAIChatClient(base_url="ftp://example.com", model_id="m")


# --- the battle entry point: backends and health records ---------------------------------


@pytest.fixture
def battle_limits(settings):
    settings.ARENA_MODEL_FIRST_TOKEN_TIMEOUT = 0.5
    settings.ARENA_MODEL_CHUNK_TIMEOUT = 0.5
    settings.ARENA_MODEL_RETRIES = 0


def endpoint_model(provider, server, model_id, status=ArenaModel.Status.LISTED):
    return make_model(
        provider, status, endpoint_base_url=server.base_url, endpoint_model_id=model_id, endpoint_api_key=KEY
    )


def test_client_for_picks_the_backend(provider_a, server):
    assert isinstance(client_for(make_model(provider_a, is_demo=True)), DemoClient)
    assert isinstance(client_for(endpoint_model(provider_a, server, "m")), OpenAIChatClient)
    with pytest.raises(NoAnswerBackend, match="no answer backend"):
        client_for(make_model(provider_a, endpoint_base_url=server.base_url))  # no model id


def test_a_failure_in_a_battle_is_recorded_like_a_failed_health_check(provider_a, server, battle_limits):
    model = endpoint_model(provider_a, server, "garbage")
    with pytest.raises(ModelCallFailed) as caught:
        "".join(stream_answer(model, HELLO))
    assert caught.value.user_message
    model.refresh_from_db()
    assert model.endpoint_last_error.startswith("In a battle: protocol:")
    assert model.endpoint_offline_since is not None
    assert KEY not in model.endpoint_last_error
    # ...which is what the lifecycle task reports for a listed model inside its window.
    assert list(ArenaModel.objects.offline_in_listing_window(clock.now())) == [model]


def test_a_complete_answer_clears_the_failure_as_a_passing_check_would(provider_a, server, battle_limits):
    model = endpoint_model(provider_a, server, "flaky")
    server.script("flaky", Script(mode=Mode.HANG_BEFORE_FIRST_BYTE))
    with pytest.raises(ModelCallFailed):
        "".join(stream_answer(model, HELLO))
    model.refresh_from_db()
    assert model.endpoint_offline_since is not None and "timeout" in model.endpoint_last_error

    server.script("flaky", Script(text="Back again."))
    assert "".join(stream_answer(model, HELLO)) == "Back again."
    model.refresh_from_db()
    assert model.endpoint_offline_since is None and model.endpoint_last_error == ""
    assert model.endpoint_last_ok_at is not None


def test_a_healthy_model_is_not_written_on_every_answer(provider_a, server, battle_limits, django_assert_num_queries):
    model = endpoint_model(provider_a, server, "stream")
    with django_assert_num_queries(0):
        assert "".join(stream_answer(model, HELLO))


def test_an_answer_the_voter_abandons_records_nothing(provider_a, server, battle_limits):
    model = endpoint_model(provider_a, server, "hang_mid_stream")
    with closing(stream_answer(model, HELLO)) as answer:
        next(answer)
    model.refresh_from_db()
    assert model.endpoint_offline_since is None and model.endpoint_last_error == ""


# --- the demo backend --------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the demo backend must not use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_a_demo_answer_is_reproducible_from_its_seed_non_empty_and_streamed_word_by_word(no_network):
    pieces = list(DemoClient("open-lab-7b-chat", chunk_delay=0, seed=7).stream(HELLO))
    assert len(pieces) > 5 and all(pieces)
    assert "".join(pieces) == demo_answer("open-lab-7b-chat", HELLO, seed=7)
    assert list(DemoClient("open-lab-7b-chat", chunk_delay=0, seed=7).stream(HELLO)) == pieces


def test_demo_models_answer_differently(no_network):
    names = ["open-lab-7b-chat", "open-lab-13b-chat", "open-lab-70b-preview", "acme-gpt-large", "acme-gpt-mini"]
    answers = {name: demo_answer(name, HELLO, seed=1) for name in names}
    assert len(set(answers.values())) == len(names)
    assert any(marker in text for text in answers.values() for marker in ("**", "\n- ", "###", "```"))
    another = [{"role": "user", "content": "Another question"}]
    assert demo_answer(names[0], HELLO, seed=1) != demo_answer(names[0], another, seed=1)


def test_a_replayed_prompt_does_not_name_the_demo_models_before_the_vote(provider_a, settings, no_network):
    """Someone asks one prompt 60 times and learns, from the names revealed after voting in the
    first 20 battles, which answer came from which model; then tries to name both models of the
    next 40 battles before voting. With answers fixed per prompt this named both in 40 of 40."""
    settings.ARENA_DEMO_CHUNK_DELAY = 0
    first, second = (make_model(provider_a, ArenaModel.Status.LISTED, is_demo=True) for _ in range(2))

    def battle() -> tuple[str, str]:
        return "".join(stream_answer(first, HELLO)), "".join(stream_answer(second, HELLO))

    learned = {}
    for _ in range(20):
        answer_a, answer_b = battle()
        learned[answer_a], learned[answer_b] = first.name, second.name
    later = [battle() for _ in range(40)]
    named = sum(learned.get(a) == first.name and learned.get(b) == second.name for a, b in later)

    assert named <= 3
    assert len({a for a, _ in later}) >= 35 and len({b for _, b in later}) >= 35


def test_a_demo_answer_waits_between_words_as_configured(settings, no_network):
    settings.ARENA_DEMO_CHUNK_DELAY = 0.01
    started = time.monotonic()
    pieces = list(DemoClient("acme-gpt-mini").stream(HELLO))
    assert time.monotonic() - started >= (len(pieces) - 1) * 0.01


def test_a_demo_model_answers_through_the_battle_entry_point(provider_a, settings, no_network, monkeypatch):
    settings.ARENA_DEMO_CHUNK_DELAY = 0
    monkeypatch.setattr(clients.demo, "demo_seed", lambda: 42)
    model = make_model(provider_a, ArenaModel.Status.LISTED, is_demo=True)
    assert "".join(stream_answer(model, HELLO)) == demo_answer(model.name, HELLO, seed=42)


def test_every_failure_kind_has_a_message_for_the_voter():
    for kind in FailureKind:
        assert ModelCallFailed(kind, "detail").user_message
    assert clients.ModelCallFailed("cut", "x").kind == FailureKind.CUT

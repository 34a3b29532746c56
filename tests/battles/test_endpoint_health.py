"""A model's failure for one request is not a failure of its endpoint: a 400 (a conversation
past the context window, say) fails that battle only, a 429 backs off and is counted, and
neither marks the endpoint offline. Against the suite's chat-completions server on loopback."""

from __future__ import annotations

import logging
import time

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from arenasite import clock
from battles.arena_pool import sampleable_models
from battles.clients import FailureKind, ModelCallFailed, stream_answer
from battles.models import EndpointUsage
from providers.models import ArenaModel
from tests.support.openai_server import Mode, OpenAIServer, Script

from ..conftest import make_model
from ..factories import ProviderFactory
from .test_clients import HELLO, KEY, client, failure

CONTEXT_WINDOW = (
    '{"error": {"message": "This model\'s maximum context length is 8192 tokens. However, your messages '
    'resulted in 9001 tokens.", "type": "invalid_request_error", "code": "context_length_exceeded"}}'
)


@pytest.fixture
def server():
    with OpenAIServer() as running:
        yield running


def endpoint_model(provider, server, model_id):
    return make_model(
        provider,
        ArenaModel.Status.LISTED,
        endpoint_base_url=server.base_url,
        endpoint_model_id=model_id,
        endpoint_api_key=KEY,
    )


# --- the client says which failures are the endpoint's ---------------------------------------


@pytest.mark.parametrize("status", [400, 413, 422])
def test_a_refused_request_is_not_retried_and_does_not_count_against_the_endpoint(server, status):
    server.script("small", Script(mode=Mode.ERROR, status=status, error_body=CONTEXT_WINDOW))
    error, _ = failure(client(server, "small").stream(HELLO))
    assert error.kind == FailureKind.REFUSED and not error.counts_against_endpoint
    assert f"HTTP {status}" in error.detail and "maximum context length" in error.detail
    assert "too long" in error.user_message
    assert len(server.requests_for("small")) == 1


@pytest.mark.parametrize("status", [401, 403, 404, 500])
def test_a_wrong_key_a_missing_model_or_a_server_error_still_counts(server, status):
    server.script("broken", Script(mode=Mode.ERROR, status=status))
    error, _ = failure(client(server, "broken", retries=0).stream(HELLO))
    assert error.kind == FailureKind.HTTP and error.counts_against_endpoint


def test_a_429_backs_off_then_fails_as_rate_limited_without_counting_against_the_endpoint(server):
    server.script("busy", Script(mode=Mode.ERROR, status=429, retry_after="0.3"))
    started = time.monotonic()
    error, _ = failure(client(server, "busy", retries=1).stream(HELLO))
    assert time.monotonic() - started >= 0.3  # waited as Retry-After asked before trying again
    assert error.kind == FailureKind.RATE_LIMITED and not error.counts_against_endpoint
    assert "after 2 attempts" in error.detail
    assert len(server.requests_for("busy")) == 2


# --- the health record ---------------------------------------------------------------------


@pytest.fixture
def battle_limits(settings):
    settings.ARENA_MODEL_FIRST_TOKEN_TIMEOUT = 2.0
    settings.ARENA_MODEL_RETRIES = 0


@pytest.mark.django_db
def test_a_400_leaves_the_endpoint_healthy_and_in_the_pool(provider_a, server, battle_limits):
    model = endpoint_model(provider_a, server, "small")
    server.script("small", Script(mode=Mode.ERROR, status=400, error_body=CONTEXT_WINDOW))
    with pytest.raises(ModelCallFailed):
        "".join(stream_answer(model, HELLO))
    model.refresh_from_db()
    assert model.endpoint_offline_since is None and model.endpoint_last_error == ""
    assert model in sampleable_models()
    assert model not in ArenaModel.objects.offline_in_listing_window(clock.now())


@pytest.mark.django_db
def test_a_429_is_reported_but_is_not_a_health_failure(provider_a, server, battle_limits, caplog):
    model = endpoint_model(provider_a, server, "busy")
    server.script("busy", Script(mode=Mode.ERROR, status=429))
    with caplog.at_level(logging.WARNING, logger="battles.clients.health"), pytest.raises(ModelCallFailed):
        "".join(stream_answer(model, HELLO))
    model.refresh_from_db()
    assert model.endpoint_offline_since is None and model.endpoint_last_error == ""
    assert any("rate_limited" in record.getMessage() and model.name in record.getMessage() for record in caplog.records)


@pytest.mark.django_db
def test_a_400_does_not_clear_an_earlier_real_failure_either(provider_a, server, battle_limits):
    """A refusal says nothing about the endpoint either way: an offline record stays."""
    model = endpoint_model(provider_a, server, "small")
    server.script("small", Script(mode=Mode.HANG_BEFORE_FIRST_BYTE, hang_seconds=5))
    with override_settings(ARENA_MODEL_FIRST_TOKEN_TIMEOUT=0.3), pytest.raises(ModelCallFailed):
        "".join(stream_answer(model, HELLO))
    server.script("small", Script(mode=Mode.ERROR, status=400, error_body=CONTEXT_WINDOW))
    with pytest.raises(ModelCallFailed):
        "".join(stream_answer(model, HELLO))
    model.refresh_from_db()
    assert model.endpoint_offline_since is not None and "timeout" in model.endpoint_last_error


# --- in a battle ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "status, kind, message",
    [(400, "refused", "could not take this conversation"), (429, "rate_limited", "too many requests")],
)
def test_a_battle_against_a_refusing_endpoint_fails_alone_and_the_call_is_counted(status, kind, message):
    from .test_arena_api import FAST, play

    provider = ProviderFactory(name="Northwind Research", slug="northwind")
    with OpenAIServer() as server, override_settings(**FAST):
        server.script("small", Script(mode=Mode.ERROR, status=status, error_body=CONTEXT_WINDOW))
        make_model(provider, ArenaModel.Status.LISTED, name="steady", is_demo=True)
        refusing = endpoint_model(provider, server, "small")
        body = play(APIClient())
    assert body["status"] == "failed" and message in body["error"]
    refusing.refresh_from_db()
    assert refusing.endpoint_offline_since is None and refusing.endpoint_last_error == ""
    assert refusing in sampleable_models()
    usage = EndpointUsage.objects.get(model=refusing)
    assert (usage.requests, usage.refused, usage.rate_limited) == (1, int(kind == "refused"), int(kind != "refused"))

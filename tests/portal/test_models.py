"""A provider's models in the portal: register, edit, test the endpoint, submit, withdraw,
ask for a heads-up or retirement, and read the history and the private rating."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from arenasite import clock
from leaderboard.models import ModelRating, RatingRun
from portal import services
from providers.models import ArenaModel, LifecycleEvent
from tests.support.openai_server import Mode, OpenAIServer, Script

from ..conftest import make_model

pytestmark = pytest.mark.django_db
S = ArenaModel.Status
BASE = "/portal/providers/provider-a"


@pytest.fixture
def client_a_web(member_a) -> Client:
    client = Client()
    client.force_login(member_a)
    return client


def registration(**overrides) -> dict:
    return {
        "name": "aurora-7b",
        "access_kind": "open_weights",
        "licence": "Apache-2.0",
        "description": "A small model.",
        "knowledge_cutoff": "2026-03-01",
        "endpoint_base_url": "https://api.a.example/v1",
        "endpoint_model_id": "aurora-7b-chat",
        "endpoint_api_key": "sk-secret-key",
        **overrides,
    }


def page(model: ArenaModel, suffix: str = "") -> str:
    return f"{BASE}/models/{model.pk}/{suffix}"


# --- register and edit -----------------------------------------------------------------------


def test_a_member_registers_a_draft_with_an_encrypted_key(client_a_web, provider_a):
    response = client_a_web.post(f"{BASE}/models/new/", registration())
    model = ArenaModel.objects.get(name="aurora-7b")
    assert response.status_code == 302 and response["Location"] == page(model)
    assert (model.provider, model.status, model.endpoint_api_key) == (provider_a, S.DRAFT, "sk-secret-key")
    assert str(model.knowledge_cutoff) == "2026-03-01"
    detail = client_a_web.get(page(model)).content.decode()
    assert model.codename in detail and "stored (hidden)" in detail
    assert "sk-secret-key" not in detail
    assert "sk-secret-key" not in client_a_web.get(page(model, "edit/")).content.decode()


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"name": ""}, "name", "This field is required."),
        ({"access_kind": "closed"}, "access_kind", "Select a valid choice."),
        ({"endpoint_base_url": "ftp://files.a.example/v1"}, "endpoint_base_url", "http:// or https://"),
        ({"endpoint_base_url": "not a url"}, "endpoint_base_url", "Enter a valid URL."),
        ({"knowledge_cutoff": "yesterday"}, "knowledge_cutoff", "Enter a valid date."),
        ({"name": "x" * 101}, "name", "at most 100 characters"),
    ],
)
def test_bad_registrations_show_the_error_and_save_nothing(client_a_web, overrides, field, message):
    response = client_a_web.post(f"{BASE}/models/new/", registration(**overrides))
    assert response.status_code == 400
    assert any(message in error for error in response.context["form"].errors[field])
    assert not ArenaModel.objects.exists()


def test_a_taken_name_is_refused_by_the_apis_rule(client_a_web, provider_b):
    make_model(provider_b, S.LISTED, name="aurora-7b")
    response = client_a_web.post(f"{BASE}/models/new/", registration())
    assert response.status_code == 400
    assert "already named" in response.context["form"].errors["name"][0]
    assert ArenaModel.objects.filter(name="aurora-7b").count() == 1


def test_editing_keeps_the_stored_key_when_left_empty_and_removes_it_when_asked(client_a_web, provider_a):
    model = make_model(provider_a, S.DRAFT, name="keyed", endpoint_api_key="sk-old")
    data = registration(name="keyed", endpoint_api_key="", licence="MIT")
    assert client_a_web.post(page(model, "edit/"), data).status_code == 302
    model.refresh_from_db()
    assert (model.endpoint_api_key, model.licence) == ("sk-old", "MIT")
    client_a_web.post(page(model, "edit/"), {**data, "clear_endpoint_api_key": "on"})
    model.refresh_from_db()
    assert model.endpoint_api_key == ""


def test_the_name_is_fixed_once_the_model_left_draft(client_a_web, provider_a):
    model = make_model(provider_a, S.SUBMITTED, name="fixed-name")
    response = client_a_web.post(page(model, "edit/"), registration(name="another-name", licence="MIT"))
    assert response.status_code == 302
    model.refresh_from_db()
    assert (model.name, model.licence) == ("fixed-name", "MIT")  # the disabled field is ignored


@pytest.mark.parametrize("status", [S.RETIRED, S.REJECTED, S.WITHDRAWN])
def test_a_model_that_left_the_arena_cannot_be_edited(client_a_web, provider_a, status):
    model = make_model(provider_a, status, name="gone")
    response = client_a_web.post(page(model, "edit/"), registration(name="gone", licence="changed"))
    assert response.status_code == 409
    assert "cannot be edited" in str(response.context["form"].non_field_errors())
    model.refresh_from_db()
    assert model.licence == "Apache-2.0"
    assert b"Edit</a>" not in client_a_web.get(page(model)).content


# --- transitions -----------------------------------------------------------------------------


def test_submitting_moves_the_draft_and_logs_who(client_a_web, member_a, provider_a):
    model = make_model(provider_a, S.DRAFT, name="ready")
    response = client_a_web.post(page(model, "submit/"), {"reason": ""})
    assert response.status_code == 302
    model.refresh_from_db()
    assert model.status == S.SUBMITTED
    event = model.events.get()
    assert (event.action, event.actor) == ("submit", member_a)
    history = client_a_web.get(page(model)).content.decode()
    assert "Waiting for the arena&#x27;s staff" in history and "alice@a.example" in history


def test_a_withdrawal_without_a_reason_is_refused_and_changes_nothing(client_a_web, provider_a):
    model = make_model(provider_a, S.INITIAL_RATING, name="testing")
    events = LifecycleEvent.objects.count()
    response = client_a_web.post(page(model, "withdraw/"), {"reason": "  "})
    assert response.status_code == 409
    assert "needs a reason" in response.content.decode()
    assert ArenaModel.objects.get(pk=model.pk).status == S.INITIAL_RATING
    assert LifecycleEvent.objects.count() == events


def test_a_reason_over_the_limit_is_bad_input(client_a_web, provider_a):
    model = make_model(provider_a, S.INITIAL_RATING, name="testing")
    response = client_a_web.post(page(model, "withdraw/"), {"reason": "x" * 2001})
    assert response.status_code == 400
    assert ArenaModel.objects.get(pk=model.pk).status == S.INITIAL_RATING


def test_an_action_from_the_wrong_state_shows_the_rule(client_a_web, provider_a):
    model = make_model(provider_a, S.LISTED, name="on-board")
    response = client_a_web.post(page(model, "withdraw/"), {"reason": "changed our mind"})
    assert response.status_code == 409
    assert "cannot be withdrawn, only retired" in response.content.decode()
    assert ArenaModel.objects.get(pk=model.pk).status == S.LISTED


def test_a_retirement_asked_for_inside_the_listing_window_is_scheduled(client_a_web, provider_a):
    model = make_model(provider_a, S.LISTED, name="new-on-board")
    response = client_a_web.post(page(model, "request-retirement/"), {"reason": "superseded"})
    assert response.status_code == 302
    model.refresh_from_db()
    assert model.status == S.LISTED and model.retire_after == model.listing_window_ends_at
    assert "Retirement scheduled for" in client_a_web.get(page(model)).content.decode()


def test_the_heads_up_is_asked_for_and_cancelled(client_a_web, provider_a):
    model = make_model(provider_a, S.INITIAL_RATING, name="shy")
    client_a_web.post(page(model, "heads-up/"), {"heads_up_requested": "on"})
    assert ArenaModel.objects.get(pk=model.pk).heads_up_requested
    assert b"Cancel the heads-up request" in client_a_web.get(page(model)).content
    client_a_web.post(page(model, "heads-up/"), {})
    assert not ArenaModel.objects.get(pk=model.pk).heads_up_requested


def test_the_dashboard_lists_the_models_with_their_next_step(client_a_web, provider_a, provider_b):
    make_model(provider_a, S.DRAFT, name="a-draft")
    make_model(provider_a, S.INITIAL_RATING, name="a-testing", votes=12)
    make_model(provider_b, S.DRAFT, name="b-draft")
    html = client_a_web.get(f"{BASE}/").content.decode()
    assert "a-draft" in html and "Add the endpoint" in html
    assert "a-testing" in html and "12 of the 1000 counted votes" in html
    assert "b-draft" not in html


# --- the private rating ----------------------------------------------------------------------


def publish_rating(model: ArenaModel, rating: float) -> RatingRun:
    now = clock.now()
    run = RatingRun.objects.create(state=RatingRun.State.PUBLISHED, cutoff=now, published_at=now)
    ModelRating.objects.create(
        run=run, category="overall", arena_model=model, model_status=model.status, rating=rating,
        ci_lower=rating - 9, ci_upper=rating + 9, sandwich_lower=0, sandwich_upper=0, rank=1, votes=321,
    )  # fmt: skip
    return run


def test_the_private_rating_of_a_model_in_initial_rating_is_shown_to_its_members(client_a_web, provider_a, member_b):
    model = make_model(provider_a, S.INITIAL_RATING, name="blind")
    publish_rating(model, 1234.5)
    html = client_a_web.get(page(model)).content.decode()
    assert "1234.5" in html and "Private" in html and "321" in html
    other = Client()
    other.force_login(member_b)
    assert other.get(page(model)).status_code == 404


def test_without_a_run_the_page_says_the_rating_comes_later(client_a_web, provider_a):
    model = make_model(provider_a, S.INITIAL_RATING, name="blind")
    assert "No rating yet: the first rating run" in client_a_web.get(page(model)).content.decode()


# --- the test call ---------------------------------------------------------------------------


@pytest.fixture
def server():
    with OpenAIServer() as running:
        yield running


def test_the_test_call_shows_the_endpoints_answer_and_records_no_health(client_a_web, provider_a, server):
    model = make_model(
        provider_a, S.DRAFT, name="live", endpoint_base_url=server.base_url, endpoint_model_id="live-1",
        endpoint_api_key="sk-live",
    )  # fmt: skip
    response = client_a_web.post(page(model, "test/"))
    assert response.status_code == 302 and response["Location"].endswith("#test")
    html = client_a_web.get(page(model)).content.decode()
    assert f"Loopback answer to: {services.TEST_PROMPT}" in html
    (request,) = server.requests_for("live-1")
    assert request.headers["authorization"] == "Bearer sk-live"
    model.refresh_from_db()
    assert model.endpoint_last_checked_at is None  # the scheduled checks keep the health record
    # Shown once: a reload no longer carries it.
    assert "Loopback answer" not in client_a_web.get(page(model)).content.decode()


def test_the_endpoints_answer_is_shown_as_text_not_markup(client_a_web, provider_a, server):
    server.script("sly", Script(mode=Mode.JSON, text='<script src="/x.js"></script><b>hi</b>'))
    model = make_model(provider_a, S.DRAFT, name="sly", endpoint_base_url=server.base_url, endpoint_model_id="sly")
    client_a_web.post(page(model, "test/"))
    html = client_a_web.get(page(model)).content.decode()
    assert "&lt;script src=&quot;/x.js&quot;&gt;&lt;/script&gt;&lt;b&gt;hi&lt;/b&gt;" in html
    assert '<script src="/x.js">' not in html


def test_a_failing_endpoint_shows_a_clear_error_after_one_call(client_a_web, provider_a, server):
    server.script("down", Script(mode=Mode.ERROR, status=503))
    model = make_model(
        provider_a, S.DRAFT, name="down", endpoint_base_url=server.base_url, endpoint_model_id="down",
        endpoint_api_key="sk-down",
    )  # fmt: skip
    client_a_web.post(page(model, "test/"))
    html = client_a_web.get(page(model)).content.decode()
    assert "The test call failed: The model&#x27;s server answered with an error. HTTP 503" in html
    assert len(server.requests_for("down")) == 1  # no retry
    assert "sk-down" not in html


def test_a_model_without_an_endpoint_is_told_to_add_one(client_a_web, provider_a):
    model = make_model(provider_a, S.DRAFT, name="bare")
    client_a_web.post(page(model, "test/"))
    assert "has no endpoint yet" in client_a_web.get(page(model)).content.decode()


def test_a_demo_model_answers_from_the_demo_backend(client_a_web, provider_a):
    model = make_model(provider_a, S.DRAFT, name="demo", is_demo=True)
    client_a_web.post(page(model, "test/"))
    assert "The endpoint answered" in client_a_web.get(page(model)).content.decode()


def test_test_calls_are_limited_per_minute(client_a_web, provider_a):
    model = make_model(provider_a, S.DRAFT, name="demo", is_demo=True)
    for _ in range(services.TEST_CALLS_PER_MINUTE):
        assert client_a_web.post(page(model, "test/")).status_code == 302
    response = client_a_web.post(page(model, "test/"))
    assert response.status_code == 429
    assert "test calls a minute" in response.content.decode()


def test_an_initial_rating_model_may_be_withdrawn_with_a_reason(client_a_web, provider_a):
    model = make_model(provider_a, S.INITIAL_RATING, name="pulled")
    assert client_a_web.post(page(model, "withdraw/"), {"reason": "not ready"}).status_code == 302
    model.refresh_from_db()
    assert model.status == S.WITHDRAWN and model.events.last().reason == "not ready"


def test_the_dashboard_reads_a_fixed_number_of_queries_however_many_models(client_a_web, provider_a):
    make_model(provider_a, S.DRAFT, name="first")
    with CaptureQueriesContext(connection) as few:
        client_a_web.get(f"{BASE}/")
    for i in range(5):
        make_model(provider_a, S.SUBMITTED, name=f"more-{i}")
    with CaptureQueriesContext(connection) as many:
        assert b"more-4" in client_a_web.get(f"{BASE}/").content
    assert len(many) == len(few)

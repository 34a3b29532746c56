"""What admin tells staff about lifecycle decisions: the confirmation page says what will happen
to each selected model (done, scheduled and for when, or refused and why), asking again for a
scheduled retirement says it is scheduled, and a retirement staff request is shown publicly
as staff's decision, not the provider's."""

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages

from arenasite import clock
from providers.lifecycle import Action, transition
from providers.models import ArenaModel, LifecycleEvent, RetirementRule

from ..conftest import make_model
from .test_admin import CHANGELIST, grant_admin_permissions  # noqa: F401

pytestmark = pytest.mark.django_db
S = ArenaModel.Status


@pytest.fixture
def staff_admin(client, staff):
    client.force_login(grant_admin_permissions(staff))
    return client


def _past_window(model):
    ArenaModel.objects.filter(pk=model.pk).update(listed_at=clock.now() - timedelta(days=30))
    model.refresh_from_db()
    return model


def test_the_confirmation_page_says_what_will_happen_to_each_model(staff_admin, provider_a, staff):
    young = make_model(provider_a, S.LISTED, staff=staff, name="young-model")
    old = _past_window(make_model(provider_a, S.LISTED, staff=staff, name="old-model"))
    submitted = make_model(provider_a, S.SUBMITTED, staff=staff, name="waiting-model")
    page = staff_admin.post(
        "/admin/providers/arenamodel/", {"action": "retire", "_selected_action": [young.pk, old.pk, submitted.pk]}
    ).content.decode()
    window_end = young.listing_window_ends_at
    assert f"Scheduled for {window_end:%Y-%m-%d %H:%M} UTC, not done now." in page
    assert "Done now: retired." in page
    assert "Refused (invalid_state): &#x27;retire&#x27; applies to a model that is listed" in page
    assert "scheduled to retire when the window ends" not in page  # no general rules instead
    for model in (young, old, submitted):
        model.refresh_from_db()
    assert (young.status, young.retire_after, old.status) == (S.LISTED, None, S.LISTED)  # the page changed nothing
    assert not LifecycleEvent.objects.filter(arena_model__in=[young, old], to_status=S.RETIRED).exists()


def test_retiring_a_model_whose_retirement_is_scheduled_says_so(staff_admin, provider_a, staff):
    model = make_model(provider_a, S.LISTED, staff=staff, name="leaving-model")
    transition(model_id=model.pk, action=Action.RETIRE, actor=staff, reason="Licence ends.")
    model.refresh_from_db()
    confirm = staff_admin.post(
        "/admin/providers/arenamodel/", {"action": "retire", "_selected_action": [model.pk]}
    ).content.decode()
    assert f"Nothing to do, its retirement is already scheduled for {model.retire_after:%Y-%m-%d %H:%M} UTC" in confirm
    response = staff_admin.post(
        "/admin/providers/arenamodel/",
        {"action": "retire", "_selected_action": [model.pk], "confirm": "yes", "reason": "Again.", "rule": ""},
    )
    said = [str(m) for m in get_messages(response.wsgi_request)]
    assert said == [
        f"leaving-model: nothing to do, its retirement is already scheduled for {model.retire_after:%Y-%m-%d %H:%M} UTC"
    ]
    assert "already listed" not in said[0]


def test_a_retirement_requested_by_staff_is_shown_as_staff_decision(staff_admin, client, provider_a, staff):
    model = _past_window(make_model(provider_a, S.LISTED, staff=staff, name="asked-off-model"))
    staff_admin.post(
        "/admin/providers/arenamodel/",
        {"action": "request_retirement", "_selected_action": [model.pk], "confirm": "yes", "reason": "Asked by mail."},
    )
    event = model.events.get(to_status=S.RETIRED, kind=LifecycleEvent.Kind.DONE)
    assert event.rule == RetirementRule.STAFF_DECISION and event.actor == staff
    registry = client.get("/models/").content.decode()
    assert "asked-off-model" in registry
    assert RetirementRule.STAFF_DECISION.label.split(" (")[0] in registry
    assert "Requested by the provider" not in registry


def test_a_retirement_requested_by_the_provider_still_names_the_provider(client, provider_a, member_a, staff):
    model = _past_window(make_model(provider_a, S.LISTED, staff=staff, name="own-choice-model"))
    transition(model_id=model.pk, action=Action.REQUEST_RETIREMENT, actor=member_a, reason="Superseded.")
    assert model.events.get(to_status=S.RETIRED, kind=LifecycleEvent.Kind.DONE).rule == RetirementRule.PROVIDER_REQUEST
    assert "Requested by the provider" in client.get("/models/").content.decode()


def test_help_texts_give_the_values_in_force(staff_admin, provider_a, staff, settings):
    settings.ARENA_NEW_MODEL_BOOST = 4.0
    settings.ARENA_NEW_MODEL_BOOST_VOTES = 2500
    settings.ARENA_BATTLE_TARGET_SHARE = 0.25
    settings.ARENA_RETRACTION_DELAY_DAYS = 21
    model = make_model(provider_a, S.SUBMITTED, staff=staff)
    page = staff_admin.get(f"/admin/providers/arenamodel/{model.pk}/change/").content.decode()
    assert "drawn 4 times as often as this weight says until it has 2500 counted votes" in page
    assert "25% of the time" in page
    assert "become public 21 days later" in page


def test_a_local_endpoint_refusal_names_the_development_setting_only_in_debug(settings):
    from providers.endpoints import endpoint_refusal

    settings.ARENA_ALLOW_PRIVATE_ENDPOINTS = False
    settings.DEBUG = True
    for url in ("http://localhost:8000/v1", "http://127.0.0.1:8000/v1"):
        assert "ARENA_ALLOW_PRIVATE_ENDPOINTS=1 allows endpoints on this machine" in endpoint_refusal(url)
    settings.DEBUG = False
    assert "ARENA_ALLOW_PRIVATE_ENDPOINTS" not in endpoint_refusal("http://127.0.0.1:8000/v1")
    settings.ARENA_ALLOW_PRIVATE_ENDPOINTS = True
    assert endpoint_refusal("http://127.0.0.1:8000/v1") is None

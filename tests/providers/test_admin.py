"""The staff admin: the admission queue, lifecycle actions with a reason, the read-only log,
the hidden endpoint key, bounded queries, and the other changelists staff rely on."""

import re
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from arenasite import clock
from providers.lifecycle import Action
from providers.models import ApiToken, ArenaModel, LifecycleEvent

from ..conftest import make_model
from ..factories import ProviderFactory

pytestmark = pytest.mark.django_db
S = ArenaModel.Status

CHANGELIST = "admin:providers_arenamodel_changelist"
CONFIRM_TEMPLATE = "admin/providers/arenamodel/transition_confirm.html"


def grant_admin_permissions(user):
    """Every model permission of the apps the admin shows, except moving models through their lifecycle.

    The staff fixtures only carry is_staff (and the transition permission); Django's admin also
    wants the usual view/add/change/delete permissions. The lifecycle log's add/change/delete
    permissions are granted on purpose: the admin must refuse those even so.
    """
    perms = Permission.objects.filter(content_type__app_label__in=["providers", "django_celery_beat", "auth"]).exclude(
        codename="transition_arenamodel"
    )
    user.user_permissions.add(*perms)
    return user


# Named apart from pytest-django's admin_client, which logs in a superuser.
@pytest.fixture
def staff_admin(client, staff):
    client.force_login(grant_admin_permissions(staff))
    return client


@pytest.fixture
def intern_admin(client, staff_without_permission):
    client.force_login(grant_admin_permissions(staff_without_permission))
    return client


def changelist_url(**params) -> str:
    url = reverse(CHANGELIST)
    return f"{url}?{urlencode(params)}" if params else url


def change_url(model) -> str:
    return reverse("admin:providers_arenamodel_change", args=[model.pk])


def transition_url(model, action) -> str:
    return reverse("admin:providers_arenamodel_transition", args=[model.pk, action])


def action_name(action: Action) -> str:
    return action.value.replace("-", "_")


def run_action(client, action: Action, models, **confirm):
    """POST a changelist action for `models` as the action bar does, or with `confirm` as the confirmation page does."""
    data = {"action": action_name(action), "_selected_action": [m.pk for m in models]}
    data.update(confirm or {"index": 0})
    return client.post(changelist_url(), data)


def confirm_action(client, action: Action, models, reason=""):
    return run_action(client, action, models, confirm="yes", reason=reason)


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def action_choices(response) -> set[str]:
    """The changelist's actions; the admin leaves out the action form when there are none."""
    form = response.context["action_form"]
    return set() if form is None else {name for name, _ in form.fields["action"].choices if name}


def template_names(response) -> list[str]:
    return [template.name for template in response.templates]


def listed_names(response) -> list[str]:
    return [model.name for model in response.context["cl"].result_list]


def status_of(model) -> str:
    model.refresh_from_db()
    return model.status


# -- the admission queue ---------------------------------------------------------------


def test_it_lists_submitted_models_first(staff_admin, provider_a):
    make_model(provider_a, name="a-draft")
    make_model(provider_a, S.LISTED, name="b-listed")
    make_model(provider_a, S.INITIAL_RATING, name="c-rating")
    make_model(provider_a, S.SUBMITTED, name="d-submitted")
    make_model(provider_a, S.SUBMITTED, name="e-submitted")

    response = staff_admin.get(changelist_url())

    assert response.status_code == 200
    names = listed_names(response)
    assert set(names[:2]) == {"d-submitted", "e-submitted"}
    assert names[2:] == ["c-rating", "b-listed", "a-draft"]


@pytest.fixture
def assorted(provider_a):
    """Models that differ in status, provider, access kind and endpoint health."""
    now = clock.now()
    other = ProviderFactory(name="Other Labs", slug="other-labs")
    models = {
        "submitted": make_model(provider_a, S.SUBMITTED, name="queued-one"),
        "private": make_model(other, S.DRAFT, name="secret-one", access_kind=ArenaModel.AccessKind.PRIVATE),
        "online": make_model(provider_a, S.LISTED, name="healthy-one"),
        "offline": make_model(other, S.INITIAL_RATING, name="flaky-one"),
        "candidate": make_model(provider_a, S.LISTED, name="gone-one"),
    }
    ArenaModel.objects.filter(pk=models["online"].pk).update(endpoint_last_ok_at=now)
    ArenaModel.objects.filter(pk=models["offline"].pk).update(
        endpoint_offline_since=now - timedelta(days=2), endpoint_last_error="HTTP 503"
    )
    ArenaModel.objects.filter(pk=models["candidate"].pk).update(
        endpoint_offline_since=now - timedelta(days=9), retirement_candidate_since=now - timedelta(days=1)
    )
    return models


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status__exact": "submitted"}, {"queued-one"}),
        ({"status__exact": "listed"}, {"healthy-one", "gone-one"}),
        ({"access_kind__exact": "private"}, {"secret-one"}),
        ({"health": "ok"}, {"healthy-one"}),
        ({"health": "offline"}, {"flaky-one", "gone-one"}),
        ({"health": "candidate"}, {"gone-one"}),
        ({"health": "alert"}, {"gone-one"}),
    ],
)
def test_it_filters_the_queue(staff_admin, assorted, params, expected):
    response = staff_admin.get(changelist_url(**params))

    assert response.status_code == 200
    assert set(listed_names(response)) == expected


def test_it_filters_the_queue_by_provider(staff_admin, assorted):
    other = assorted["private"].provider

    response = staff_admin.get(changelist_url(provider__id__exact=other.pk))

    assert set(listed_names(response)) == {"secret-one", "flaky-one"}


def test_it_searches_by_name_codename_and_provider(staff_admin, assorted):
    codename = assorted["online"].codename

    by_name = staff_admin.get(changelist_url(q="queued"))
    by_codename = staff_admin.get(changelist_url(q=codename))
    by_provider = staff_admin.get(changelist_url(q="Other Labs"))

    assert listed_names(by_name) == ["queued-one"]
    assert listed_names(by_codename) == ["healthy-one"]
    assert set(listed_names(by_provider)) == {"secret-one", "flaky-one"}


def test_it_shows_endpoint_health_in_the_queue(staff_admin, assorted):
    response = staff_admin.get(changelist_url())

    html = response.content.decode()
    assert "retirement candidate" in html
    assert "offline since" in html
    assert "online" in html


# -- the lifecycle log -------------------------------------------------------------------


def test_it_shows_the_lifecycle_log_inline_and_read_only(staff_admin, provider_a, staff):
    model = make_model(provider_a, S.INITIAL_RATING, staff=staff)

    response = staff_admin.get(change_url(model))

    assert response.status_code == 200
    [inline] = [f for f in response.context["inline_admin_formsets"] if f.opts.model is LifecycleEvent]
    assert len(inline.formset.forms) == 2  # submitted, then admitted
    assert not inline.has_add_permission
    assert not inline.has_change_permission
    assert not inline.has_delete_permission
    html = response.content.decode()
    assert "set-up" in html  # the reason on record
    assert 'name="events-0-reason"' not in html


def test_it_shows_the_log_to_staff_who_may_see_the_model(client, provider_a, staff_without_permission):
    model = make_model(provider_a, S.SUBMITTED)
    staff_without_permission.user_permissions.add(Permission.objects.get(codename="view_arenamodel"))
    client.force_login(staff_without_permission)

    response = client.get(change_url(model))

    assert response.status_code == 200
    [inline] = [f for f in response.context["inline_admin_formsets"] if f.opts.model is LifecycleEvent]
    assert len(inline.formset.forms) == 1


def test_it_refuses_to_add_change_or_delete_lifecycle_events(staff_admin, provider_a, staff):
    model = make_model(provider_a, S.SUBMITTED, staff=staff)
    event = model.events.get()
    before = list(LifecycleEvent.objects.values())

    add = staff_admin.post(
        reverse("admin:providers_lifecycleevent_add"),
        {
            "arena_model": model.pk,
            "action": "admit",
            "kind": "done",
            "from_status": "submitted",
            "to_status": "initial_rating",
            "reason": "forged",
            "effective_at_0": "2024-01-01",
            "effective_at_1": "00:00:00",
            "created_at_0": "2024-01-01",
            "created_at_1": "00:00:00",
        },
    )
    change = staff_admin.post(
        reverse("admin:providers_lifecycleevent_change", args=[event.pk]),
        {
            "arena_model": model.pk,
            "action": "submit",
            "kind": "done",
            "from_status": "draft",
            "to_status": "submitted",
            "reason": "rewritten",
        },
    )
    delete = staff_admin.post(reverse("admin:providers_lifecycleevent_delete", args=[event.pk]), {"post": "yes"})
    bulk_delete = staff_admin.post(
        reverse("admin:providers_lifecycleevent_changelist"),
        {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"},
    )

    for response in (add, change, delete):
        assert response.status_code in (302, 403)
        if response.status_code == 302:
            assert "/login/" in response.url
    assert bulk_delete.status_code in (200, 302)
    assert list(LifecycleEvent.objects.values()) == before


def test_it_shows_the_lifecycle_log_read_only(staff_admin, provider_a, staff):
    model = make_model(provider_a, S.SUBMITTED, staff=staff)

    changelist = staff_admin.get(reverse("admin:providers_lifecycleevent_changelist"))
    detail = staff_admin.get(reverse("admin:providers_lifecycleevent_change", args=[model.events.get().pk]))

    assert changelist.status_code == 200
    assert "delete_selected" not in action_choices(changelist)
    assert detail.status_code == 200
    assert not detail.context["has_change_permission"]
    assert 'name="_save"' not in detail.content.decode()


# -- lifecycle actions from the changelist --------------------------------------------------

TRANSITIONS = [
    (Action.SUBMIT, S.DRAFT, S.SUBMITTED),
    (Action.ADMIT, S.SUBMITTED, S.INITIAL_RATING),
    (Action.REJECT, S.SUBMITTED, S.REJECTED),
    (Action.PUBLISH, S.INITIAL_RATING, S.LISTED),
    (Action.WITHDRAW, S.INITIAL_RATING, S.WITHDRAWN),
    (Action.REQUEST_RETIREMENT, S.LISTED, S.RETIRED),
    (Action.RETIRE, S.LISTED, S.RETIRED),
]


def ready_for(provider, start: str, **fields) -> ArenaModel:
    """A model in `start` that any action from there moves at once (enough votes, past the listing window)."""
    model = make_model(provider, start, votes=1500, **fields)
    if start == S.LISTED:
        ArenaModel.objects.filter(pk=model.pk).update(listed_at=clock.now() - timedelta(days=30))
        model.refresh_from_db()
    return model


@pytest.mark.parametrize(("action", "start", "target"), TRANSITIONS)
def test_it_asks_for_a_reason_before_any_action(staff_admin, provider_a, action, start, target):
    model = ready_for(provider_a, start)
    events_before = model.events.count()

    response = run_action(staff_admin, action, [model])

    assert response.status_code == 200
    assert CONFIRM_TEMPLATE in template_names(response)
    html = response.content.decode()
    assert 'name="reason"' in html
    assert 'name="confirm" value="yes"' in html
    assert f'name="action" value="{action_name(action)}"' in html
    assert f'name="_selected_action" value="{model.pk}"' in html
    assert status_of(model) == start
    assert model.events.count() == events_before


@pytest.mark.parametrize(("action", "start", "target"), TRANSITIONS)
def test_it_applies_each_action_on_confirmation(staff_admin, staff, provider_a, action, start, target):
    model = ready_for(provider_a, start)

    response = confirm_action(staff_admin, action, [model], reason="Decided at the staff meeting.")

    assert response.status_code == 302
    assert status_of(model) == target
    event = model.events.last()
    assert (event.action, event.to_status, event.actor, event.reason) == (
        action,
        target,
        staff,
        "Decided at the staff meeting.",
    )
    assert any(model.name in message for message in messages_of(response))


@pytest.mark.parametrize("action", [Action.SUBMIT, Action.ADMIT, Action.PUBLISH])
def test_it_accepts_an_empty_reason_where_none_is_required(staff_admin, provider_a, action):
    _, start, target = next(t for t in TRANSITIONS if t[0] == action)
    model = ready_for(provider_a, start)

    response = confirm_action(staff_admin, action, [model])

    assert response.status_code == 302
    assert status_of(model) == target


@pytest.mark.parametrize(
    ("action", "start"),
    [
        (Action.REJECT, S.SUBMITTED),
        (Action.WITHDRAW, S.INITIAL_RATING),
        (Action.REQUEST_RETIREMENT, S.LISTED),
        (Action.RETIRE, S.LISTED),
    ],
)
def test_it_requires_a_reason_to_reject_withdraw_or_retire(staff_admin, provider_a, action, start):
    model = ready_for(provider_a, start)
    events_before = model.events.count()

    response = confirm_action(staff_admin, action, [model], reason="   ")

    assert response.status_code == 200
    assert CONFIRM_TEMPLATE in template_names(response)
    assert response.context["form"].errors["reason"]
    assert "This field is required." in response.content.decode()
    assert status_of(model) == start
    assert model.events.count() == events_before


def test_it_reports_a_refusal_per_model_and_moves_the_others(staff_admin, provider_a):
    private = make_model(provider_a, S.SUBMITTED, name="closed-one", access_kind=ArenaModel.AccessKind.PRIVATE)
    open_one = make_model(provider_a, S.SUBMITTED, name="open-one")
    draft = make_model(provider_a, name="early-one")

    response = confirm_action(staff_admin, Action.ADMIT, [private, open_one, draft])

    assert response.status_code == 302
    assert status_of(private) == S.SUBMITTED
    assert status_of(draft) == S.DRAFT
    assert status_of(open_one) == S.INITIAL_RATING
    assert not private.events.filter(action=Action.ADMIT).exists()
    messages = messages_of(response)
    assert any("closed-one" in m and "third_party_access" in m for m in messages)
    assert any("early-one" in m and "invalid_state" in m for m in messages)
    assert any("open-one" in m and "initial rating" in m for m in messages)


def test_it_refuses_to_publish_with_too_few_votes(staff_admin, provider_a):
    few = make_model(provider_a, S.INITIAL_RATING, votes=999, name="few-votes")
    enough = make_model(provider_a, S.INITIAL_RATING, votes=1000, name="enough-votes")

    response = confirm_action(staff_admin, Action.PUBLISH, [few, enough])

    assert status_of(few) == S.INITIAL_RATING
    assert few.listed_at is None
    assert status_of(enough) == S.LISTED
    assert any("few-votes" in m and "listing_min_votes" in m and "1000" in m for m in messages_of(response))


def test_it_schedules_a_retirement_inside_the_listing_window(staff_admin, provider_a):
    model = make_model(provider_a, S.LISTED)

    response = confirm_action(staff_admin, Action.RETIRE, [model], reason="Superseded.")

    assert status_of(model) == S.LISTED
    assert model.retire_after == model.listing_window_ends_at
    assert any("scheduled" in m for m in messages_of(response))


def test_it_hides_the_transition_actions_from_staff_without_the_permission(intern_admin, provider_a):
    model = make_model(provider_a, S.SUBMITTED)

    response = intern_admin.get(changelist_url())

    assert response.status_code == 200
    assert not action_choices(response) & {action_name(action) for action in Action}

    forced = confirm_action(intern_admin, Action.ADMIT, [model])
    assert forced.status_code in (200, 302)
    assert status_of(model) == S.SUBMITTED
    assert not model.events.filter(action=Action.ADMIT).exists()


def test_it_offers_every_transition_action_to_permitted_staff(staff_admin, provider_a):
    make_model(provider_a)

    response = staff_admin.get(changelist_url())

    choices = action_choices(response)
    assert {action_name(action) for action in Action} <= choices
    assert "delete_selected" not in choices


# -- buttons on the change page ------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (S.DRAFT, {Action.SUBMIT}),
        (S.SUBMITTED, {Action.ADMIT, Action.REJECT}),
        (S.INITIAL_RATING, {Action.PUBLISH, Action.WITHDRAW}),
        (S.LISTED, {Action.REQUEST_RETIREMENT, Action.RETIRE}),
        (S.RETIRED, set()),
        (S.REJECTED, set()),
    ],
)
def test_it_shows_buttons_for_the_transitions_valid_now(staff_admin, provider_a, status, expected):
    model = make_model(provider_a, status)

    response = staff_admin.get(change_url(model))

    assert response.status_code == 200
    html = response.content.decode()
    shown = {action for action in Action if f'href="{transition_url(model, action)}"' in html}
    assert shown == expected


def test_it_shows_no_buttons_to_staff_without_the_permission(intern_admin, provider_a):
    model = make_model(provider_a, S.SUBMITTED)

    response = intern_admin.get(change_url(model))

    assert response.status_code == 200
    assert "/transition/" not in response.content.decode()


def test_it_confirms_and_applies_a_button(staff_admin, staff, provider_a):
    model = make_model(provider_a, S.SUBMITTED)
    url = transition_url(model, Action.REJECT)

    page = staff_admin.get(url)
    missing_reason = staff_admin.post(url, {"confirm": "yes", "reason": ""})
    unchanged = status_of(model)
    applied = staff_admin.post(url, {"confirm": "yes", "reason": "Not an LLM."})

    assert page.status_code == 200
    assert CONFIRM_TEMPLATE in template_names(page)
    assert 'name="_selected_action"' not in page.content.decode()
    assert missing_reason.status_code == 200
    assert missing_reason.context["form"].errors["reason"]
    assert unchanged == S.SUBMITTED
    assert applied.status_code == 302
    assert applied.url == change_url(model)
    assert status_of(model) == S.REJECTED
    assert model.events.last().reason == "Not an LLM."
    assert model.events.last().actor == staff


def test_it_reports_a_refused_button(staff_admin, provider_a):
    model = make_model(provider_a, S.SUBMITTED, access_kind=ArenaModel.AccessKind.PRIVATE)

    response = staff_admin.post(transition_url(model, Action.ADMIT), {"confirm": "yes", "reason": ""})

    assert response.status_code == 302
    assert status_of(model) == S.SUBMITTED
    assert any("third_party_access" in m for m in messages_of(response))


def test_it_refuses_the_button_view_to_staff_without_the_permission(intern_admin, provider_a):
    model = make_model(provider_a, S.SUBMITTED)

    page = intern_admin.get(transition_url(model, Action.ADMIT))
    post = intern_admin.post(transition_url(model, Action.ADMIT), {"confirm": "yes", "reason": "sneaky"})

    assert page.status_code in (302, 403)
    assert post.status_code in (302, 403)
    assert status_of(model) == S.SUBMITTED
    assert not model.events.filter(action=Action.ADMIT).exists()


def test_it_refuses_the_button_view_to_staff_who_may_not_see_models(client, staff, provider_a):
    model = make_model(provider_a, S.SUBMITTED)
    client.force_login(staff)  # the transition permission alone, no view or change permission

    response = client.post(transition_url(model, Action.ADMIT), {"confirm": "yes", "reason": ""})

    assert response.status_code == 403
    assert status_of(model) == S.SUBMITTED


def test_it_leads_back_where_the_action_started(staff_admin, provider_a):
    model = make_model(provider_a, S.SUBMITTED)

    from_button = staff_admin.get(transition_url(model, Action.ADMIT))
    from_list = run_action(staff_admin, Action.ADMIT, [model])

    assert from_button.context["cancel_url"] == change_url(model)
    assert from_list.context["cancel_url"] == changelist_url()


def test_it_works_through_the_real_forms_with_csrf_checks(staff, provider_a):
    model = make_model(provider_a, S.SUBMITTED)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(grant_admin_permissions(staff))

    def csrf_token(response) -> str:
        return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.content.decode())[1]

    changelist = browser.get(changelist_url())
    confirm = browser.post(
        changelist_url(),
        {
            "csrfmiddlewaretoken": csrf_token(changelist),
            "action": "reject",
            "index": 0,
            "select_across": 0,
            "_selected_action": [model.pk],
        },
    )
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', confirm.content.decode()))
    applied = browser.post(changelist_url(), {**fields, "reason": "Out of scope."})

    assert confirm.status_code == 200
    assert fields["confirm"] == "yes"
    assert applied.status_code == 302
    assert status_of(model) == S.REJECTED


def test_it_rejects_an_unknown_button_action(staff_admin, provider_a):
    model = make_model(provider_a, S.SUBMITTED)

    response = staff_admin.post(transition_url(model, "promote"), {"confirm": "yes", "reason": "x"})

    assert response.status_code in (302, 404)
    assert status_of(model) == S.SUBMITTED


def test_it_answers_404_for_a_button_on_a_missing_model(staff_admin):
    response = staff_admin.get(reverse("admin:providers_arenamodel_transition", args=[999999, "admit"]))

    assert response.status_code == 404


# -- the endpoint API key ----------------------------------------------------------------

SECRET = "sk-live-do-not-leak-0123456789"


def change_form_data(model, **overrides) -> dict:
    """What the change form posts back, with the read-only lifecycle log's management form."""
    events = list(model.events.all())
    data = {
        "provider": model.provider_id,
        "name": model.name,
        "access_kind": model.access_kind,
        "licence": model.licence,
        "description": model.description,
        "knowledge_cutoff": "",
        "endpoint_base_url": model.endpoint_base_url,
        "endpoint_model_id": model.endpoint_model_id,
        "endpoint_api_key": "",
        "sampling_weight": model.sampling_weight,
        "events-TOTAL_FORMS": len(events),
        "events-INITIAL_FORMS": len(events),
        "events-MIN_NUM_FORMS": 0,
        "events-MAX_NUM_FORMS": 1000,
        "_save": "Save",
    }
    for i, event in enumerate(events):
        data[f"events-{i}-id"] = event.pk
        data[f"events-{i}-arena_model"] = model.pk
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


@pytest.fixture
def keyed(provider_a, staff):
    return make_model(
        provider_a,
        S.SUBMITTED,
        staff=staff,
        endpoint_base_url="https://api.example.com/v1",
        endpoint_model_id="m-1",
        endpoint_api_key=SECRET,
    )


def test_it_never_shows_the_stored_api_key(staff_admin, keyed):
    response = staff_admin.get(change_url(keyed))

    assert response.status_code == 200
    html = response.content.decode()
    assert SECRET not in html
    assert "set (hidden)" in html
    assert 'name="endpoint_api_key"' in html


def test_it_keeps_the_stored_key_when_the_field_is_left_empty(staff_admin, keyed):
    response = staff_admin.post(change_url(keyed), change_form_data(keyed, licence="MIT"))

    assert response.status_code == 302, response.context["adminform"].form.errors
    keyed.refresh_from_db()
    assert keyed.licence == "MIT"
    assert keyed.endpoint_api_key == SECRET


def test_it_does_not_log_a_key_change_when_the_key_is_kept(staff_admin, keyed):
    staff_admin.post(change_url(keyed), change_form_data(keyed, licence="MIT"))
    staff_admin.post(change_url(keyed), change_form_data(keyed, endpoint_api_key="sk-rotated"))

    kept, replaced = LogEntry.objects.filter(object_id=str(keyed.pk)).order_by("pk")
    assert "Licence" in kept.get_change_message()
    assert "API key" not in kept.get_change_message()
    assert "API key" in replaced.get_change_message()
    assert "sk-rotated" not in replaced.change_message


def test_it_replaces_the_stored_key_with_a_new_one(staff_admin, keyed):
    response = staff_admin.post(change_url(keyed), change_form_data(keyed, endpoint_api_key="sk-new"))

    assert response.status_code == 302
    keyed.refresh_from_db()
    assert keyed.endpoint_api_key == "sk-new"


def test_it_clears_the_stored_key_on_request(staff_admin, keyed):
    response = staff_admin.post(change_url(keyed), change_form_data(keyed, clear_endpoint_api_key="on"))

    assert response.status_code == 302
    keyed.refresh_from_db()
    assert keyed.endpoint_api_key == ""
    assert "not set" in staff_admin.get(change_url(keyed)).content.decode()


def test_it_does_not_echo_the_key_when_the_form_has_errors(staff_admin, keyed):
    response = staff_admin.post(
        change_url(keyed), change_form_data(keyed, name="", endpoint_api_key="sk-typed-just-now")
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert "sk-typed-just-now" not in html
    assert SECRET not in html
    keyed.refresh_from_db()
    assert keyed.endpoint_api_key == SECRET


def test_it_does_not_change_the_lifecycle_from_the_change_form(staff_admin, keyed):
    response = staff_admin.post(change_url(keyed), change_form_data(keyed, status="listed"))

    assert response.status_code == 302
    assert status_of(keyed) == S.SUBMITTED


def test_it_adds_a_model_through_the_form(staff_admin, provider_a):
    response = staff_admin.post(
        reverse("admin:providers_arenamodel_add"),
        {
            "provider": provider_a.pk,
            "name": "fresh-one",
            "access_kind": "public_api",
            "endpoint_api_key": "sk-first",
            "sampling_weight": 1,
            "events-TOTAL_FORMS": 0,
            "events-INITIAL_FORMS": 0,
            "events-MIN_NUM_FORMS": 0,
            "events-MAX_NUM_FORMS": 1000,
            "_save": "Save",
        },
    )

    assert response.status_code == 302
    model = ArenaModel.objects.get(name="fresh-one")
    assert model.status == S.DRAFT
    assert model.codename
    assert model.endpoint_api_key == "sk-first"


# -- bounded queries ------------------------------------------------------------------------


@pytest.fixture
def thirty_models(provider_a, staff):
    """30 models across providers, statuses and health states, each with lifecycle events."""
    now = clock.now()
    providers = [provider_a, *(ProviderFactory() for _ in range(4))]
    statuses = [S.DRAFT, S.SUBMITTED, S.INITIAL_RATING, S.LISTED, S.REJECTED, S.RETIRED]
    models = [make_model(providers[i % 5], statuses[i % 6], staff=staff) for i in range(30)]
    for i, model in enumerate(models):
        if i % 3 == 0:
            ArenaModel.objects.filter(pk=model.pk).update(
                endpoint_offline_since=now - timedelta(days=1), endpoint_last_error="timeout"
            )
        elif i % 3 == 1:
            ArenaModel.objects.filter(pk=model.pk).update(endpoint_last_ok_at=now)
    ArenaModel.objects.filter(pk=models[3].pk).update(retirement_candidate_since=now)
    return models


@pytest.mark.parametrize(
    "url_name",
    [
        "admin:providers_arenamodel_changelist",
        "admin:providers_lifecycleevent_changelist",
        "admin:providers_provider_changelist",
        "admin:providers_apitoken_changelist",
    ],
)
def test_it_renders_each_changelist_with_bounded_queries(
    staff_admin, thirty_models, staff, url_name, django_assert_max_num_queries
):
    for i in range(30):
        ApiToken.objects.issue(user=staff, name=f"token-{i}")
    url = reverse(url_name)
    staff_admin.get(url)  # warm up the session and content-type caches

    with django_assert_max_num_queries(10):
        response = staff_admin.get(url)

    assert response.status_code == 200
    assert len(response.context["cl"].result_list) >= 5


def test_it_renders_the_change_page_with_bounded_queries(staff_admin, provider_a, staff, django_assert_max_num_queries):
    model = make_model(provider_a, S.RETIRED, staff=staff)
    url = change_url(model)
    staff_admin.get(url)

    # The log inline must not query per event; one query reads the pending change, if any.
    with django_assert_max_num_queries(11):
        response = staff_admin.get(url)

    assert response.status_code == 200


# -- the other changelists -------------------------------------------------------------------


@pytest.mark.parametrize(
    "url_name",
    [
        "admin:index",
        "admin:providers_provider_changelist",
        "admin:providers_provider_add",
        "admin:providers_apitoken_changelist",
        "admin:providers_apitoken_add",
        "admin:providers_lifecycleevent_changelist",
        "admin:providers_arenamodel_add",
        "admin:django_celery_beat_periodictask_changelist",
    ],
)
def test_it_renders_the_other_admin_pages(staff_admin, provider_a, staff, url_name):
    make_model(provider_a, S.SUBMITTED, staff=staff)
    ApiToken.objects.issue(user=staff, name="ci")
    schedule = IntervalSchedule.objects.create(every=10, period=IntervalSchedule.MINUTES)
    PeriodicTask.objects.create(name="health checks", task="providers.tasks.check_endpoints", interval=schedule)

    response = staff_admin.get(reverse(url_name))

    assert response.status_code == 200


def test_it_renders_the_provider_change_page(staff_admin, provider_a, member_a):
    response = staff_admin.get(reverse("admin:providers_provider_change", args=[provider_a.pk]))

    assert response.status_code == 200
    assert "alice@a.example" in response.content.decode()


def test_staff_may_not_issue_tokens_that_act_as_someone_else(staff_admin, member_a):
    response = staff_admin.post(
        reverse("admin:providers_apitoken_add"), {"user": member_a.pk, "name": "impersonate", "_save": "Save"}
    )

    assert response.status_code == 200
    assert "user" in response.context["adminform"].form.errors
    assert not ApiToken.objects.exists()


def test_it_shows_a_new_api_token_once_and_stores_only_its_digest(staff_admin, staff):
    response = staff_admin.post(
        reverse("admin:providers_apitoken_add"), {"user": staff.pk, "name": "ci-bot", "_save": "Save"}, follow=True
    )

    assert response.redirect_chain[0][1] == 302
    token = ApiToken.objects.get(name="ci-bot")
    [raw] = [word for m in response.context["messages"] for word in str(m).split() if word.startswith("arena_")]
    assert raw in response.content.decode()
    assert ApiToken.objects.verify(raw) == token
    secret = raw.split("_", 2)[2]
    stored = " ".join(str(value) for value in ApiToken.objects.filter(pk=token.pk).values().get().values())
    assert secret not in stored
    assert len(token.digest) == 64

    later = staff_admin.get(reverse("admin:providers_apitoken_change", args=[token.pk]))
    listing = staff_admin.get(reverse("admin:providers_apitoken_changelist"))
    for page in (later, listing):
        assert page.status_code == 200
        assert secret not in page.content.decode()
        assert token.digest not in page.content.decode()


def test_it_revokes_tokens_from_the_changelist(staff_admin, staff):
    token, raw = ApiToken.objects.issue(user=staff, name="old")

    response = staff_admin.post(
        reverse("admin:providers_apitoken_changelist"), {"action": "revoke", "_selected_action": [token.pk]}
    )

    assert response.status_code == 302
    assert ApiToken.objects.verify(raw) is None


def test_it_does_not_let_view_only_staff_revoke_tokens(client, staff_without_permission, staff):
    token, raw = ApiToken.objects.issue(user=staff, name="keep")
    staff_without_permission.user_permissions.add(Permission.objects.get(codename="view_apitoken"))
    client.force_login(staff_without_permission)

    listing = client.get(reverse("admin:providers_apitoken_changelist"))
    client.post(reverse("admin:providers_apitoken_changelist"), {"action": "revoke", "_selected_action": [token.pk]})

    assert listing.status_code == 200
    assert "revoke" not in action_choices(listing)
    assert ApiToken.objects.verify(raw) == token


def test_it_keeps_a_revoked_token_revoked(staff_admin, staff):
    token, raw = ApiToken.objects.issue(user=staff, name="leaked")
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=clock.now())

    response = staff_admin.post(
        reverse("admin:providers_apitoken_change", args=[token.pk]), {"revoked_at_0": "", "revoked_at_1": ""}
    )

    assert response.status_code == 302
    assert ApiToken.objects.verify(raw) is None


@pytest.mark.parametrize("column", range(10))
def test_it_sorts_the_queue_by_any_column(staff_admin, assorted, column):
    ascending = staff_admin.get(changelist_url(o=column))
    descending = staff_admin.get(changelist_url(o=f"-{column}"))

    assert ascending.status_code == descending.status_code == 200
    assert len(listed_names(ascending)) == len(assorted)


def test_it_browses_the_lifecycle_log_by_date(staff_admin, provider_a, staff):
    model = make_model(provider_a, S.SUBMITTED, staff=staff)
    day = model.events.get().created_at

    response = staff_admin.get(
        reverse("admin:providers_lifecycleevent_changelist"),
        {"created_at__year": day.year, "created_at__month": day.month, "created_at__day": day.day, "q": model.name},
    )

    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 1

"""Every retirement records the rule it was made under; rules other than a staff decision are checked."""

from datetime import timedelta

import pytest
import time_machine

from arenasite import clock
from providers.lifecycle import Action, TransitionRefused, carry_out_due, transition
from providers.models import ArenaModel, LifecycleEvent, RetirementRule

from ..conftest import make_model
from .test_admin import staff_admin  # noqa: F401 (a fixture)
from .test_api import detail_url

pytestmark = pytest.mark.django_db
S = ArenaModel.Status


def past_window(model):
    ArenaModel.objects.filter(pk=model.pk).update(listed_at=clock.now() - timedelta(days=30))
    model.refresh_from_db()
    return model


def retirement(model) -> LifecycleEvent:
    return model.events.get(to_status=S.RETIRED, kind=LifecycleEvent.Kind.DONE)


def test_a_staff_retirement_without_a_rule_is_recorded_as_a_staff_decision(provider_a, staff):
    model = past_window(make_model(provider_a, S.LISTED, staff=staff))
    transition(model_id=model.pk, action=Action.RETIRE, actor=staff, reason="Licence withdrawn by its owner.")
    assert retirement(model).rule == RetirementRule.STAFF_DECISION


def test_a_provider_request_is_recorded_as_such_whatever_rule_is_named(provider_a, member_a, staff):
    model = past_window(make_model(provider_a, S.LISTED, staff=staff))
    transition(
        model_id=model.pk,
        action=Action.REQUEST_RETIREMENT,
        actor=member_a,
        reason="Superseded.",
        rule=RetirementRule.OFFLINE,
    )
    assert retirement(model).rule == RetirementRule.PROVIDER_REQUEST


@pytest.mark.parametrize(
    ("action", "rule", "code"),
    [
        (Action.RETIRE, "because", "unknown_rule"),
        (Action.RETIRE, RetirementRule.PROVIDER_REQUEST, "unknown_rule"),  # staff cannot claim the provider asked
        (Action.ADMIT, RetirementRule.STAFF_DECISION, "rule_not_applicable"),
    ],
)
def test_a_rule_that_does_not_fit_is_refused_and_changes_nothing(provider_a, staff, action, rule, code):
    model = make_model(provider_a, S.LISTED if action == Action.RETIRE else S.SUBMITTED, staff=staff)
    before = list(model.events.values_list("pk", flat=True))
    with pytest.raises(TransitionRefused) as refused:
        transition(model_id=model.pk, action=action, actor=staff, reason="x", rule=rule)
    assert refused.value.rule == code
    assert list(model.events.values_list("pk", flat=True)) == before


def test_the_offline_rule_needs_the_model_to_be_an_offline_candidate(provider_a, staff):
    model = past_window(make_model(provider_a, S.LISTED, staff=staff))
    with pytest.raises(TransitionRefused) as refused:
        transition(model_id=model.pk, action=Action.RETIRE, actor=staff, reason="Gone.", rule=RetirementRule.OFFLINE)
    assert refused.value.rule == "rule_not_met"
    model.refresh_from_db()
    assert model.status == S.LISTED

    ArenaModel.objects.filter(pk=model.pk).update(
        endpoint_offline_since=clock.now() - timedelta(days=9), retirement_candidate_since=clock.now()
    )
    transition(model_id=model.pk, action=Action.RETIRE, actor=staff, reason="Gone.", rule=RetirementRule.OFFLINE)
    assert retirement(model).rule == RetirementRule.OFFLINE


def test_a_retirement_scheduled_inside_the_window_keeps_its_rule_when_carried_out(provider_a, member_a, staff):
    model = make_model(provider_a, S.LISTED, staff=staff)
    transition(model_id=model.pk, action=Action.REQUEST_RETIREMENT, actor=member_a, reason="Superseded.")
    scheduled = model.events.get(kind=LifecycleEvent.Kind.SCHEDULED)
    assert scheduled.rule == RetirementRule.PROVIDER_REQUEST

    with time_machine.travel(clock.now() + timedelta(days=15)):
        assert len(carry_out_due()) == 1
    done = retirement(model)
    assert (done.rule, done.reason, done.actor) == (RetirementRule.PROVIDER_REQUEST, "Superseded.", None)


def test_staff_retire_under_a_rule_through_the_api(staff_client, provider_a, staff):
    model = past_window(make_model(provider_a, S.LISTED, staff=staff))
    refused = staff_client.post(detail_url(model, "retire"), {"reason": "Gone.", "rule": "offline"}, format="json")
    assert refused.status_code == 409 and refused.json()["rule"] == "rule_not_met"
    unknown = staff_client.post(detail_url(model, "retire"), {"reason": "Gone.", "rule": "whim"}, format="json")
    assert unknown.status_code == 400
    done = staff_client.post(detail_url(model, "retire"), {"reason": "Licence withdrawn."}, format="json")
    assert done.status_code == 200
    events = staff_client.get(detail_url(model, "events")).json()
    assert events[-1]["rule"] == "staff_decision"


def test_staff_name_the_rule_on_the_admin_confirmation_page(staff_admin, provider_a, staff):  # noqa: F811
    model = past_window(make_model(provider_a, S.LISTED, staff=staff))
    page = staff_admin.post(
        "/admin/providers/arenamodel/", {"action": "retire", "_selected_action": [model.pk], "index": 0}
    )
    assert 'name="rule"' in page.content.decode()
    response = staff_admin.post(
        "/admin/providers/arenamodel/",
        {"action": "retire", "_selected_action": [model.pk], "confirm": "yes", "reason": "Gone.", "rule": "offline"},
    )
    assert response.status_code == 302
    model.refresh_from_db()
    assert model.status == S.LISTED  # not an offline candidate: refused, and said so
    response = staff_admin.post(
        "/admin/providers/arenamodel/",
        {
            "action": "retire",
            "_selected_action": [model.pk],
            "confirm": "yes",
            "reason": "Legal request.",
            "rule": "staff_decision",
        },
    )
    assert retirement(model).rule == RetirementRule.STAFF_DECISION

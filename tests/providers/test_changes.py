"""What answers behind a model in the pool changes only with staff approval: a change of
access kind, endpoint address or endpoint model id waits as a request, the model is served
as approved meanwhile, approval checks the rules again and every step is logged."""

from __future__ import annotations

import pytest
from django.urls import reverse

from arenasite.models import AuditEvent
from battles.clients import client_for
from providers import changes
from providers.lifecycle import TransitionRefused
from providers.models import ArenaModel, ChangeRequest

from ..conftest import make_model
from .test_admin import change_form_data, intern_admin, staff_admin  # noqa: F401  (admin fixtures)

pytestmark = pytest.mark.django_db
S = ArenaModel.Status
MODELS = "/api/v1/models/"
OLD = {"endpoint_base_url": "https://old.a.example/v1", "endpoint_model_id": "aurora-v1"}
SWAP = {
    "access_kind": "public_api",
    "endpoint_base_url": "https://other.backend.example/v1",
    "endpoint_model_id": "someone-elses-model",
    "endpoint_api_key": "sk-new-backend",
}


def pool_model(provider, status=S.LISTED, **fields):
    return make_model(
        provider, status, votes=1000, access_kind="open_weights", endpoint_api_key="sk-old", **{**OLD, **fields}
    )


def served(model: ArenaModel) -> tuple:
    model.refresh_from_db()
    client = client_for(model)
    return model.access_kind, client.base_url, client.model_id, model.endpoint_api_key


def steps(model: ArenaModel) -> list[str]:
    return list(model.events.values_list("action", flat=True))


def audited_steps(model: ArenaModel) -> list[str]:
    rows = AuditEvent.objects.filter(subject_type="providers.arenamodel", subject_id=str(model.pk)).order_by("at", "id")
    return [row.details.get("step") for row in rows]


# --- a change is a request -------------------------------------------------------------------


@pytest.mark.parametrize("status", [S.INITIAL_RATING, S.LISTED])
def test_a_pool_models_access_and_endpoint_change_waits_and_is_not_served(client_a, provider_a, status):
    model = pool_model(provider_a, status)
    before = served(model)

    response = client_a.patch(f"{MODELS}{model.pk}/", {**SWAP, "licence": "MIT"}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["access_kind"], body["endpoint_base_url"], body["endpoint_model_id"]) == (
        "open_weights",
        OLD["endpoint_base_url"],
        OLD["endpoint_model_id"],
    )
    pending = body["pending_change"]
    assert pending["state"] == "pending" and pending["replaces_api_key"] is True
    assert (pending["access_kind"], pending["endpoint_base_url"], pending["endpoint_model_id"]) == (
        "public_api",
        SWAP["endpoint_base_url"],
        SWAP["endpoint_model_id"],
    )
    assert b"sk-new-backend" not in response.content
    assert served(model) == before, "the battle path still calls the approved endpoint with the approved key"
    model.refresh_from_db()
    assert model.licence == "MIT", "the other fields are saved at once"
    assert steps(model)[-1] == "request-change"
    assert audited_steps(model)[-1] == "request-change"
    assert client_a.get(f"{MODELS}{model.pk}/").json()["pending_change"]["id"] == pending["id"]


def test_becoming_private_is_refused_at_once_by_the_third_party_access_rule(client_a, provider_a):
    model = pool_model(provider_a)
    before = served(model)
    response = client_a.patch(f"{MODELS}{model.pk}/", {**SWAP, "access_kind": "private"}, format="json")
    assert response.status_code == 409
    assert response.json()["rule"] == "third_party_access"
    assert served(model) == before
    assert not ChangeRequest.objects.exists()


def test_removing_the_endpoint_of_a_model_in_the_arena_is_refused(client_a, provider_a):
    model = pool_model(provider_a)
    response = client_a.patch(f"{MODELS}{model.pk}/", {"endpoint_base_url": ""}, format="json")
    assert response.status_code == 409
    assert response.json()["rule"] == "endpoint_required"


def test_asking_again_for_the_pending_change_changes_nothing_and_another_is_refused(client_a, provider_a):
    model = pool_model(provider_a)
    first = client_a.patch(f"{MODELS}{model.pk}/", SWAP, format="json").json()["pending_change"]
    again = client_a.patch(f"{MODELS}{model.pk}/", SWAP, format="json")
    assert again.status_code == 200 and again.json()["pending_change"]["id"] == first["id"]
    other = client_a.patch(f"{MODELS}{model.pk}/", {"endpoint_model_id": "third"}, format="json")
    assert other.status_code == 409 and other.json()["rule"] == "change_pending"
    assert ChangeRequest.objects.count() == 1
    assert steps(model).count("request-change") == 1


@pytest.mark.parametrize("status", [S.DRAFT, S.SUBMITTED])
def test_before_admission_the_endpoint_changes_at_once(client_a, provider_a, status):
    model = make_model(provider_a, status, **OLD)
    response = client_a.patch(f"{MODELS}{model.pk}/", SWAP, format="json")
    assert response.status_code == 200 and response.json()["pending_change"] is None
    assert served(model)[1:] == (SWAP["endpoint_base_url"], SWAP["endpoint_model_id"], "sk-new-backend")


# --- the provider withdraws ------------------------------------------------------------------


def test_a_provider_sees_and_withdraws_its_pending_change(client_a, client_b, provider_a, provider_b):
    model = pool_model(provider_a)
    before = served(model)
    client_a.patch(f"{MODELS}{model.pk}/", SWAP, format="json")

    assert client_b.post(f"{MODELS}{model.pk}/withdraw-change/").status_code == 404
    response = client_a.post(f"{MODELS}{model.pk}/withdraw-change/")
    assert response.status_code == 200 and response.json()["pending_change"] is None
    change = ChangeRequest.objects.get()
    assert change.state == ChangeRequest.State.WITHDRAWN and change.endpoint_api_key == ""
    assert served(model) == before
    assert steps(model)[-2:] == ["request-change", "withdraw-change"]
    assert audited_steps(model)[-1] == "withdraw-change"

    again = client_a.post(f"{MODELS}{model.pk}/withdraw-change/")
    assert again.status_code == 409 and again.json()["rule"] == "no_pending_change"


# --- staff decide ----------------------------------------------------------------------------


def test_approval_makes_the_new_endpoint_the_one_served_and_logs_it(client_a, provider_a, staff):
    model = pool_model(provider_a)
    change_id = client_a.patch(f"{MODELS}{model.pk}/", SWAP, format="json").json()["pending_change"]["id"]

    outcome = changes.change_approve(change_id=change_id, actor=staff, reason="Same weights, new host.")

    assert outcome.changed
    assert served(model) == ("public_api", SWAP["endpoint_base_url"], SWAP["endpoint_model_id"], "sk-new-backend")
    change = ChangeRequest.objects.get(pk=change_id)
    assert (change.state, change.decided_by, change.endpoint_api_key) == ("approved", staff, "")
    event = model.events.last()
    assert (event.action, event.actor, event.from_status, event.to_status) == (
        "approve-change",
        staff,
        "listed",
        "listed",
    )
    assert "someone-elses-model" in event.reason and "Same weights, new host." in event.reason
    assert audited_steps(model)[-1] == "approve-change"
    assert not changes.change_approve(change_id=change_id, actor=staff).changed, "approving twice changes nothing"


def test_approval_checks_the_endpoint_address_again(client_a, provider_a, staff, settings):
    model = pool_model(provider_a)
    change_id = client_a.patch(
        f"{MODELS}{model.pk}/", {"endpoint_base_url": "http://10.20.30.40/v1"}, format="json"
    ).json()["pending_change"]["id"]
    before = served(model)
    settings.ARENA_ALLOW_PRIVATE_ENDPOINTS = False  # e.g. the name now resolves to a private address

    with pytest.raises(TransitionRefused) as refused:
        changes.change_approve(change_id=change_id, actor=staff)

    assert refused.value.rule == "endpoint_address"
    assert served(model) == before
    assert ChangeRequest.objects.get(pk=change_id).state == "pending"
    assert "approve-change" not in steps(model)


def test_approval_checks_the_third_party_access_rule_again(provider_a, staff):
    model = pool_model(provider_a)
    # A request stored before the rule was checked on asking (or written by hand).
    change = ChangeRequest.objects.create(
        arena_model=model, access_kind="private", previous={"access_kind": "open_weights"}, **OLD
    )
    with pytest.raises(TransitionRefused) as refused:
        changes.change_approve(change_id=change.pk, actor=staff)
    assert refused.value.rule == "third_party_access"
    model.refresh_from_db()
    assert model.access_kind == "open_weights"


def test_a_refusal_needs_a_reason_keeps_the_approved_values_and_is_logged(client_a, provider_a, staff):
    model = pool_model(provider_a)
    before = served(model)
    change_id = client_a.patch(f"{MODELS}{model.pk}/", SWAP, format="json").json()["pending_change"]["id"]
    with pytest.raises(TransitionRefused):
        changes.change_refuse(change_id=change_id, actor=staff, reason=" ")
    changes.change_refuse(change_id=change_id, actor=staff, reason="Another model behind the name.")
    assert served(model) == before
    assert ChangeRequest.objects.get(pk=change_id).state == "refused"
    assert steps(model)[-1] == "refuse-change"
    log = client_a.get(f"{MODELS}{model.pk}/events/").json()
    assert log[-1]["action"] == "refuse-change" and log[-1]["actor"] == "staff"
    assert "Another model behind the name." in log[-1]["reason"]


def test_staff_approve_in_the_admin_with_a_confirmation(staff_admin, client_a, provider_a, staff):  # noqa: F811
    model = pool_model(provider_a)
    change_id = client_a.patch(f"{MODELS}{model.pk}/", SWAP, format="json").json()["pending_change"]["id"]
    url = reverse("admin:providers_changerequest_changelist")
    confirm = staff_admin.post(url, {"action": "approve", "_selected_action": [change_id]})
    assert confirm.status_code == 200 and "someone-elses-model" in confirm.content.decode()
    assert ChangeRequest.objects.get(pk=change_id).state == "pending"

    done = staff_admin.post(url, {"action": "approve", "_selected_action": [change_id], "confirm": "yes", "reason": ""})
    assert done.status_code == 302
    assert served(model)[2] == "someone-elses-model"
    assert model.events.last().actor == staff


def test_staff_without_the_lifecycle_permission_cannot_decide(intern_admin, client_a, provider_a):  # noqa: F811
    model = pool_model(provider_a)
    change_id = client_a.patch(f"{MODELS}{model.pk}/", SWAP, format="json").json()["pending_change"]["id"]
    url = reverse("admin:providers_changerequest_changelist")
    staff_without = intern_admin.post(
        url, {"action": "approve", "_selected_action": [change_id], "confirm": "yes", "reason": ""}
    )
    assert staff_without.status_code in (200, 302, 403)
    assert ChangeRequest.objects.get(pk=change_id).state == "pending"


def test_an_admin_edit_of_a_listed_models_endpoint_is_a_request_too(staff_admin, provider_a):  # noqa: F811
    model = pool_model(provider_a)
    before = served(model)
    url = reverse("admin:providers_arenamodel_change", args=[model.pk])
    response = staff_admin.post(url, change_form_data(model, endpoint_model_id="swapped", licence="MIT"))
    assert response.status_code == 302
    assert served(model) == before
    model.refresh_from_db()
    assert model.licence == "MIT"
    assert ChangeRequest.objects.get().endpoint_model_id == "swapped"


# --- the key alone ---------------------------------------------------------------------------


def test_a_key_rotation_alone_applies_at_once_and_is_audited(client_a, provider_a, member_a):
    model = pool_model(provider_a)
    response = client_a.patch(f"{MODELS}{model.pk}/", {"endpoint_api_key": "sk-rotated", **OLD}, format="json")
    assert response.status_code == 200 and response.json()["pending_change"] is None
    assert served(model)[3] == "sk-rotated"
    event = model.events.last()
    assert (event.action, event.actor) == ("rotate-key", member_a)
    assert "sk-rotated" not in event.reason
    audit = AuditEvent.objects.filter(subject_id=str(model.pk)).first()
    assert audit.details["step"] == "rotate-key" and audit.actor == member_a
    assert "sk-rotated" not in str(audit.details) + audit.summary


def test_a_key_rotation_from_the_admin_is_audited(staff_admin, provider_a, staff):  # noqa: F811
    model = pool_model(provider_a)
    url = reverse("admin:providers_arenamodel_change", args=[model.pk])
    assert staff_admin.post(url, change_form_data(model, endpoint_api_key="sk-from-admin")).status_code == 302
    assert served(model)[3] == "sk-from-admin"
    assert steps(model)[-1] == "rotate-key"


def test_the_public_registry_shows_an_approved_change_but_not_the_requests(client, client_a, provider_a, staff):
    model = pool_model(provider_a)
    first = client_a.patch(f"{MODELS}{model.pk}/", SWAP, format="json").json()["pending_change"]["id"]
    changes.change_refuse(change_id=first, actor=staff, reason="secret-ish note")
    second = client_a.patch(f"{MODELS}{model.pk}/", SWAP, format="json").json()["pending_change"]["id"]
    changes.change_approve(change_id=second, actor=staff)
    page = client.get("/models/").content.decode()
    assert "approve-change" in page
    assert "request-change" not in page and "refuse-change" not in page and "secret-ish note" not in page


def test_the_edit_serializer_cannot_save_round_the_service(provider_a):
    """The API's serializer checks shapes only; save() is refused, so there is no way round the
    rules of providers.registration and the review of providers.changes."""
    from providers.api.serializers import OwnArenaModelSerializer

    model = pool_model(provider_a)
    before = served(model)
    form = OwnArenaModelSerializer(model, data=SWAP, partial=True)
    assert form.is_valid(), form.errors
    with pytest.raises(NotImplementedError, match="providers.registration"):
        form.save()
    assert served(model) == before
    assert not ChangeRequest.objects.filter(arena_model=model).exists()

"""The REST API v1: who may do what on every endpoint, what each answer says, and what it changes.

Personas: anonymous, a member of another provider, a member of the owning provider, staff
with the lifecycle permission, and staff without it. Every refusal is checked to change nothing.
"""

from datetime import datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.db import connection
from rest_framework.test import APIClient

from arenasite import clock
from providers.api.serializers import OwnArenaModelSerializer
from providers.lifecycle import PROVIDER_ACTIONS, Action, carry_out_due
from providers.models import ApiToken, ArenaModel, LifecycleEvent

from ..conftest import make_model, token_client
from ..factories import MembershipFactory, ProviderFactory, UserFactory

pytestmark = pytest.mark.django_db
S = ArenaModel.Status
MODELS = "/api/v1/models/"
HUGE_ID = "99999999999999999999"

PUBLIC_KEYS = {
    "id",
    "name",
    "provider",
    "access_kind",
    "licence",
    "description",
    "knowledge_cutoff",
    "status",
    "listed_at",
    "retired_at",
}
OWN_ONLY_KEYS = {
    "codename",
    "votes_counted",
    "endpoint_base_url",
    "endpoint_model_id",
    "endpoint_api_key_set",
}


def detail_url(model_or_id, action: str | None = None) -> str:
    pk = getattr(model_or_id, "pk", model_or_id)
    return f"{MODELS}{pk}/{action}/" if action else f"{MODELS}{pk}/"


def snapshot():
    """Every model and every lifecycle event, to prove a refused request changed nothing."""
    return (
        list(ArenaModel.objects.order_by("pk").values()),
        list(LifecycleEvent.objects.order_by("pk").values()),
    )


def assert_json_error(response, status_code: int) -> dict:
    assert response.status_code == status_code, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


@pytest.fixture
def intern_client(staff_without_permission):
    return token_client(staff_without_permission)


@pytest.fixture
def persona_users(member_a, member_b, staff, staff_without_permission):
    return {
        "anonymous": None,
        "other_member": member_b,
        "member": member_a,
        "staff": staff,
        "staff_without_permission": staff_without_permission,
    }


@pytest.fixture
def persona_clients(anon_client, client_a, client_b, staff_client, intern_client):
    return {
        "anonymous": anon_client,
        "other_member": client_b,
        "member": client_a,
        "staff": staff_client,
        "staff_without_permission": intern_client,
    }


PERSONAS = ["anonymous", "other_member", "member", "staff", "staff_without_permission"]


# Authentication ---------------------------------------------------------------------------------


def test_a_valid_bearer_token_authenticates_its_user(client_a, provider_a, member_a):
    draft = make_model(provider_a)
    response = client_a.get(detail_url(draft))
    assert response.status_code == 200
    assert response.json()["codename"] == draft.codename  # the owner's view, so the token was accepted
    assert ApiToken.objects.get(user=member_a).last_used_at is not None


def test_it_records_token_use_at_most_once_a_minute(provider_a, member_a):
    client = token_client(member_a)
    start = clock.now()
    with time_machine.travel(start, tick=False):
        client.get(MODELS)
    with time_machine.travel(start + timedelta(seconds=30), tick=False):
        client.get(MODELS)
    assert ApiToken.objects.get(user=member_a).last_used_at == start
    with time_machine.travel(start + timedelta(seconds=61), tick=False):
        client.get(MODELS)
    assert ApiToken.objects.get(user=member_a).last_used_at == start + timedelta(seconds=61)


@pytest.mark.parametrize(
    "header",
    [
        "Bearer arena_deadbeef_not-the-secret",
        "Bearer arena_nosuchprefix",
        "Bearer sometoken",
        "Bearer",
        "Bearer arena_a_b extra",
        "bearer arena_deadbeef_x",
    ],
)
def test_it_refuses_an_invalid_or_malformed_token_with_a_json_401(provider_a, header):
    make_model(provider_a, S.LISTED)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    before = snapshot()
    # Even a public read fails: a client that sends a bad token should learn so.
    response = client.get(MODELS)
    assert_json_error(response, 401)
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert_json_error(client.post(MODELS, {"name": "sneaky"}, format="json"), 401)
    assert snapshot() == before


def test_it_refuses_a_token_with_the_right_prefix_but_a_wrong_secret(member_a):
    token, raw = ApiToken.objects.issue(user=member_a, name="laptop")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer arena_{token.prefix}_{'x' * 43}")
    assert assert_json_error(client.get(MODELS), 401)["detail"] == "Invalid or revoked token."


def test_it_refuses_a_revoked_token(provider_a, member_a):
    draft = make_model(provider_a)
    token, raw = ApiToken.objects.issue(user=member_a, name="laptop")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get(detail_url(draft)).status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=clock.now())
    before = snapshot()
    assert assert_json_error(client.get(detail_url(draft)), 401)["detail"] == "Invalid or revoked token."
    assert_json_error(client.post(detail_url(draft, "submit"), {}, format="json"), 401)
    assert snapshot() == before


def test_it_refuses_the_token_of_a_deactivated_user(provider_a, member_a):
    client = token_client(member_a)
    member_a.is_active = False
    member_a.save()
    assert_json_error(client.get(MODELS), 401)


def test_a_non_ascii_token_is_refused_not_crashed_on(provider_a):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer arena_ü_ß")
    assert_json_error(client.get(MODELS), 401)


def test_a_logged_in_browser_session_works_too(provider_a, member_a):
    draft = make_model(provider_a)
    client = APIClient()
    client.force_login(member_a)
    assert client.get(detail_url(draft)).json()["codename"] == draft.codename


def test_a_session_write_needs_the_csrf_token(provider_a, member_a):
    draft = make_model(provider_a)
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(member_a)
    before = snapshot()
    body = assert_json_error(client.post(detail_url(draft, "submit"), {}, format="json"), 403)
    assert "CSRF" in body["detail"]
    assert snapshot() == before


# List ---------------------------------------------------------------------------------------------


@pytest.fixture
def catalogue(provider_a, provider_b):
    """One draft and one listed model for each provider, plus a retired one of A's."""
    return {
        "a_draft": make_model(provider_a, name="a-draft"),
        "a_listed": make_model(provider_a, S.LISTED, name="a-listed"),
        "a_retired": make_model(provider_a, S.RETIRED, name="a-retired"),
        "b_draft": make_model(provider_b, name="b-draft"),
        "b_listed": make_model(provider_b, S.LISTED, name="b-listed"),
    }


@pytest.mark.parametrize(
    "persona, visible, in_full",
    [
        ("anonymous", {"a_listed", "b_listed"}, set()),
        ("other_member", {"a_listed", "b_listed", "b_draft"}, {"b_listed", "b_draft"}),
        ("member", {"a_listed", "a_draft", "a_retired", "b_listed"}, {"a_listed", "a_draft", "a_retired"}),
        ("staff", {"a_listed", "a_draft", "a_retired", "b_listed", "b_draft"}, "all"),
        # Being staff is not enough: seeing unlisted models needs a model permission.
        ("staff_without_permission", {"a_listed", "b_listed"}, set()),
    ],
)
def test_the_list_shows_listed_models_to_everyone_and_own_models_in_full(
    persona_clients, catalogue, persona, visible, in_full
):
    response = persona_clients[persona].get(MODELS)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == len(visible)
    names = {model.pk: key for key, model in catalogue.items()}
    rows = {names[row["id"]]: row for row in body["results"]}
    assert set(rows) == visible
    assert [row["id"] for row in body["results"]] == sorted(row["id"] for row in body["results"])
    in_full = visible if in_full == "all" else in_full
    for key, row in rows.items():
        expected_keys = PUBLIC_KEYS | OWN_ONLY_KEYS if key in in_full else PUBLIC_KEYS
        assert expected_keys <= set(row)
        if key not in in_full:
            assert set(row) == PUBLIC_KEYS, f"{key} must show only public fields to {persona}"
        assert "endpoint_api_key" not in row
        assert row["provider"] == catalogue[key].provider.slug
        assert row["status"] == catalogue[key].status


def test_the_list_never_reveals_an_endpoint_key(client_a, staff_client, provider_a):
    make_model(provider_a, S.LISTED, endpoint_api_key="sk-very-secret")
    for client in (client_a, staff_client, APIClient()):
        response = client.get(MODELS)
        assert b"sk-very-secret" not in response.content
    assert client_a.get(MODELS).json()["results"][0]["endpoint_api_key_set"] is True


def test_the_list_is_paginated(anon_client, provider_a):
    for n in range(51):
        make_model(provider_a, S.LISTED, name=f"listed-{n:02d}")
    first = anon_client.get(MODELS).json()
    assert first["count"] == 51 and len(first["results"]) == 50
    assert first["next"].endswith("/api/v1/models/?page=2")
    second = anon_client.get(first["next"]).json()
    assert len(second["results"]) == 1 and second["next"] is None


def test_a_new_providers_member_sees_its_own_draft_and_no_one_elses(provider_a):
    """A member of a provider with no listed models sees only its own, not A's drafts."""
    make_model(provider_a, name="a-secret-draft")
    newcomer = MembershipFactory(provider=ProviderFactory(slug="newcomer"), user=UserFactory()).user
    client = token_client(newcomer)
    response = client.post(MODELS, {"name": "Fresh"}, format="json")
    assert response.status_code == 201
    assert [row["name"] for row in client.get(MODELS).json()["results"]] == ["Fresh"]


@pytest.mark.parametrize("page", ["0", "3", "abc", HUGE_ID])
def test_a_page_that_does_not_exist_answers_a_json_404(anon_client, provider_a, page):
    make_model(provider_a, S.LISTED)
    assert assert_json_error(anon_client.get(MODELS, {"page": page}), 404)["detail"] == "Invalid page."


# Retrieve -----------------------------------------------------------------------------------------

RETRIEVE_CODES = {
    # persona: (a draft of provider A, a listed model of provider A, shown in full when visible)
    "anonymous": (404, 200, False),
    "other_member": (404, 200, False),
    "member": (200, 200, True),
    "staff": (200, 200, True),
    "staff_without_permission": (404, 200, False),
}


@pytest.mark.parametrize("persona", PERSONAS)
def test_one_model_is_visible_like_the_list(persona_clients, provider_a, persona):
    draft_code, listed_code, in_full = RETRIEVE_CODES[persona]
    draft = make_model(provider_a, endpoint_api_key="sk-secret")
    listed = make_model(provider_a, S.LISTED, endpoint_api_key="sk-secret")
    client = persona_clients[persona]

    response = client.get(detail_url(draft))
    if draft_code == 404:
        assert_json_error(response, 404)
    else:
        assert response.status_code == 200
        assert response.json()["name"] == draft.name

    response = client.get(detail_url(listed))
    assert response.status_code == listed_code
    body = response.json()
    assert body["id"] == listed.pk and body["status"] == "listed" and body["provider"] == "provider-a"
    if in_full:
        assert body["codename"] == listed.codename
        assert body["endpoint_api_key_set"] is True
    else:
        assert set(body) == PUBLIC_KEYS
    assert "endpoint_api_key" not in body
    assert b"sk-secret" not in response.content


def test_retired_models_are_no_longer_public(anon_client, client_b, client_a, provider_a):
    retired = make_model(provider_a, S.RETIRED)
    assert_json_error(anon_client.get(detail_url(retired)), 404)
    assert_json_error(client_b.get(detail_url(retired)), 404)
    assert client_a.get(detail_url(retired)).json()["status"] == "retired"


@pytest.mark.parametrize("bad_id", ["abc", "-1", "0", "1.5", HUGE_ID, "١"])
def test_a_bad_or_unknown_id_answers_a_json_404_everywhere(client_a, staff_client, provider_a, bad_id):
    make_model(provider_a, S.SUBMITTED)
    before = snapshot()
    for client in (client_a, staff_client):
        assert_json_error(client.get(detail_url(bad_id)), 404)
        assert_json_error(client.patch(detail_url(bad_id), {"licence": "MIT"}, format="json"), 404)
        assert_json_error(client.get(detail_url(bad_id, "events")), 404)
        for action in Action.values:
            response = client.post(detail_url(bad_id, action), {"reason": "why"}, format="json")
            assert_json_error(response, 404)
    assert snapshot() == before


def test_an_id_of_a_model_that_never_existed_answers_404(client_a, provider_a):
    model = make_model(provider_a)
    assert_json_error(client_a.get(detail_url(model.pk + 1000)), 404)


# Create -------------------------------------------------------------------------------------------

NEW_MODEL = {
    "name": "Llama Nova 70B",
    "access_kind": "public_api",
    "licence": "Llama 3 Community",
    "description": "A helpful model.",
    "knowledge_cutoff": "2024-12-01",
    "heads_up_requested": True,
    "endpoint_base_url": "https://api.nova.example/v1",
    "endpoint_model_id": "nova-70b",
    "endpoint_api_key": "sk-nova-secret",
}


def test_a_provider_member_registers_a_draft_for_its_provider(client_a, provider_a):
    response = client_a.post(MODELS, NEW_MODEL, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    model = ArenaModel.objects.get(pk=body["id"])
    assert model.provider == provider_a
    assert model.status == S.DRAFT
    assert model.endpoint_api_key == "sk-nova-secret"
    for field in ("name", "access_kind", "licence", "description", "endpoint_base_url", "endpoint_model_id"):
        assert body[field] == NEW_MODEL[field] == getattr(model, field)
    assert model.knowledge_cutoff.isoformat() == body["knowledge_cutoff"] == "2024-12-01"
    assert model.heads_up_requested is body["heads_up_requested"] is True
    assert body["provider"] == "provider-a"
    assert body["status"] == "draft"
    assert body["codename"] == model.codename and model.codename
    assert LifecycleEvent.objects.count() == 0


def test_the_endpoint_key_is_write_only_and_encrypted_at_rest(client_a, provider_a):
    response = client_a.post(MODELS, NEW_MODEL, format="json")
    assert "endpoint_api_key" not in response.json()
    assert response.json()["endpoint_api_key_set"] is True
    assert b"sk-nova-secret" not in response.content
    model_id = response.json()["id"]
    assert b"sk-nova-secret" not in client_a.get(detail_url(model_id)).content
    with connection.cursor() as cursor:
        cursor.execute("SELECT endpoint_api_key FROM providers_arenamodel WHERE id = %s", [model_id])
        stored = cursor.fetchone()[0]
    assert stored and "sk-nova-secret" not in stored


def test_a_draft_without_a_key_says_so(client_a, provider_a):
    response = client_a.post(MODELS, {"name": "Keyless"}, format="json")
    assert response.status_code == 201
    assert response.json()["endpoint_api_key_set"] is False


def test_read_only_fields_in_a_new_model_are_ignored(client_a, provider_a):
    response = client_a.post(
        MODELS,
        {"name": "Shortcut", "status": "listed", "votes_counted": 5000, "listed_at": "2024-01-01T00:00:00Z"},
        format="json",
    )
    assert response.status_code == 201
    model = ArenaModel.objects.get(name="Shortcut")
    assert (model.status, model.votes_counted, model.listed_at) == (S.DRAFT, 0, None)


def test_a_member_of_several_providers_must_name_one(provider_a, provider_b, member_a):
    MembershipFactory(provider=provider_b, user=member_a)
    client = token_client(member_a)
    before = snapshot()
    body = assert_json_error(client.post(MODELS, {"name": "Ambiguous"}, format="json"), 400)
    assert body["errors"] == {"provider": ["You belong to several providers (or none); name one by its slug."]}
    assert snapshot() == before
    response = client.post(MODELS, {"name": "Clear", "provider": "provider-b"}, format="json")
    assert response.status_code == 201
    assert ArenaModel.objects.get(name="Clear").provider == provider_b


def test_a_member_may_name_its_own_provider(client_a, provider_a):
    response = client_a.post(MODELS, {"name": "Named", "provider": "provider-a"}, format="json")
    assert response.status_code == 201
    assert response.json()["provider"] == "provider-a"


@pytest.mark.parametrize(
    "persona, code",
    [
        ("anonymous", 401),
        ("other_member", 400),  # names provider A, which it does not belong to
        ("member", 201),
        ("staff", 400),  # staff are not a provider: models are registered by providers
        ("staff_without_permission", 400),
    ],
)
def test_only_a_member_may_register_a_model_for_its_provider(persona_clients, provider_a, persona, code):
    before = snapshot()
    response = persona_clients[persona].post(MODELS, {"name": "Claimed", "provider": "provider-a"}, format="json")
    if code == 201:
        assert response.status_code == 201
        assert ArenaModel.objects.get(name="Claimed").provider == provider_a
        return
    body = assert_json_error(response, code)
    if code == 400:
        assert set(body["errors"]) == {"provider"}
    assert snapshot() == before


def test_a_user_without_a_provider_is_told_so(staff_client):
    body = assert_json_error(staff_client.post(MODELS, {"name": "Orphan"}, format="json"), 400)
    assert body["detail"] == "provider: You are not a member of any provider."
    assert not ArenaModel.objects.exists()


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"name": "x" * 200}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": None}, "name"),
        ({"name": "nul\x00byte"}, "name"),
        ({"licence": "l" * 101}, "licence"),
        ({"description": "d" * 5001}, "description"),
        ({"endpoint_model_id": "m" * 201}, "endpoint_model_id"),
        ({"endpoint_api_key": "k" * 1001}, "endpoint_api_key"),
        ({"endpoint_base_url": "not a url"}, "endpoint_base_url"),
        ({"endpoint_base_url": "https://example.com/" + "p" * 300}, "endpoint_base_url"),
        ({"access_kind": "telepathy"}, "access_kind"),
        ({"knowledge_cutoff": "last spring"}, "knowledge_cutoff"),
        ({"heads_up_requested": "maybe"}, "heads_up_requested"),
        ({"provider": ["provider-a"]}, "provider"),
        ({"provider": "no-such-provider"}, "provider"),
    ],
)
def test_it_refuses_bad_fields_in_a_new_model_with_a_400(client_a, provider_a, changes, field):
    before = snapshot()
    body = assert_json_error(client_a.post(MODELS, {**NEW_MODEL, **changes}, format="json"), 400)
    assert set(body["errors"]) == {field}
    assert body["detail"].startswith(f"{field}: ")
    assert snapshot() == before


def test_a_new_model_needs_a_name(client_a, provider_a):
    body = assert_json_error(client_a.post(MODELS, {}, format="json"), 400)
    assert body["errors"] == {"name": ["This field is required."]}
    assert not ArenaModel.objects.exists()


def test_a_public_name_is_taken_only_once(client_a, provider_a):
    make_model(provider_a, name="Taken")
    before = snapshot()
    body = assert_json_error(client_a.post(MODELS, {"name": "Taken"}, format="json"), 400)
    assert set(body["errors"]) == {"name"}
    assert snapshot() == before


@pytest.mark.parametrize(
    "payload, content_type, code",
    [
        ("{not json", "application/json", 400),
        ('{"name": "half"', "application/json", 400),
        ("[" * 100_000, "application/json", 400),
        ('{"name": NaN}', "application/json", 400),
        ('["a list"]', "application/json", 400),
        ('"a string"', "application/json", 400),
        ("null", "application/json", 400),
        (b"\xff\xfe", "application/json", 400),
        ("name=Form", "application/x-www-form-urlencoded", 415),
        ("<model/>", "application/xml", 415),
    ],
)
def test_it_refuses_a_body_it_cannot_read_without_a_500(client_a, provider_a, payload, content_type, code):
    draft = make_model(provider_a)
    before = snapshot()
    assert_json_error(client_a.post(MODELS, payload, content_type=content_type), code)
    assert_json_error(client_a.patch(detail_url(draft), payload, content_type=content_type), code)
    assert_json_error(client_a.post(detail_url(draft, "submit"), payload, content_type=content_type), code)
    assert snapshot() == before


def test_a_body_over_the_upload_limit_answers_413_before_it_is_parsed(client_a, provider_a, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    draft = make_model(provider_a)
    before = snapshot()
    big = {"name": "Big", "description": "d" * 2000}
    for response in (
        client_a.post(MODELS, big, format="json"),
        client_a.patch(detail_url(draft), big, format="json"),
        client_a.post(detail_url(draft, "submit"), {"reason": "r" * 2000}, format="json"),
    ):
        assert assert_json_error(response, 413)["detail"] == "The request body is limited to 1000 bytes."
    assert snapshot() == before
    assert client_a.post(MODELS, {"name": "Small"}, format="json").status_code == 201


def test_a_name_taken_while_a_new_model_is_validated_is_a_400_not_a_500(client_a, provider_a, monkeypatch):
    validate = OwnArenaModelSerializer.validate

    def validate_while_another_request_takes_the_name(serializer, attrs):
        make_model(provider_a, name="Contested")  # another member of the same provider
        return validate(serializer, attrs)

    monkeypatch.setattr(OwnArenaModelSerializer, "validate", validate_while_another_request_takes_the_name)
    body = assert_json_error(client_a.post(MODELS, {"name": "Contested"}, format="json"), 400)
    assert body["errors"] == {"name": ["Provider A already has a model named 'Contested'."]}
    assert list(ArenaModel.objects.values_list("provider__slug", "name")) == [("provider-a", "Contested")]


# Patch --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "persona, code",
    [
        ("anonymous", 401),
        ("other_member", 404),
        ("member", 200),
        ("staff", 403),  # the lifecycle permission is not the permission to change models
        ("staff_without_permission", 404),
    ],
)
def test_only_the_owner_and_staff_may_edit_a_model(persona_clients, provider_a, persona, code):
    draft = make_model(provider_a, licence="Apache-2.0")
    listed = make_model(provider_a, S.LISTED, licence="Apache-2.0")
    client = persona_clients[persona]
    before = snapshot()
    for model in (draft, listed):  # the listed one is visible to everyone, but editable only by its owner
        response = client.patch(detail_url(model), {"licence": "MIT"}, format="json")
        if code == 200:
            assert response.status_code == 200
            assert response.json()["licence"] == "MIT"
            model.refresh_from_db()
            assert model.licence == "MIT"
        else:
            assert_json_error(response, code)
    if code != 200:
        assert snapshot() == before


def test_staff_with_the_change_permission_may_edit_any_model(provider_a):
    editor = UserFactory(username="editor@arenasite.example", staff=True)
    editor.user_permissions.add(Permission.objects.get(codename="change_arenamodel"))
    listed = make_model(provider_a, S.LISTED)
    response = token_client(editor).patch(detail_url(listed), {"licence": "MIT"}, format="json")
    assert response.status_code == 200
    listed.refresh_from_db()
    assert listed.licence == "MIT"


def test_an_owner_edits_its_draft(client_a, provider_a):
    draft = make_model(provider_a, name="Old name", endpoint_api_key="sk-old")
    response = client_a.patch(
        detail_url(draft),
        {
            "name": "New name",
            "description": "Now with more parameters.",
            "knowledge_cutoff": "2025-01-31",
            "heads_up_requested": True,
            "endpoint_base_url": "https://api.example.com/v2",
        },
        format="json",
    )
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "New name" and body["heads_up_requested"] is True
    assert body["endpoint_api_key_set"] is True and "endpoint_api_key" not in body
    draft.refresh_from_db()
    assert draft.name == "New name"
    assert draft.description == "Now with more parameters."
    assert draft.knowledge_cutoff.isoformat() == "2025-01-31"
    assert draft.endpoint_base_url == "https://api.example.com/v2"
    assert draft.endpoint_api_key == "sk-old", "a key that was not sent stays as it is"
    assert draft.status == S.DRAFT


def test_an_owner_replaces_and_clears_the_endpoint_key(client_a, provider_a):
    draft = make_model(provider_a, endpoint_api_key="sk-old")
    response = client_a.patch(detail_url(draft), {"endpoint_api_key": "sk-new"}, format="json")
    assert response.json()["endpoint_api_key_set"] is True
    assert b"sk-new" not in response.content
    draft.refresh_from_db()
    assert draft.endpoint_api_key == "sk-new"
    response = client_a.patch(detail_url(draft), {"endpoint_api_key": ""}, format="json")
    assert response.json()["endpoint_api_key_set"] is False
    draft.refresh_from_db()
    assert draft.endpoint_api_key == ""


@pytest.mark.parametrize("status", [S.SUBMITTED, S.INITIAL_RATING, S.LISTED])
def test_the_name_can_change_only_while_a_draft(client_a, provider_a, status):
    model = make_model(provider_a, status, name="Fixed")
    before = snapshot()
    body = assert_json_error(client_a.patch(detail_url(model), {"name": "Renamed"}, format="json"), 400)
    assert body["errors"] == {"name": ["The public name can only change while the model is a draft."]}
    assert snapshot() == before
    # Other fields stay editable, and sending the unchanged name is fine.
    response = client_a.patch(detail_url(model), {"name": "Fixed", "licence": "MIT"}, format="json")
    assert response.status_code == 200
    model.refresh_from_db()
    assert (model.name, model.licence, model.status) == ("Fixed", "MIT", status)


@pytest.mark.parametrize("status", [S.RETIRED, S.REJECTED, S.WITHDRAWN])
def test_a_model_that_left_the_arena_cannot_be_edited(client_a, staff_client, provider_a, status):
    model = make_model(provider_a, status)
    before = snapshot()
    body = assert_json_error(client_a.patch(detail_url(model), {"licence": "MIT"}, format="json"), 403)
    assert body["detail"] == f"A {model.get_status_display().lower()} model cannot be edited."
    assert_json_error(staff_client.patch(detail_url(model), {"licence": "MIT"}, format="json"), 403)
    assert snapshot() == before


def test_read_only_fields_in_an_edit_are_ignored(client_a, provider_a):
    model = make_model(provider_a, S.SUBMITTED)
    before = snapshot()
    response = client_a.patch(
        detail_url(model),
        {"status": "listed", "votes_counted": 99999, "codename": "mine-now", "id": 12345, "is_demo": True},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["status"] == "submitted"
    assert snapshot() == before


def test_a_model_cannot_move_to_another_provider(provider_a, provider_b, member_a):
    MembershipFactory(provider=provider_b, user=member_a)
    model = make_model(provider_a)
    client = token_client(member_a)
    before = snapshot()
    body = assert_json_error(client.patch(detail_url(model), {"provider": "provider-b"}, format="json"), 400)
    assert body["errors"] == {"provider": ["A model cannot move to another provider."]}
    assert snapshot() == before
    assert client.patch(detail_url(model), {"provider": "provider-a"}, format="json").status_code == 200


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"name": "x" * 200}, "name"),
        ({"name": ""}, "name"),
        ({"description": "d" * 5001}, "description"),
        ({"access_kind": "telepathy"}, "access_kind"),
        ({"endpoint_base_url": "ftp://example.com"}, "endpoint_base_url"),
        ({"knowledge_cutoff": "2024-13-45"}, "knowledge_cutoff"),
        ({"provider": "provider-b"}, "provider"),
    ],
)
def test_it_refuses_bad_fields_in_an_edit_with_a_400(client_a, provider_a, provider_b, changes, field):
    draft = make_model(provider_a)
    before = snapshot()
    body = assert_json_error(client_a.patch(detail_url(draft), changes, format="json"), 400)
    assert set(body["errors"]) == {field}
    assert snapshot() == before


def test_an_edit_cannot_take_a_name_already_in_use(client_a, provider_a, provider_b):
    make_model(provider_b, S.LISTED, name="Someone else's")
    draft = make_model(provider_a)
    before = snapshot()
    assert_json_error(client_a.patch(detail_url(draft), {"name": "Someone else's"}, format="json"), 400)
    assert snapshot() == before


def test_put_is_not_offered(client_a, provider_a):
    draft = make_model(provider_a)
    before = snapshot()
    body = assert_json_error(client_a.put(detail_url(draft), NEW_MODEL, format="json"), 405)
    assert body["detail"] == 'Method "PUT" not allowed.'
    assert snapshot() == before


def test_models_cannot_be_deleted_through_the_api(client_a, staff_client, provider_a):
    draft = make_model(provider_a)
    for client in (client_a, staff_client):
        assert_json_error(client.delete(detail_url(draft)), 405)
    assert ArenaModel.objects.filter(pk=draft.pk).exists()


def test_an_edit_writes_only_the_fields_it_was_sent(client_a, provider_a, staff, monkeypatch):
    """A transition or health check landing while an edit is validated is not undone by the edit."""
    model = make_model(provider_a, S.SUBMITTED)
    validate = OwnArenaModelSerializer.validate

    def validate_while_others_write(serializer, attrs):
        ArenaModel.objects.filter(pk=model.pk).update(
            status=S.INITIAL_RATING, endpoint_last_error="HTTP 502: bad gateway"
        )
        return validate(serializer, attrs)

    monkeypatch.setattr(OwnArenaModelSerializer, "validate", validate_while_others_write)
    response = client_a.patch(detail_url(model), {"licence": "MIT"}, format="json")
    assert response.status_code == 200
    model.refresh_from_db()
    assert model.licence == "MIT"
    assert model.status == S.INITIAL_RATING
    assert model.endpoint_last_error == "HTTP 502: bad gateway"


def test_a_name_taken_while_an_edit_is_validated_is_a_400_not_a_500(client_a, provider_a, monkeypatch):
    draft = make_model(provider_a, name="Mine")
    validate = OwnArenaModelSerializer.validate

    def validate_while_another_request_takes_the_name(serializer, attrs):
        make_model(provider_a, name="Contested")
        return validate(serializer, attrs)

    monkeypatch.setattr(OwnArenaModelSerializer, "validate", validate_while_another_request_takes_the_name)
    body = assert_json_error(client_a.patch(detail_url(draft), {"name": "Contested"}, format="json"), 400)
    assert body["errors"] == {"name": ["Provider A already has a model named 'Contested'."]}
    draft.refresh_from_db()
    assert draft.name == "Mine"


# Events -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "persona, code",
    [
        ("anonymous", 404),
        ("other_member", 404),
        ("member", 200),
        ("staff", 200),
        ("staff_without_permission", 404),
    ],
)
def test_the_lifecycle_log_is_for_the_owner_and_staff(persona_clients, provider_a, staff, persona, code):
    draft = make_model(provider_a)
    listed = make_model(provider_a, S.LISTED, staff=staff)
    client = persona_clients[persona]
    for model in (draft, listed):  # hidden, and publicly visible
        response = client.get(detail_url(model, "events"))
        if code == 404:
            assert_json_error(response, 404)
        else:
            assert response.status_code == 200
            assert [event["action"] for event in response.json()] == [event.action for event in model.events.all()]


def test_the_log_tells_every_step(client_a, provider_a, member_a, staff):
    model = make_model(provider_a, S.INITIAL_RATING, staff=staff)
    client_a.post(detail_url(model, "withdraw"), {"reason": "Found a bug."}, format="json")
    response = client_a.get(detail_url(model, "events"))
    assert response.status_code == 200
    events = response.json()
    assert [(e["action"], e["kind"], e["from_status"], e["to_status"]) for e in events] == [
        ("submit", "done", "draft", "submitted"),
        ("admit", "done", "submitted", "initial_rating"),
        ("withdraw", "done", "initial_rating", "withdrawn"),
    ]
    assert [e["reason"] for e in events] == ["set-up", "set-up", "Found a bug."]
    # Providers see that staff acted, not which staff member; their own colleagues by name.
    assert [e["actor"] for e in events] == ["staff", "staff", member_a.get_username()]
    stored = list(model.events.all())
    assert [e["id"] for e in events] == [e.pk for e in stored]
    assert [parse_time(e["effective_at"]) for e in events] == [e.effective_at for e in stored]
    assert [parse_time(e["created_at"]) for e in events] == [e.created_at for e in stored]
    assert set(events[0]) == {
        "id",
        "action",
        "kind",
        "from_status",
        "to_status",
        "actor",
        "reason",
        "rule",
        "effective_at",
        "created_at",
    }


def test_staff_see_which_staff_member_acted(staff_client, provider_a, staff):
    model = make_model(provider_a, S.SUBMITTED, staff=staff)
    events = staff_client.get(detail_url(model, "events")).json()
    assert [e["actor"] for e in events] == [staff.get_username()]


def test_the_scheduler_shows_as_no_actor(client_a, provider_a):
    model = make_model(provider_a, S.SUBMITTED)  # set up without an actor, as the scheduler acts
    assert client_a.get(detail_url(model, "events")).json()[0]["actor"] is None


def test_the_log_is_read_only(client_a, staff_client, provider_a):
    model = make_model(provider_a, S.SUBMITTED)
    before = snapshot()
    for client in (client_a, staff_client):
        assert_json_error(client.post(detail_url(model, "events"), {"action": "publish"}, format="json"), 405)
    assert snapshot() == before


# Transitions: who may take which action -----------------------------------------------------------

# Where each action starts (a model is walked there first) and where it leads.
MOVES = {
    "submit": (S.DRAFT, S.SUBMITTED),
    "withdraw": (S.INITIAL_RATING, S.WITHDRAWN),
    "request-retirement": (S.LISTED, S.RETIRED),
    "admit": (S.SUBMITTED, S.INITIAL_RATING),
    "reject": (S.SUBMITTED, S.REJECTED),
    "publish": (S.INITIAL_RATING, S.LISTED),
    "retire": (S.LISTED, S.RETIRED),
}

# The answer each persona gets for a provider action and for a staff action.
PROVIDER_ACTION_CODES = {
    "anonymous": 401,
    "other_member": 404,
    "member": 200,
    "staff": 200,
    "staff_without_permission": 404,  # staff without a model permission do not see others' models
}
STAFF_ACTION_CODES = {
    "anonymous": 401,
    "other_member": 404,
    "member": 403,
    "staff": 200,
    "staff_without_permission": 404,
}


def model_ready_for(provider, action: str) -> ArenaModel:
    start, _ = MOVES[action]
    model = make_model(provider, start, votes=1000)
    if start == S.LISTED:
        # Past the 14-day window, so a retirement happens at once (the window has its own tests).
        ArenaModel.objects.filter(pk=model.pk).update(listed_at=clock.now() - timedelta(days=30))
        model.refresh_from_db()
    return model


def test_the_action_tables_cover_every_action():
    assert set(MOVES) == set(Action.values)
    assert {a for a in MOVES if a in PROVIDER_ACTIONS} == {"submit", "withdraw", "request-retirement"}


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("action", list(MOVES))
def test_each_action_is_open_only_to_those_who_may_take_it(persona_clients, persona_users, provider_a, persona, action):
    codes = PROVIDER_ACTION_CODES if action in PROVIDER_ACTIONS else STAFF_ACTION_CODES
    code = codes[persona]
    model = model_ready_for(provider_a, action)
    start, target = MOVES[action]
    before = snapshot()

    response = persona_clients[persona].post(detail_url(model, action), {"reason": "Policy."}, format="json")

    if code != 200:
        body = assert_json_error(response, code)
        assert set(body) == {"detail"}
        assert snapshot() == before
        if code == 403:
            assert "lifecycle permission" in body["detail"] and f"'{action}'" in body["detail"]
        if code == 401:
            assert body["detail"] == "Authentication credentials were not provided."
        return
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"changed", "scheduled", "effective_at", "model"}
    assert body["changed"] is True and body["scheduled"] is False
    assert body["model"]["id"] == model.pk and body["model"]["status"] == target
    assert "endpoint_api_key" not in body["model"]
    model.refresh_from_db()
    assert model.status == target
    event = model.events.last()
    assert (event.action, event.kind, event.from_status, event.to_status) == (action, "done", start, target)
    assert event.actor == persona_users[persona]
    assert event.reason == "Policy."
    assert parse_time(body["effective_at"]) == event.effective_at
    assert LifecycleEvent.objects.count() == len(before[1]) + 1


@pytest.mark.parametrize("action", list(MOVES))
def test_a_member_of_another_provider_gets_404_even_for_a_listed_model(client_b, provider_a, action):
    listed = make_model(provider_a, S.LISTED)
    assert client_b.get(detail_url(listed)).status_code == 200  # it is public...
    before = snapshot()
    assert_json_error(client_b.post(detail_url(listed, action), {"reason": "Mine."}, format="json"), 404)
    assert snapshot() == before  # ...but not this caller's to change


def test_a_member_refused_a_staff_action_is_told_why(client_a, provider_a):
    model = make_model(provider_a, S.SUBMITTED)
    body = assert_json_error(client_a.post(detail_url(model, "admit"), {}, format="json"), 403)
    assert body["detail"] == "Only staff with the lifecycle permission may 'admit' this model."


def test_staff_without_the_permission_are_told_who_may_submit(provider_a):
    viewer = UserFactory(username="viewer@arenasite.example", staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_arenamodel"))
    draft = make_model(provider_a)
    body = assert_json_error(token_client(viewer).post(detail_url(draft, "submit"), {}, format="json"), 403)
    assert body["detail"] == (
        "Only members of Provider A and staff with the lifecycle permission may 'submit' this model."
    )


def test_a_forbidden_caller_gets_403_before_its_body_is_read(client_a, provider_a):
    model = make_model(provider_a, S.SUBMITTED)
    response = client_a.post(detail_url(model, "admit"), "{broken", content_type="application/json")
    assert_json_error(response, 403)


def test_an_anonymous_caller_gets_401_even_for_a_model_that_does_not_exist(anon_client):
    assert_json_error(anon_client.post(detail_url(HUGE_ID, "submit"), {}, format="json"), 401)


def test_a_transition_without_a_body_uses_an_empty_reason(client_a, provider_a):
    draft = make_model(provider_a)
    response = client_a.post(detail_url(draft, "submit"))
    assert response.status_code == 200
    assert draft.events.get().reason == ""


def test_the_reason_is_stored_without_surrounding_whitespace(client_a, provider_a):
    draft = make_model(provider_a)
    client_a.post(detail_url(draft, "submit"), {"reason": "  Ready.  "}, format="json")
    assert draft.events.get().reason == "Ready."


# Transitions: refusals, idempotency and the 14-day rule -------------------------------------------


def assert_refused(client, model, action: str, rule: str, *, reason: str = "Because.") -> dict:
    before = snapshot()
    response = client.post(detail_url(model, action), {"reason": reason}, format="json")
    body = assert_json_error(response, 409)
    assert set(body) == {"rule", "detail"}
    assert body["rule"] == rule
    assert snapshot() == before, "a refusal must change nothing"
    return body


def test_it_refuses_an_action_that_does_not_fit_the_status(staff_client, provider_a):
    draft = make_model(provider_a, name="Early")
    body = assert_refused(staff_client, draft, "admit", "invalid_state")
    assert body["detail"] == "'admit' applies to a model that is submitted; Early is draft."


def test_a_listed_model_cannot_be_withdrawn_only_retired(client_a, provider_a):
    listed = make_model(provider_a, S.LISTED)
    body = assert_refused(client_a, listed, "withdraw", "listed_cannot_withdraw")
    assert "14 days" in body["detail"]


@pytest.mark.parametrize("action", ["reject", "withdraw", "request-retirement", "retire"])
def test_taking_a_model_out_needs_a_reason(staff_client, provider_a, action):
    model = model_ready_for(provider_a, action)
    body = assert_refused(staff_client, model, action, "reason_required", reason="   ")
    assert body["detail"] == f"'{action}' needs a reason for the public record."


def test_it_refuses_to_publish_without_enough_votes(staff_client, provider_a):
    model = make_model(provider_a, S.INITIAL_RATING, votes=999)
    body = assert_refused(staff_client, model, "publish", "listing_min_votes")
    assert "1000" in body["detail"] and "999" in body["detail"]


def test_it_refuses_to_admit_a_private_model(staff_client, provider_a):
    model = make_model(provider_a, S.SUBMITTED, access_kind=ArenaModel.AccessKind.PRIVATE)
    assert_refused(staff_client, model, "admit", "third_party_access")


@pytest.mark.parametrize(
    "body",
    [
        {"reason": "r" * 3000},
        {"reason": "r" * 2001},
        {"reason": None},
        {"reason": ["a", "list"]},
        {"reason": {"an": "object"}},
        {"reason": "nul\x00byte"},
    ],
)
def test_it_refuses_a_bad_reason_with_a_400(staff_client, provider_a, body):
    model = make_model(provider_a, S.SUBMITTED)
    before = snapshot()
    response = assert_json_error(staff_client.post(detail_url(model, "reject"), body, format="json"), 400)
    assert set(response["errors"]) == {"reason"}
    assert response["detail"].startswith("reason: ")
    assert snapshot() == before


def test_a_reason_of_the_maximum_length_is_accepted(staff_client, provider_a):
    model = make_model(provider_a, S.SUBMITTED)
    response = staff_client.post(detail_url(model, "reject"), {"reason": "r" * 2000}, format="json")
    assert response.status_code == 200
    assert model.events.last().reason == "r" * 2000


def test_asking_again_for_what_is_done_changes_nothing(client_a, provider_a):
    draft = make_model(provider_a)
    assert client_a.post(detail_url(draft, "submit"), {}, format="json").json()["changed"] is True
    before = snapshot()
    response = client_a.post(detail_url(draft, "submit"), {}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["changed"], body["scheduled"], body["effective_at"]) == (False, False, None)
    assert body["model"]["status"] == "submitted"
    assert snapshot() == before


def test_a_retirement_inside_the_listing_window_is_scheduled_for_its_end(client_a, provider_a, member_a):
    listed = make_model(provider_a, S.LISTED)
    window_end = listed.listed_at + timedelta(days=14)
    with time_machine.travel(listed.listed_at + timedelta(days=3), tick=False):
        response = client_a.post(detail_url(listed, "request-retirement"), {"reason": "Superseded."}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["changed"] is True and body["scheduled"] is True
    assert parse_time(body["effective_at"]) == window_end
    assert body["model"]["status"] == "listed"
    assert parse_time(body["model"]["retire_after"]) == window_end
    listed.refresh_from_db()
    assert listed.status == S.LISTED and listed.retire_after == window_end and listed.retired_at is None
    event = listed.events.last()
    assert (event.action, event.kind, event.from_status, event.to_status) == (
        "request-retirement",
        "scheduled",
        "listed",
        "retired",
    )
    assert event.effective_at == window_end and event.actor == member_a and event.reason == "Superseded."

    # Asking again inside the window changes nothing; the scheduler retires it when the window ends.
    before = snapshot()
    with time_machine.travel(window_end - timedelta(seconds=1), tick=False):
        again = client_a.post(detail_url(listed, "request-retirement"), {"reason": "Still."}, format="json")
        assert (again.json()["changed"], again.json()["scheduled"]) == (False, False)
        assert snapshot() == before
    with time_machine.travel(window_end, tick=False):
        carry_out_due()
    listed.refresh_from_db()
    assert listed.status == S.RETIRED and listed.retired_at == window_end
    log = client_a.get(detail_url(listed, "events")).json()
    assert [(e["kind"], e["to_status"], e["reason"]) for e in log[-2:]] == [
        ("scheduled", "retired", "Superseded."),
        ("done", "retired", "Superseded."),
    ]


def test_staff_retirement_inside_the_window_is_scheduled_too(staff_client, provider_a):
    listed = make_model(provider_a, S.LISTED)
    with time_machine.travel(listed.listed_at + timedelta(days=13, hours=23), tick=False):
        body = staff_client.post(detail_url(listed, "retire"), {"reason": "Rules."}, format="json").json()
    assert body["scheduled"] is True
    assert parse_time(body["effective_at"]) == listed.listed_at + timedelta(days=14)
    listed.refresh_from_db()
    assert listed.status == S.LISTED


def test_a_retirement_after_the_window_happens_at_once(client_a, provider_a):
    listed = make_model(provider_a, S.LISTED)
    with time_machine.travel(listed.listed_at + timedelta(days=14), tick=False):
        body = client_a.post(detail_url(listed, "request-retirement"), {"reason": "Done."}, format="json").json()
    assert (body["changed"], body["scheduled"]) == (True, False)
    assert body["model"]["status"] == "retired"
    listed.refresh_from_db()
    assert listed.status == S.RETIRED


def test_a_heads_up_schedules_the_listing_a_day_later(staff_client, provider_a):
    model = make_model(provider_a, S.INITIAL_RATING, votes=1000, heads_up_requested=True)
    decided = clock.now()
    with time_machine.travel(decided, tick=False):
        body = staff_client.post(detail_url(model, "publish"), {}, format="json").json()
    assert body["scheduled"] is True and body["changed"] is True
    assert parse_time(body["effective_at"]) == decided + timedelta(days=1)
    assert body["model"]["status"] == "initial_rating"
    assert parse_time(body["model"]["list_after"]) == decided + timedelta(days=1)


# Paths and methods that do not exist --------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/models/{pk}/explode/",
        "/api/v1/models/{pk}/request_retirement/",
        "/api/v1/models/{pk}/submit",
        "/api/v1/models",
        "/api/v1/nothing/",
        "/api/v2/models/",
    ],
)
def test_an_unknown_path_answers_a_json_404_and_changes_nothing(client_a, staff_client, provider_a, path):
    model = make_model(provider_a)
    before = snapshot()
    for client in (client_a, staff_client):
        for method in (client.get, client.post):
            body = assert_json_error(method(path.format(pk=model.pk), {"reason": "x"}, format="json"), 404)
            assert body["detail"].startswith("No API endpoint at ")
    assert snapshot() == before


def test_a_path_without_the_final_slash_is_pointed_out(client_a):
    body = assert_json_error(client_a.get("/api/v1/models"), 404)
    assert body["detail"] == "No API endpoint at /api/v1/models. API paths end with a slash."


@pytest.mark.parametrize("action", list(MOVES))
def test_actions_answer_only_post(client_a, provider_a, action):
    model = make_model(provider_a)
    before = snapshot()
    for method in (client_a.get, client_a.patch, client_a.put, client_a.delete):
        assert_json_error(method(detail_url(model, action)), 405)
    assert snapshot() == before


def test_options_describes_what_a_new_model_takes(client_a, anon_client):
    response = client_a.options(MODELS)
    assert response.status_code == 200
    post = response.json()["actions"]["POST"]
    assert post["name"]["read_only"] is False and post["name"]["max_length"] == 100
    assert post["endpoint_api_key"]["read_only"] is False
    assert post["status"]["read_only"] is True
    assert "actions" not in anon_client.options(MODELS).json()  # anonymous may not create

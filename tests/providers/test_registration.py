"""providers.registration: registering and editing a model, the one service the API and the
portal both call (their own tests cover the answers each gives)."""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth.models import Permission
from django.db import close_old_connections, connection, transaction

from providers import registration
from providers.lifecycle import Action, TransitionRefused, transition
from providers.models import ArenaModel, ChangeRequest

from ..conftest import make_model
from ..factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db
S = ArenaModel.Status


def test_a_member_registers_a_draft_of_its_provider(provider_a, member_a):
    model = registration.model_register(
        provider=provider_a, user=member_a, values={"name": "Nova", "endpoint_api_key": "sk-1"}
    )
    model.refresh_from_db()
    assert (model.provider, model.name, model.status, model.endpoint_api_key) == (provider_a, "Nova", S.DRAFT, "sk-1")
    assert not model.events.exists()


def test_only_a_member_registers_a_model_for_a_provider(provider_a, member_b, staff):
    for user in (member_b, staff):
        with pytest.raises(registration.EditRefused):
            registration.model_register(provider=provider_a, user=user, values={"name": "Claimed"})
    assert not ArenaModel.objects.exists()


def test_the_provider_is_named_among_ones_own_in_the_same_words_whether_another_exists_or_not(
    provider_a, provider_b, member_a
):
    assert registration.provider_for(user=member_a, slug=None) == provider_a
    assert registration.provider_for(user=member_a, slug="provider-a") == provider_a
    refusals = []
    for slug in ("provider-b", "no-such-provider"):
        with pytest.raises(registration.InvalidFields) as refused:
            registration.provider_for(user=member_a, slug=slug)
        refusals.append(refused.value.errors["provider"][0].replace(slug, "<slug>"))
    assert refusals[0] == refusals[1]


def test_a_name_taken_between_the_check_and_the_insert_is_refused_as_the_check_would(provider_a, member_a, monkeypatch):
    check = registration._check

    def check_then_another_request_takes_the_name(values, **kwargs):
        check(values, **kwargs)
        ArenaModel.objects.create(provider=provider_a, name="Contested")

    monkeypatch.setattr(registration, "_check", check_then_another_request_takes_the_name)
    with transaction.atomic():  # the refusal leaves the caller's transaction usable
        with pytest.raises(registration.InvalidFields) as refused:
            registration.model_register(provider=provider_a, user=member_a, values={"name": "contested"})
        assert ArenaModel.objects.count() == 1
    assert refused.value.errors == {"name": ["Provider A already has a model named 'contested'."]}


def test_every_field_refusal_is_given_at_once(provider_a, member_a):
    make_model(provider_a, name="Taken")
    with pytest.raises(registration.InvalidFields) as refused:
        registration.model_register(
            provider=provider_a, user=member_a, values={"name": "Taken", "endpoint_base_url": "ftp://a.example/v1"}
        )
    assert set(refused.value.errors) == {"name", "endpoint_base_url"}
    assert refused.value.errors["endpoint_base_url"] == ["The endpoint must be an http:// or https:// URL."]


def test_only_fields_a_provider_sets_are_taken(provider_a, member_a):
    model = make_model(provider_a)
    with pytest.raises(ValueError, match="status"):
        registration.model_update(model_id=model.pk, user=member_a, values={"status": S.LISTED})
    model.refresh_from_db()
    assert model.status == S.DRAFT


def test_an_edit_writes_only_the_fields_it_was_given(provider_a, member_a):
    model = make_model(provider_a, name="Mine", licence="Apache-2.0", description="Old.")
    outcome = registration.model_update(model_id=model.pk, user=member_a, values={"licence": "MIT"})
    model.refresh_from_db()
    assert (outcome.model.licence, model.licence, model.description) == ("MIT", "MIT", "Old.")
    assert outcome.change is None


@pytest.mark.parametrize("status", [S.RETIRED, S.REJECTED, S.WITHDRAWN])
def test_no_one_edits_a_model_that_left_the_arena(provider_a, member_a, status):
    editor = UserFactory(username="editor@arenasite.example", staff=True)
    editor.user_permissions.add(Permission.objects.get(codename="change_arenamodel"))
    model = make_model(provider_a, status, licence="Apache-2.0")
    for user in (member_a, editor):
        with pytest.raises(registration.EditRefused, match="cannot be edited"):
            registration.model_update(model_id=model.pk, user=user, values={"licence": "MIT"})
    model.refresh_from_db()
    assert model.licence == "Apache-2.0"


def test_members_and_staff_who_change_models_edit_them_and_no_one_else(provider_a, member_a, member_b, staff):
    model = make_model(provider_a, S.LISTED)
    for user in (member_b, staff):  # staff here may move models, not change them
        with pytest.raises(registration.EditRefused):
            registration.model_update(model_id=model.pk, user=user, values={"licence": "MIT"})
    editor = UserFactory(username="editor@arenasite.example", staff=True)
    editor.user_permissions.add(Permission.objects.get(codename="change_arenamodel"))
    registration.model_update(model_id=model.pk, user=editor, values={"licence": "MIT"})
    model.refresh_from_db()
    assert model.licence == "MIT"


def test_a_model_keeps_its_provider(provider_a, provider_b, member_a):
    MembershipFactory(provider=provider_b, user=member_a)
    model = make_model(provider_a)
    with pytest.raises(registration.InvalidFields) as refused:
        registration.model_update(model_id=model.pk, user=member_a, values={}, provider_slug="provider-b")
    assert refused.value.errors == {"provider": ["A model cannot move to another provider."]}
    registration.model_update(model_id=model.pk, user=member_a, values={}, provider_slug="provider-a")


def test_an_endpoint_change_of_a_model_in_the_pool_waits_for_staff(provider_a, member_a):
    model = make_model(provider_a, S.INITIAL_RATING, endpoint_base_url="https://a.example/v1", endpoint_model_id="m")
    outcome = registration.model_update(
        model_id=model.pk, user=member_a, values={"endpoint_base_url": "https://b.example/v1"}
    )
    model.refresh_from_db()
    assert model.endpoint_base_url == "https://a.example/v1"
    assert outcome.change is not None and outcome.change.state == ChangeRequest.State.PENDING
    with pytest.raises(TransitionRefused) as refused:
        registration.model_update(
            model_id=model.pk, user=member_a, values={"endpoint_base_url": "https://c.example/v1"}
        )
    assert refused.value.rule == "change_pending"
    registration.change_withdraw(model_id=model.pk, user=member_a)
    assert not ChangeRequest.objects.filter(state=ChangeRequest.State.PENDING).exists()


def test_only_those_who_may_edit_withdraw_a_pending_change(provider_a, member_a, member_b):
    model = make_model(provider_a, S.INITIAL_RATING, endpoint_base_url="https://a.example/v1", endpoint_model_id="m")
    registration.model_update(model_id=model.pk, user=member_a, values={"endpoint_base_url": "https://b.example/v1"})
    with pytest.raises(registration.EditRefused):
        registration.change_withdraw(model_id=model.pk, user=member_b)
    assert ChangeRequest.objects.get().state == ChangeRequest.State.PENDING


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
def test_an_edit_is_judged_against_the_status_a_transition_holding_the_row_leaves(provider_a, member_a, staff):
    """A rename waits behind an admission holding the row, then is judged against the new status."""
    model = make_model(provider_a, name="Old")
    submitted, release = threading.Event(), threading.Event()
    result: dict[str, object] = {}

    def submit_and_hold() -> None:
        try:
            with transaction.atomic():
                transition(model_id=model.pk, action=Action.SUBMIT, actor=member_a)
                submitted.set()
                release.wait(10)
        finally:
            close_old_connections()
            connection.close()

    def rename() -> None:
        try:
            registration.model_update(model_id=model.pk, user=member_a, values={"name": "New"})
        except registration.InvalidFields as exc:
            result["errors"] = exc.errors
        finally:
            close_old_connections()
            connection.close()

    holder = threading.Thread(target=submit_and_hold)
    holder.start()
    assert submitted.wait(10)
    editor = threading.Thread(target=rename)
    editor.start()
    editor.join(0.5)
    assert editor.is_alive(), "the edit must wait for the row lock"
    release.set()
    holder.join(10)
    editor.join(10)
    assert result["errors"] == {"name": ["The public name can only change while the model is a draft."]}
    model.refresh_from_db()
    assert (model.name, model.status) == ("Old", S.SUBMITTED)

"""Public names: registering one reveals nothing about other providers' hidden models; the
arena's own words (anonymous, codenames) are reserved; a clash is settled at listing."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.db import IntegrityError, transaction
from django.urls import reverse

from arenasite import clock
from providers import names
from providers.lifecycle import Action, TransitionRefused, carry_out_due, transition
from providers.models import ArenaModel

from ..conftest import make_model
from ..factories import ArenaModelFactory
from .test_admin import change_form_data, staff_admin  # noqa: F401  (the admin fixture)

pytestmark = pytest.mark.django_db
S = ArenaModel.Status
MODELS = "/api/v1/models/"
HIDDEN = [S.DRAFT, S.SUBMITTED, S.REJECTED, S.INITIAL_RATING, S.WITHDRAWN]


def _shape(response) -> tuple[int, list[str]]:
    """What a prober learns from an answer: its status and the fields it carries."""
    body = response.json()
    return response.status_code, sorted(body)


# --- probing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", HIDDEN)
def test_registering_the_name_of_another_providers_hidden_model_answers_as_a_free_name_does(
    client_b, provider_a, provider_b, status
):
    make_model(provider_a, status, name="Unannounced-X")
    taken = client_b.post(MODELS, {"name": "Unannounced-X"}, format="json")
    free = client_b.post(MODELS, {"name": "Never-used-Y"}, format="json")
    assert taken.status_code == 201, taken.content
    assert _shape(taken) == _shape(free)
    assert b"Provider A" not in taken.content and b"provider-a" not in taken.content


def test_renaming_a_draft_to_another_providers_hidden_name_answers_as_a_free_name_does(
    client_b, provider_a, provider_b
):
    make_model(provider_a, S.INITIAL_RATING, name="Unannounced-X")
    draft = make_model(provider_b, name="Mine")
    taken = client_b.patch(f"{MODELS}{draft.pk}/", {"name": "unannounced-x"}, format="json")
    assert taken.status_code == 200, taken.content
    free = client_b.patch(f"{MODELS}{draft.pk}/", {"name": "Never-used-Y"}, format="json")
    assert _shape(taken) == _shape(free)


@pytest.mark.parametrize("status", [S.LISTED, S.RETIRED])
def test_the_name_of_a_public_model_is_refused_in_any_letter_case(client_b, provider_a, provider_b, status):
    make_model(provider_a, status, name="Aurora")
    response = client_b.post(MODELS, {"name": "AURORA"}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {"name": ["A public model is already named 'AURORA'."]}
    assert ArenaModel.objects.filter(provider=provider_b).count() == 0


def test_a_provider_cannot_hold_one_name_twice_in_any_letter_case(client_a, provider_a):
    make_model(provider_a, name="Aurora")
    response = client_a.post(MODELS, {"name": "aurora"}, format="json")
    assert response.json()["errors"] == {"name": ["Provider A already has a model named 'aurora'."]}
    with pytest.raises(IntegrityError), transaction.atomic():
        ArenaModelFactory(provider=provider_a, name="AURORA")


# --- reserved names --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "anonymous",
        "Anonymous",
        " ANONYMOUS ",
        "ａｎｏｎｙｍｏｕｓ",
        "calm-newt-43",
        "Calm Newt 43",
        "amber_yak_7",
        "Zesty-Koala-00",
    ],
)
def test_anonymous_and_codename_shaped_names_are_reserved(client_a, provider_a, name):
    response = client_a.post(MODELS, {"name": name}, format="json")
    assert response.status_code == 400, response.content
    assert set(response.json()["errors"]) == {"name"}
    assert "reserved" in response.json()["errors"]["name"][0] or "codename" in response.json()["errors"]["name"][0]
    assert not ArenaModel.objects.exists()


def test_a_live_codename_is_reserved_even_outside_the_codename_words(client_a, provider_a, provider_b):
    other = ArenaModelFactory(provider=provider_b, codename="legacy-model-x")
    response = client_a.post(MODELS, {"name": other.codename.upper()}, format="json")
    assert response.status_code == 400
    assert "codename" in response.json()["errors"]["name"][0]


def test_every_generated_codename_is_a_reserved_name(provider_a):
    model = make_model(provider_a, S.INITIAL_RATING)
    assert names.reserved_refusal(model.codename)
    assert names.reserved_refusal(model.codename.replace("-", " ").title())


@pytest.mark.parametrize("name", ["calm-newt", "llama-3-70b", "Anonymous Llama", "newt-calm-43", "aurora-7b"])
def test_names_that_only_resemble_the_reserved_ones_are_free(client_a, provider_a, name):
    assert client_a.post(MODELS, {"name": name}, format="json").status_code == 201


def test_an_edit_cannot_take_a_reserved_name(client_a, provider_a):
    draft = make_model(provider_a, name="Mine")
    response = client_a.patch(f"{MODELS}{draft.pk}/", {"name": "anonymous"}, format="json")
    assert response.status_code == 400
    draft.refresh_from_db()
    assert draft.name == "Mine"


def test_the_admin_form_refuses_a_reserved_name(staff_admin, provider_a):  # noqa: F811
    model = make_model(provider_a, S.SUBMITTED, name="Mine")
    url = reverse("admin:providers_arenamodel_change", args=[model.pk])
    response = staff_admin.post(url, change_form_data(model, name="silver-otter-12"))
    assert response.status_code == 200
    assert "codename" in str(response.context["adminform"].form.errors["name"])
    model.refresh_from_db()
    assert model.name == "Mine"


# --- a clash is settled at listing -----------------------------------------------------------


def test_of_two_hidden_models_with_one_name_the_first_listed_keeps_it(provider_a, provider_b, staff):
    first = make_model(provider_a, S.INITIAL_RATING, votes=1000, name="Aurora")
    second = make_model(provider_b, S.INITIAL_RATING, votes=1000, name="aurora")
    transition(model_id=first.pk, action=Action.PUBLISH, actor=staff)

    with pytest.raises(TransitionRefused) as refused:
        transition(model_id=second.pk, action=Action.PUBLISH, actor=staff)
    assert refused.value.rule == "name_taken"
    assert "Provider A's" in refused.value.detail and second.codename in refused.value.detail
    second.refresh_from_db()
    assert (second.status, second.listed_at) == (S.INITIAL_RATING, None)
    assert not second.events.filter(action=Action.PUBLISH).exists()

    ArenaModel.objects.filter(pk=second.pk).update(name="Aurora B")  # staff rename it in admin
    assert transition(model_id=second.pk, action=Action.PUBLISH, actor=staff).model.status == S.LISTED


def test_a_listing_refused_for_its_name_answers_409_with_the_rule(staff_client, provider_a, provider_b):
    make_model(provider_a, S.LISTED, name="Shared")
    # Held before the public one was listed (the rule at registration would refuse it now).
    hidden = make_model(provider_b, S.INITIAL_RATING, votes=1000, name="Shared-tmp")
    ArenaModel.objects.filter(pk=hidden.pk).update(name="Shared")
    response = staff_client.post(f"{MODELS}{hidden.pk}/publish/", {}, format="json")
    assert response.status_code == 409
    assert response.json()["rule"] == "name_taken"


def test_a_scheduled_listing_is_not_carried_out_once_its_name_became_public(provider_a, provider_b, staff):
    waiting = make_model(provider_a, S.INITIAL_RATING, votes=1000, name="Nova", heads_up_requested=True)
    transition(model_id=waiting.pk, action=Action.PUBLISH, actor=staff)
    rival = make_model(provider_b, S.INITIAL_RATING, votes=1000, name="NOVA")
    transition(model_id=rival.pk, action=Action.PUBLISH, actor=staff)
    with time_machine.travel(clock.now() + timedelta(days=2)):
        assert carry_out_due() == []
    waiting.refresh_from_db()
    assert waiting.status == S.INITIAL_RATING


def test_the_database_refuses_two_public_models_with_one_name_when_two_listings_race(
    provider_a, provider_b, staff, monkeypatch
):
    first = make_model(provider_a, S.LISTED, name="Racer")
    second = make_model(provider_b, S.INITIAL_RATING, votes=1000, name="racer")
    real = names.public_name_clash
    calls = []

    def miss_the_first_look(model):
        calls.append(model.pk)
        return None if len(calls) == 1 else real(model)  # the other listing commits in between

    monkeypatch.setattr(names, "public_name_clash", miss_the_first_look)
    with pytest.raises(TransitionRefused) as refused:
        transition(model_id=second.pk, action=Action.PUBLISH, actor=staff)
    assert refused.value.rule == "name_taken"
    second.refresh_from_db()
    assert second.status == S.INITIAL_RATING and first.pk != second.pk

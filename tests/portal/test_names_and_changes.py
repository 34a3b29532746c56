"""The portal applies the API's name rules and its staff review of access and endpoint changes:
the same services decide (providers.names, providers.changes)."""

from __future__ import annotations

import pytest
from django.test import Client

from providers.models import ArenaModel, ChangeRequest

from ..conftest import make_model
from .test_models import BASE, page, registration

pytestmark = pytest.mark.django_db
S = ArenaModel.Status


@pytest.fixture
def client_a_web(member_a) -> Client:
    client = Client()
    client.force_login(member_a)
    return client


def test_registering_another_providers_hidden_name_is_accepted_like_any_free_name(client_a_web, provider_b):
    make_model(provider_b, S.INITIAL_RATING, name="aurora-7b")
    response = client_a_web.post(f"{BASE}/models/new/", registration())
    assert response.status_code == 302
    assert ArenaModel.objects.filter(name="aurora-7b").count() == 2


@pytest.mark.parametrize("name", ["Anonymous", "misty-lynx-08"])
def test_reserved_names_are_refused_in_the_portal(client_a_web, provider_a, name):
    response = client_a_web.post(f"{BASE}/models/new/", registration(name=name))
    assert response.status_code == 400
    assert response.context["form"].errors["name"]
    assert not ArenaModel.objects.exists()


def test_an_endpoint_change_of_a_listed_model_waits_for_staff_and_can_be_withdrawn(client_a_web, provider_a):
    model = make_model(
        provider_a,
        S.LISTED,
        name="keyed",
        endpoint_base_url="https://api.a.example/v1",
        endpoint_model_id="aurora-7b-chat",
        endpoint_api_key="sk-old",
    )
    data = registration(name="keyed", endpoint_model_id="another-model", endpoint_api_key="")
    response = client_a_web.post(page(model, "edit/"), data, follow=True)
    assert response.status_code == 200
    assert "waits for staff" in response.content.decode()
    model.refresh_from_db()
    assert (model.endpoint_model_id, model.endpoint_api_key) == ("aurora-7b-chat", "sk-old")
    detail = client_a_web.get(page(model)).content.decode()
    assert "Change waiting for staff" in detail and "another-model" in detail

    withdrawn = client_a_web.post(page(model, "change/withdraw/"))
    assert withdrawn.status_code == 302
    assert ChangeRequest.objects.get().state == ChangeRequest.State.WITHDRAWN
    assert "Change waiting for staff" not in client_a_web.get(page(model)).content.decode()
    again = client_a_web.post(page(model, "change/withdraw/"))
    assert again.status_code == 409


def test_making_a_listed_model_private_is_refused_with_the_rule_sentence(client_a_web, provider_a):
    model = make_model(
        provider_a, S.LISTED, name="keyed", endpoint_base_url="https://api.a.example/v1", endpoint_model_id="m"
    )
    data = registration(name="keyed", access_kind="private", endpoint_model_id="m", endpoint_api_key="")
    response = client_a_web.post(page(model, "edit/"), data)
    assert response.status_code == 409
    assert "third parties can reach" in response.content.decode()
    model.refresh_from_db()
    assert model.access_kind == "open_weights"
    assert not ChangeRequest.objects.exists()

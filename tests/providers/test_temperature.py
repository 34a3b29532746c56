"""A model's sampling temperature: set by its provider (API, portal) or staff (admin), checked
everywhere it is set, and sent with each battle call (tests/battles/test_clients.py)."""

import pytest
from django.db import IntegrityError, transaction
from django.test import Client

from providers.models import ArenaModel

from ..conftest import make_model
from .test_admin import change_form_data, change_url

pytestmark = pytest.mark.django_db
S = ArenaModel.Status


def test_a_provider_sets_and_clears_the_temperature_through_the_api(client_a, provider_a, staff):
    model = make_model(provider_a, S.LISTED, staff=staff)

    response = client_a.patch(f"/api/v1/models/{model.pk}/", {"temperature": 0.7}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["temperature"] == 0.7
    model.refresh_from_db()
    assert model.temperature == 0.7  # not an access change: no staff approval needed
    assert client_a.patch(f"/api/v1/models/{model.pk}/", {"temperature": None}, format="json").status_code == 200
    model.refresh_from_db()
    assert model.temperature is None


@pytest.mark.parametrize("value", [0, 0.05, 2.5, -1])
def test_greedy_or_out_of_range_temperatures_are_refused_by_the_api(client_a, provider_a, value):
    model = make_model(provider_a, S.DRAFT)
    response = client_a.patch(f"/api/v1/models/{model.pk}/", {"temperature": value}, format="json")
    assert response.status_code == 400
    assert "temperature" in response.json()["errors"]
    model.refresh_from_db()
    assert model.temperature is None


def test_the_temperature_is_not_shown_to_other_providers_or_the_public(anon_client, client_b, provider_a, staff):
    model = make_model(provider_a, S.LISTED, staff=staff, temperature=0.9)
    for client in (anon_client, client_b):
        assert "temperature" not in client.get(f"/api/v1/models/{model.pk}/").json()


def test_a_provider_sets_the_temperature_in_the_portal(member_a, provider_a):
    model = make_model(provider_a, S.DRAFT, name="warm-7b", access_kind="open_weights")
    web = Client()
    web.force_login(member_a)
    edit = f"/portal/providers/{provider_a.slug}/models/{model.pk}/edit/"
    form = {"name": "warm-7b", "access_kind": "open_weights", "temperature": "0.6"}

    assert web.post(edit, form).status_code == 302
    model.refresh_from_db()
    assert model.temperature == 0.6

    refused = web.post(edit, {**form, "temperature": "0"})
    assert refused.status_code == 400 and "greater than or equal to 0.1" in refused.content.decode()
    model.refresh_from_db()
    assert model.temperature == 0.6


def test_staff_set_the_temperature_in_admin(client, staff, provider_a):
    from .test_admin import grant_admin_permissions

    client.force_login(grant_admin_permissions(staff))
    model = make_model(provider_a, S.LISTED, staff=staff)

    assert client.post(change_url(model), change_form_data(model, temperature="1.1")).status_code == 302
    model.refresh_from_db()
    assert model.temperature == 1.1
    refused = client.post(change_url(model), change_form_data(model, temperature="3"))
    assert refused.status_code == 200
    model.refresh_from_db()
    assert model.temperature == 1.1


def test_the_database_refuses_a_temperature_out_of_range(provider_a):
    model = make_model(provider_a, S.DRAFT)
    with pytest.raises(IntegrityError), transaction.atomic():
        ArenaModel.objects.filter(pk=model.pk).update(temperature=0)


@pytest.mark.parametrize("value", ["NaN", "nan", "Infinity", "-inf"])
def test_a_temperature_that_is_not_a_number_is_bad_input_not_a_server_error(client_a, provider_a, value):
    model = make_model(provider_a, S.DRAFT)
    response = client_a.patch(f"/api/v1/models/{model.pk}/", {"temperature": value}, format="json")
    assert response.status_code == 400
    model.refresh_from_db()
    assert model.temperature is None

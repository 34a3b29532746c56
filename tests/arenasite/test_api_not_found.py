"""An unknown API path answers the API's JSON 404 whatever the method, with CSRF checks on."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from providers.models import ApiToken

from ..conftest import make_model

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_a_write_to_an_unknown_api_path_with_a_bearer_token_is_a_json_404_not_a_csrf_page(member_a, provider_a, method):
    model = make_model(provider_a)
    _, raw = ApiToken.objects.issue(user=member_a, name="test")
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    response = getattr(client, method)(f"/api/v1/models/{model.pk}/explode/", {"reason": "x"}, format="json")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"] == f"No API endpoint at /api/v1/models/{model.pk}/explode/."


def test_a_write_to_an_unknown_api_path_with_a_session_and_no_token_is_a_json_404(member_a):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(member_a)
    response = client.post("/api/v1/nothing/here/", {}, format="json")
    assert response.status_code == 404 and response.json()["detail"].startswith("No API endpoint at ")

"""A NUL anywhere in a path or a query string is refused with a 400, never a 500.

PostgreSQL text cannot hold a NUL, so one that reached a lookup (a battle id, an admin
filter) used to end the request in a server error (arenasite/encoding.py)."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import Client

from ..factories import UserFactory

pytestmark = pytest.mark.django_db

API_PATHS = [
    "/api/v1/battles/%00/",
    "/api/v1/battles/%00/turns/",
    "/api/v1/battles/%00/vote/",
    "/api/v1/battles/abc%00def/",
    "/api/v1/models/%00/",
    "/api/v1/releases/?page=%00",
    "/api/v1/leaderboard/?category=%00",
]
PAGE_PATHS = [
    "/arena/battles/%00/",
    "/arena/battles/%00/turns/",
    "/arena/battles/%00/vote/",
    "/models/?q=%00",
    "/leaderboard/?category=%00",
]


@pytest.fixture
def client():
    # raise_request_exception off: a 500 must show up as a status, not as the test's error.
    return Client(raise_request_exception=False)


@pytest.mark.parametrize("path", API_PATHS)
@pytest.mark.parametrize("method", ["get", "post"])
def test_an_api_path_or_query_with_a_nul_answers_a_json_400(client, path, method):
    response = getattr(client, method)(path, content_type="application/json", data={} if method == "post" else None)
    assert response.status_code == 400
    assert "NUL" in response.json()["detail"]


@pytest.mark.parametrize("path", PAGE_PATHS)
@pytest.mark.parametrize("method", ["get", "post"])
def test_a_page_path_or_query_with_a_nul_answers_400(client, path, method):
    response = getattr(client, method)(path)
    assert response.status_code == 400
    assert b"NUL" in response.content


def admin_filters():
    for model, model_admin in admin.site._registry.items():
        for field in model_admin.list_filter:
            if isinstance(field, str):
                url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
                yield pytest.param(url, field, id=f"{model._meta.label}.{field}")


@pytest.mark.parametrize("url,field", list(admin_filters()))
def test_an_admin_filter_with_a_nul_answers_400(client, url, field):
    client.force_login(UserFactory(username="root@arenasite.example", staff=True, is_superuser=True))
    assert client.get(url, {field: "\x00"}).status_code == 400
    assert client.get(url, {"q": "a\x00b"}).status_code == 400


def test_a_percent_sign_that_is_not_a_nul_still_reaches_the_view(client):
    # "%2500" is the text "%00", which PostgreSQL stores happily: not refused here.
    assert client.get("/api/v1/battles/%2500/").status_code == 404

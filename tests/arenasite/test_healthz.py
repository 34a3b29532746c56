import pytest

from arenasite.celery import app as celery_app

pytestmark = pytest.mark.django_db


def test_it_reports_database_and_broker(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["ok"] and body["broker"]["ok"]


def test_a_broker_that_is_down_answers_503(client, monkeypatch):
    # Point the check at a Redis port where nothing listens, leaving the app's settings alone.
    real = celery_app.connection_for_write
    monkeypatch.setattr(celery_app, "connection_for_write", lambda **kwargs: real(url="redis://127.0.0.1:9/0"))
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["database"]["ok"] and not body["broker"]["ok"]
    assert body["broker"]["error"]


def test_it_only_answers_get(client):
    assert client.post("/healthz").status_code == 405

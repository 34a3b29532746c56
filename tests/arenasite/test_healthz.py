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
    # A Redis URL on a port where nothing listens.
    monkeypatch.setattr(celery_app.conf, "broker_url", "redis://127.0.0.1:9/0")
    monkeypatch.setattr(celery_app.conf, "broker_write_url", "redis://127.0.0.1:9/0")
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["database"]["ok"] and not body["broker"]["ok"]
    assert body["broker"]["error"]


def test_it_only_answers_get(client):
    assert client.post("/healthz").status_code == 405

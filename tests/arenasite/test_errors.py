"""The answer to an unhandled error: 503 when the database is out of reach, else 500."""

from __future__ import annotations

import json

from django.db import OperationalError

from arenasite.errors import server_error


def answer_to(exc: BaseException, request):
    try:
        raise exc
    except BaseException:  # noqa: BLE001 (the handler reads the exception being handled)
        return server_error(request)


def test_an_api_request_gets_json_500_for_an_ordinary_error(rf):
    response = answer_to(ValueError("boom"), rf.get("/api/v1/leaderboard/"))
    assert response.status_code == 500 and "Retry-After" not in response
    assert json.loads(response.content) == {"detail": "Something went wrong on our side; nothing was saved."}


def test_a_page_gets_html_503_with_retry_after_when_the_database_is_away(rf):
    response = answer_to(OperationalError("connection refused"), rf.get("/arena/"))
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert b"Briefly unavailable" in response.content and b"connection refused" not in response.content


def test_a_database_error_wrapped_in_another_is_still_a_503(rf):
    def failing():
        try:
            raise OperationalError("server closed the connection unexpectedly")
        except OperationalError as exc:
            raise RuntimeError("could not load the session") from exc

    try:
        failing()
    except RuntimeError:
        response = server_error(rf.post("/api/v1/battles/"))
    assert response.status_code == 503
    assert "database" in json.loads(response.content)["detail"]

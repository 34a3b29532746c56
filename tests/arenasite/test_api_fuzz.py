"""Property-based fuzzing of the whole API from its OpenAPI schema (schemathesis).

Every operation in /api/schema/ gets generated requests, valid and invalid, as an
anonymous client and as a provider member with a bearer token. Each response must not be
a server error and, where its status is documented, must match the documented schema.
The budget is fixed (examples per operation, a derandomised seed), so CI runs the same
cases every time.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from arenasite.wsgi import application
from providers.models import ApiToken, ArenaModel

from ..conftest import make_model

EXAMPLES_PER_OPERATION = 15
CHECKS = [not_a_server_error, response_schema_conformance]


@pytest.fixture
def wsgi_in_the_test_transaction():
    """The WSGI application closes the database connection after each request; in a test
    that would end the test's transaction. Django's test client stops it the same way."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def api_schema(db, provider_a, member_a, settings, wsgi_in_the_test_transaction):
    # Answers would be produced by threads after each commit; the fuzzer wants the requests only.
    settings.ARENA_DEMO_CHUNK_DELAY = 0.0
    make_model(provider_a, ArenaModel.Status.LISTED, name="fuzz-listed-a", is_demo=True)
    make_model(provider_a, ArenaModel.Status.LISTED, name="fuzz-listed-b", is_demo=True)
    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)


def member_token(member) -> str:
    return ApiToken.objects.issue(user=member, name="fuzz")[1]


def fuzz(schema, headers: dict[str, str]) -> dict[str, str]:
    """Run every operation's generated cases; the first failure of each, by operation."""
    failures: dict[str, str] = {}
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @hypothesis_settings(
            max_examples=EXAMPLES_PER_OPERATION,
            derandomize=True,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case):
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            check()
        except Exception as exc:  # noqa: BLE001 (each operation's failure is reported, not the first only)
            failures[operation.label] = str(exc)[:2000]
    return failures


def test_no_operation_answers_an_anonymous_client_with_a_server_error_or_off_its_schema(api_schema):
    failures = fuzz(api_schema, headers={})
    assert not failures, "\n\n".join(f"{label}:\n{failure}" for label, failure in failures.items())


def test_no_operation_answers_a_provider_member_with_a_server_error_or_off_its_schema(api_schema, member_a):
    failures = fuzz(api_schema, headers={"Authorization": f"Bearer {member_token(member_a)}"})
    assert not failures, "\n\n".join(f"{label}:\n{failure}" for label, failure in failures.items())

"""With ARENA_STAFF_REQUIRE_MFA on, staff without a verified second factor get what a voter gets
on every row of the permission matrix: every API endpoint (by session and by token), site page
and portal page; every admin page sends them to set up the factor instead. The staff member is
a superuser holding every permission of the matrix's staff, so any staff power that leaked
would show as a difference; a new endpoint gets its row in the matrix, and with it this check."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from . import test_permission_matrix as matrix
from .test_permission_matrix import PERSONAS, ROWS, Row

world = matrix.world  # the matrix's world fixture, built once for this module too

VOTER = PERSONAS.index("voter")
CASES = [(row, "token") for row in ROWS if row.path.startswith("/api/")] + [(row, "session") for row in ROWS]


@pytest.fixture
def unverified_superuser(world, settings):
    settings.ARENA_STAFF_REQUIRE_MFA = True
    staff = world.users["staff_with"]
    get_user_model().objects.filter(pk=staff.pk).update(is_superuser=True)
    return staff


def request(client, row: Row, values: dict):
    url = row.path.format(**values)
    if row.data is None:
        return url, getattr(client, row.method)(url)
    if not url.startswith("/api/"):  # a page's form
        return url, client.post(url, {key: value.format(**values) for key, value in row.data.items()})
    return url, getattr(client, row.method)(url, row.data, format="json")


@pytest.mark.parametrize(
    ("row", "channel"), CASES, ids=[f"{row.method} {row.path} [{row.what}] by {channel}" for row, channel in CASES]
)
def test_staff_without_a_second_factor_get_what_a_voter_gets(db, world, unverified_superuser, row: Row, channel: str):
    client = APIClient()
    if channel == "token":  # issued with no second factor on record
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {world.tokens['staff_with']}")
    else:  # signed in without the second factor
        client.force_login(unverified_superuser)
    url, response = request(client, row, {**world.ids, "own_battle": world.battles["staff_with"]})

    if url.startswith("/admin/"):  # the admin sends them to set up the factor, whatever a voter gets
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/2fa/totp/activate/?next=")
        return
    assert response.status_code == row.expected[VOTER], (
        f"{row.method.upper()} {url} by {channel}: {response.status_code}, a voter gets {row.expected[VOTER]}"
    )
    if row.visible is not None and response.status_code == 200:
        seen = {str(item["id"]) for item in response.json()["results"]}
        assert seen == {world.ids[name] for name in row.visible[VOTER]}

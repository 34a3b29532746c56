"""TOTP second factor for staff and provider accounts, and the staff requirement."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import time_machine
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import SECRET_SESSION_KEY, format_hotp_value, hotp_value
from django.utils import timezone

from arenasite.models import AuditEvent

from ..factories import UserFactory

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple"


def code_for(secret: str, at: float | None = None) -> str:
    """The authenticator app's code: RFC 6238 with allauth's own HOTP helpers (30-second steps)."""
    return format_hotp_value(hotp_value(secret, int((at or time.time()) // 30)))


def set_up_totp(client, password: str = PASSWORD) -> str:
    """What a person does at /accounts/2fa/totp/activate/: confirm the password, scan, type a code."""
    client.post("/accounts/reauthenticate/", {"password": password})
    assert client.get("/accounts/2fa/totp/activate/").status_code == 200
    secret = client.session[SECRET_SESSION_KEY]
    response = client.post("/accounts/2fa/totp/activate/", {"code": code_for(secret)})
    assert response.status_code == 302, response.content.decode()[:2000]
    return secret


def log_in(client, email: str, password: str = PASSWORD):
    return client.post("/accounts/login/", {"login": email, "password": password})


@pytest.mark.parametrize("kind", ["staff", "provider member"])
def test_a_staff_or_provider_account_sets_up_totp_and_then_needs_a_code_to_log_in(
    client, provider_a, kind, django_capture_on_commit_callbacks
):
    email = "staff@arenasite.example" if kind == "staff" else "member@a.example"
    user = UserFactory(username=email, staff=kind == "staff")
    if kind == "provider member":
        provider_a.memberships.create(user=user)
    client.force_login(user)
    with django_capture_on_commit_callbacks(execute=True):  # allauth signals the new factor on commit
        secret = set_up_totp(client)
    assert Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.MFA_ADDED, actor=user).exists()
    client.logout()

    # Half a minute on, so the login code is a new one (allauth refuses a code used twice).
    with time_machine.travel(timezone.now() + timedelta(seconds=31), tick=False):
        response = log_in(client, email)
        assert response.status_code == 302
        assert response["Location"] == "/accounts/2fa/authenticate/"
        assert "_auth_user_id" not in client.session  # the password alone does not log in
        assert client.post("/accounts/2fa/authenticate/", {"code": "000000"}).status_code == 200
        assert "_auth_user_id" not in client.session
        response = client.post("/accounts/2fa/authenticate/", {"code": code_for(secret, time.time())})
        assert response.status_code == 302
        assert client.session["_auth_user_id"] == str(user.pk)


def test_with_the_requirement_on_staff_without_totp_are_sent_to_set_it_up(client, settings):
    settings.ARENA_STAFF_REQUIRE_MFA = True
    staff = UserFactory(username="staff@arenasite.example", staff=True)
    client.force_login(staff)
    response = client.get("/admin/providers/arenamodel/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/2fa/totp/activate/?next=%2Fadmin%2Fproviders%2Farenamodel%2F"

    set_up_totp(client)
    assert client.get("/admin/").status_code == 200


def test_the_requirement_leaves_other_pages_and_non_staff_alone(client, settings):
    settings.ARENA_STAFF_REQUIRE_MFA = True
    client.force_login(UserFactory(username="staff@arenasite.example", staff=True))
    assert client.get("/leaderboard/").status_code == 200
    assert client.get("/accounts/2fa/").status_code == 200
    client.force_login(UserFactory(username="voter@example.com"))
    assert client.get("/admin/").status_code == 302  # to the login page, as for any non-staff user
    assert "/2fa/" not in client.get("/admin/")["Location"]


def test_without_the_requirement_staff_reach_the_admin_without_totp(client, settings):
    settings.ARENA_STAFF_REQUIRE_MFA = False
    client.force_login(UserFactory(username="staff@arenasite.example", staff=True))
    assert client.get("/admin/").status_code == 200

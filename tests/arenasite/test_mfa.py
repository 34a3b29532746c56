"""TOTP second factor for staff and provider accounts, and the staff requirement: with
ARENA_STAFF_REQUIRE_MFA on, staff powers count only for a session that signed in with the
factor or a token issued from one, on every surface; staff tokens need it and expire."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import SECRET_SESSION_KEY, format_hotp_value, hotp_value
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client, TestCase
from django.utils import timezone

from arenasite.mfa import NO_FACTOR, withhold_staff_powers
from arenasite.models import AuditEvent
from providers.models import ApiToken, ArenaModel, TokenRefused

from ..conftest import make_model, token_client
from ..factories import MembershipFactory, UserFactory
from ..leaderboard.test_plots import publish_run
from ..releases.test_release import build, voted_battle
from .test_secrets import PRODUCTION, deploy_check

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
    # allauth announces the new factor on commit, as it does at the end of a real request's transaction.
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post("/accounts/2fa/totp/activate/", {"code": code_for(secret)})
    assert response.status_code == 302, response.content.decode()[:2000]
    return secret


def confirm_code(client, secret: str) -> None:
    """/accounts/2fa/reauthenticate/: a code from the authenticator, recorded in the session."""
    response = client.post("/accounts/2fa/reauthenticate/", {"code": code_for(secret)})
    assert response.status_code == 302, response.content.decode()[:2000]


def log_in(client, email: str, password: str = PASSWORD):
    return client.post("/accounts/login/", {"login": email, "password": password})


@pytest.mark.parametrize("kind", ["staff", "provider member"])
def test_a_staff_or_provider_account_sets_up_totp_and_then_needs_a_code_to_log_in(client, provider_a, kind):
    email = "staff@arenasite.example" if kind == "staff" else "member@a.example"
    user = UserFactory(username=email, staff=kind == "staff")
    if kind == "provider member":
        provider_a.memberships.create(user=user)
    client.force_login(user)
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

    secret = set_up_totp(client)
    # Setting up is not signing in with the factor: one code more, then the admin opens.
    response = client.get("/admin/")
    assert response["Location"] == "/accounts/2fa/reauthenticate/?next=%2Fadmin%2F"
    confirm_code(client, secret)
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


# --- staff powers need the second factor on every surface ------------------------------------------


@pytest.fixture
def required(settings):
    settings.ARENA_STAFF_REQUIRE_MFA = True


@pytest.fixture
def hidden_models(provider_a):
    """A model in initial rating with a private rating, and one waiting for admission."""
    initial = make_model(provider_a, ArenaModel.Status.INITIAL_RATING, name="a-initial")
    publish_run([initial], published_at=timezone.now(), status=ArenaModel.Status.INITIAL_RATING)
    return initial, make_model(provider_a, ArenaModel.Status.SUBMITTED, name="a-submitted")


def staff_reads_and_admits(client, initial, submitted) -> tuple[int, int, int]:
    """What the issue tried: read a model in initial rating, its private rating, admit a model."""
    return (
        client.get(f"/api/v1/models/{initial.pk}/").status_code,
        client.get(f"/api/v1/models/{initial.pk}/rating/").status_code,
        client.post(f"/api/v1/models/{submitted.pk}/admit/", "{}", content_type="application/json").status_code,
    )


def test_staff_signed_in_with_a_password_alone_cannot_read_hidden_models_or_admit_one_through_the_api(
    client, required, staff, hidden_models
):
    initial, submitted = hidden_models
    assert log_in(client, staff.email).status_code == 302
    assert client.session["_auth_user_id"] == str(staff.pk)  # signed in, with the password alone

    assert staff_reads_and_admits(client, initial, submitted) == (404, 404, 404)
    submitted.refresh_from_db()
    assert submitted.status == ArenaModel.Status.SUBMITTED
    detail = client.get(f"/api/v1/models/{initial.pk}/rating/").json()["detail"]
    assert "/accounts/2fa/totp/activate/" in detail  # the refusal says where to set one up

    # Once the session has proved the factor, the same staff member may do all three.
    confirm_code(client, set_up_totp(client))
    assert staff_reads_and_admits(client, initial, submitted) == (200, 200, 200)
    assert client.get(f"/api/v1/models/{initial.pk}/rating/").json()["ratings"]


def test_staff_whose_session_skipped_their_authenticator_are_asked_to_confirm_a_code(
    client, required, staff, hidden_models
):
    initial, submitted = hidden_models
    other = Client()
    other.force_login(staff)
    secret = set_up_totp(other)

    client.force_login(staff)  # a session that never asked for the code
    response = client.get("/admin/")
    assert response["Location"] == "/accounts/2fa/reauthenticate/?next=%2Fadmin%2F"
    response = client.get(f"/api/v1/models/{initial.pk}/")
    assert response.status_code == 404
    assert "/accounts/2fa/reauthenticate/" in response.json()["detail"]

    confirm_code(client, secret)
    assert client.get("/admin/").status_code == 200
    assert staff_reads_and_admits(client, initial, submitted) == (200, 200, 200)


def test_staff_who_sign_in_with_their_authenticator_keep_their_powers(client, required, staff, hidden_models):
    initial, submitted = hidden_models
    client.force_login(staff)
    secret = set_up_totp(client)
    client.logout()
    with time_machine.travel(timezone.now() + timedelta(seconds=31), tick=False):
        assert log_in(client, staff.email)["Location"] == "/accounts/2fa/authenticate/"
        client.post("/accounts/2fa/authenticate/", {"code": code_for(secret, time.time())})
        assert staff_reads_and_admits(client, initial, submitted) == (200, 200, 200)


def test_a_staff_token_issued_without_a_second_factor_carries_no_staff_powers(
    settings, staff, hidden_models, anon_client
):
    initial, submitted = hidden_models
    # Issued while the requirement was off: a staff token, but with no second factor on record.
    old = token_client(staff)
    settings.ARENA_STAFF_REQUIRE_MFA = True
    assert staff_reads_and_admits(old, initial, submitted) == (404, 404, 404)
    assert "issued while signed in with a second factor" in old.get(f"/api/v1/models/{initial.pk}/").json()["detail"]
    assert old.get("/api/v1/models/").status_code == 200  # it still acts as an ordinary account

    # A token issued from a session that signed in with the factor carries them.
    browser = Client()
    browser.force_login(staff)
    confirm_code(browser, set_up_totp(browser))
    token, raw = ApiToken.objects.issue(user=staff, name="with factor", second_factor=True)
    assert (token.staff, token.second_factor) == (True, True)
    anon_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert staff_reads_and_admits(anon_client, initial, submitted) == (200, 200, 200)


def test_a_token_issued_before_its_account_became_staff_never_carries_staff_powers(member_b, hidden_models):
    initial, submitted = hidden_models
    member_token = token_client(member_b)  # a provider member's token: no expiry, no staff powers
    get_user_model().objects.filter(pk=member_b.pk).update(is_staff=True, is_superuser=True)
    assert staff_reads_and_admits(member_token, initial, submitted) == (404, 404, 404)
    detail = member_token.get(f"/api/v1/models/{initial.pk}/").json()["detail"]
    assert "issued before its account became staff" in detail
    submitted.refresh_from_db()
    assert submitted.status == ArenaModel.Status.SUBMITTED


def test_a_staff_member_without_a_second_factor_sees_no_staff_data_on_the_site_pages(
    client, settings, tmp_path, required, staff, provider_a, provider_b
):
    """A built, unpublished release's files are for staff with the release permission."""
    settings.RELEASES_DIR = tmp_path / "releases"
    voted_battle(make_model(provider_a, ArenaModel.Status.LISTED), make_model(provider_b, ArenaModel.Status.LISTED))
    built = build()
    staff.user_permissions.add(Permission.objects.get(codename="view_datarelease"))
    client.force_login(staff)
    page = client.get("/leaderboard/")
    assert NO_FACTOR in [str(message) for message in page.context["messages"]]  # told once, on the first page
    assert client.get(f"/data/releases/{built.pk}/manifest.json").status_code == 404
    settings.ARENA_STAFF_REQUIRE_MFA = False
    assert client.get(f"/data/releases/{built.pk}/manifest.json").status_code == 200


def test_withholding_leaves_the_real_flags_in_the_database_when_the_user_is_saved(client, required):
    boss = UserFactory(username="boss@arenasite.example", staff=True, is_superuser=True)
    events = AuditEvent.objects.filter(action=AuditEvent.Action.ACCOUNT_CHANGED).count()
    client.force_login(boss)
    # Changing one's password saves the request's user, whose flags read False on this request.
    new_password = "a new and long passphrase"
    response = client.post(
        "/accounts/password/change/", {"oldpassword": PASSWORD, "password1": new_password, "password2": new_password}
    )
    assert response.status_code == 302
    boss.refresh_from_db()
    assert (boss.is_staff, boss.is_superuser) == (True, True)
    assert boss.check_password(new_password)
    assert AuditEvent.objects.filter(action=AuditEvent.Action.ACCOUNT_CHANGED).count() == events

    withhold_staff_powers(boss, NO_FACTOR)
    assert not (boss.is_staff or boss.is_superuser)
    assert not boss.has_perm("providers.transition_arenamodel")
    assert not boss.has_module_perms("providers")
    boss.save()
    assert get_user_model().objects.filter(pk=boss.pk, is_staff=True, is_superuser=True).exists()
    assert not boss.is_staff  # and the object goes on acting without them


# --- tokens: issued to staff only with the factor, and they expire ------------------------------


def test_the_portal_issues_a_staff_token_only_while_signed_in_with_a_second_factor(client, required, provider_a):
    staff = MembershipFactory(provider=provider_a, user=UserFactory(username="ops@a.example", staff=True)).user
    client.force_login(staff)
    response = client.post("/portal/tokens/", {"name": "deploy"})
    assert response.status_code == 403
    assert "/accounts/2fa/totp/activate/" in response.content.decode()
    assert not ApiToken.objects.filter(user=staff).exists()

    secret = set_up_totp(client)
    response = client.post("/portal/tokens/", {"name": "deploy"})
    assert response.status_code == 403  # set up, but this session has not signed in with it
    assert "/accounts/2fa/reauthenticate/" in response.content.decode()

    confirm_code(client, secret)
    before = timezone.now()
    response = client.post("/portal/tokens/", {"name": "deploy"})
    assert response.status_code == 200
    token = ApiToken.objects.get(user=staff)
    assert (token.staff, token.second_factor) == (True, True)
    assert timedelta(days=30) <= token.expires_at - before < timedelta(days=30, minutes=1)


def test_the_admin_issues_a_staff_token_only_for_staff_with_a_second_factor(client, required):
    boss = UserFactory(username="boss@arenasite.example", staff=True, is_superuser=True)
    intern = UserFactory(username="intern@arenasite.example", staff=True)
    client.force_login(boss)
    confirm_code(client, set_up_totp(client))

    response = client.post("/admin/providers/apitoken/add/", {"user": intern.pk, "name": "ci"})
    assert response.status_code == 200
    assert "intern@arenasite.example is staff without a second factor" in response.content.decode()
    assert not ApiToken.objects.filter(user=intern).exists()

    response = client.post("/admin/providers/apitoken/add/", {"user": boss.pk, "name": "ci"})
    assert response.status_code == 302
    token = ApiToken.objects.get(user=boss)
    assert (token.staff, token.second_factor, token.expires_at is not None) == (True, True, True)


def test_no_other_way_issues_a_staff_token_without_a_second_factor(required, staff, provider_a):
    with pytest.raises(TokenRefused):
        ApiToken.objects.issue(user=staff, name="script")
    with pytest.raises(CommandError, match="staff without a second factor"):
        call_command("create_provider", "Staff Lab", member=staff.email, token=True, stdout=StringIO())
    assert not ApiToken.objects.filter(user=staff).exists()


def test_a_staff_token_expires_after_the_configured_days_and_a_members_token_does_not(
    settings, staff, member_a, hidden_models
):
    initial, _ = hidden_models
    settings.ARENA_STAFF_TOKEN_DAYS = 7
    staff_token, member_token = token_client(staff), token_client(member_a)
    assert ApiToken.objects.get(user=member_a).expires_at is None
    with time_machine.travel(timezone.now() + timedelta(days=6, hours=23)):
        assert staff_token.get(f"/api/v1/models/{initial.pk}/").status_code == 200
    with time_machine.travel(timezone.now() + timedelta(days=7, minutes=1)):
        response = staff_token.get(f"/api/v1/models/{initial.pk}/")
        assert response.status_code == 401
        assert response.json()["detail"].startswith("This token expired at ")
        assert member_token.get(f"/api/v1/models/{initial.pk}/").status_code == 200
    with time_machine.travel(timezone.now() + timedelta(days=400)):
        assert member_token.get(f"/api/v1/models/{initial.pk}/").status_code == 200


def test_the_portal_shows_when_each_token_expires(client, settings, provider_a):
    ops = MembershipFactory(provider=provider_a, user=UserFactory(username="ops@a.example", staff=True)).user
    token, _ = ApiToken.objects.issue(user=ops, name="deploy")
    client.force_login(ops)
    page = client.get("/portal/tokens/").content.decode()
    assert token.expires_at.strftime("%Y-%m-%d %H:%M") in page
    assert f"expires after {settings.ARENA_STAFF_TOKEN_DAYS} days" in page


# --- production default and the deployment check -------------------------------------------------


def production_setting(**extra: str) -> str:
    """ARENA_STAFF_REQUIRE_MFA as the real settings module reads it from this environment."""
    keep = {name: os.environ[name] for name in ("PATH", "VAR_DIR", "HOME") if name in os.environ}
    env = {**keep, **PRODUCTION, "ENV_FILE": "", **extra, "DJANGO_SETTINGS_MODULE": "arenasite.settings"}
    script = "import django; django.setup(); from django.conf import settings; print(settings.ARENA_STAFF_REQUIRE_MFA)"
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=django_settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_production_settings_require_the_second_factor_for_staff_unless_turned_off():
    assert production_setting() == "True"
    assert production_setting(ARENA_STAFF_REQUIRE_MFA="0") == "False"
    assert production_setting(DEBUG="1") == "False"  # development: off unless turned on


def test_the_deployment_check_warns_when_staff_need_no_second_factor():
    result = deploy_check(ARENA_STAFF_REQUIRE_MFA="0")
    assert result.returncode != 0
    assert "arenasite.mfa.W001" in result.stderr
    assert "staff permissions (admin, API, portal) work with a password alone" in result.stderr
    result = deploy_check()
    assert "arenasite.mfa.W001" not in result.stdout + result.stderr

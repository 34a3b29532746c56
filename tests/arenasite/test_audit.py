"""The security audit log: what is recorded, and that nobody can change it."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied

from arenasite.models import AuditEvent
from providers.lifecycle import Action, transition
from providers.models import ApiToken, ArenaModel, Membership
from releases.models import Download

from ..factories import ArenaModelFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db
A = AuditEvent.Action


def events(action) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def test_a_login_and_a_failed_login_are_recorded_with_the_address(client):
    user = UserFactory(username="someone@example.com")
    client.post("/accounts/login/", {"login": "someone@example.com", "password": "wrong"}, REMOTE_ADDR="192.0.2.7")
    client.post(
        "/accounts/login/",
        {"login": "someone@example.com", "password": "correct horse battery staple"},
        REMOTE_ADDR="192.0.2.7",
    )
    [failed] = events(A.LOGIN_FAILED)
    assert (failed.actor, failed.actor_label, failed.ip) == (None, "someone@example.com", "192.0.2.7")
    assert "wrong" not in str(failed.details) + failed.summary  # the password is never kept
    [login] = events(A.LOGIN)
    assert (login.actor, login.ip) == (user, "192.0.2.7")


def test_token_creation_and_revocation_in_admin_are_recorded_with_the_staff_member(client):
    superuser = UserFactory(username="root@arenasite.example", staff=True, is_superuser=True)
    owner = UserFactory(username="owner@a.example")
    client.force_login(superuser)
    client.post("/admin/providers/apitoken/add/", {"user": owner.pk, "name": "ci"})
    token = ApiToken.objects.get(user=owner)
    client.post("/admin/providers/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})

    [created] = events(A.TOKEN_CREATED)
    [revoked] = events(A.TOKEN_REVOKED)
    for event in (created, revoked):
        assert event.actor == superuser
        assert (event.subject_type, event.subject_id) == ("providers.apitoken", str(token.pk))
        assert token.prefix in event.summary
    assert ApiToken.objects.get(pk=token.pk).revoked_at is not None


def test_membership_and_role_changes_are_recorded(provider_a):
    user = UserFactory(username="carol@a.example")
    membership = MembershipFactory(provider=provider_a, user=user)
    membership.role = Membership.Role.ADMIN
    membership.save()
    membership.delete()
    assert [
        event.action for event in AuditEvent.objects.filter(subject_type="providers.membership").order_by("id")
    ] == [
        A.MEMBERSHIP_ADDED,
        A.MEMBERSHIP_CHANGED,
        A.MEMBERSHIP_REMOVED,
    ]
    assert events(A.MEMBERSHIP_CHANGED)[0].details["role"] == ["member", "admin"]


def test_staff_flags_and_permissions_are_recorded_but_logins_do_not_count_as_changes():
    user = UserFactory(username="dave@arenasite.example")
    user.is_staff = True
    user.save()
    user.user_permissions.add(Permission.objects.get(codename="transition_arenamodel"))
    user.save(update_fields=["last_login"])  # what every login does

    [flag] = events(A.ACCOUNT_CHANGED)
    assert flag.details["is_staff"] == [False, True]
    [permission] = events(A.PERMISSIONS_CHANGED)
    assert permission.details["change"] == "added"
    assert "move models through their lifecycle" in permission.details["items"][0]


def test_downloads_and_lifecycle_transitions_are_recorded(staff):
    model = ArenaModelFactory(status=ArenaModel.Status.DRAFT)
    transition(model_id=model.pk, action=Action.SUBMIT, actor=staff, reason="")
    download = Download.objects.create(user=staff, format="jsonl", bytes=10)

    [step] = events(A.LIFECYCLE)
    assert (step.actor, step.subject_id, step.details["step"]) == (staff, str(model.pk), "submit")
    assert step.details["lifecycle_event"] == model.events.get().pk
    [downloaded] = events(A.DOWNLOAD)
    assert (downloaded.actor, downloaded.subject_id) == (staff, str(download.pk))


def test_an_event_cannot_be_changed_or_deleted_in_python():
    event = AuditEvent.objects.create(action=A.LOGIN, summary="x")
    event.summary = "rewritten"
    with pytest.raises(PermissionDenied):
        event.save()
    with pytest.raises(PermissionDenied):
        event.delete()
    with pytest.raises(PermissionDenied):
        AuditEvent.objects.filter(pk=event.pk).update(summary="rewritten")
    with pytest.raises(PermissionDenied):
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.get(pk=event.pk).summary == "x"


def test_deleting_a_user_keeps_their_events_under_their_name(client):
    user = UserFactory(username="gone@example.com")
    client.force_login(user)
    user.delete()
    [event] = events(A.LOGIN)
    assert (event.actor, event.actor_label) == (None, "gone@example.com")


def test_staff_read_the_log_in_admin_and_even_a_superuser_cannot_edit_it(client):
    superuser = UserFactory(username="root@arenasite.example", staff=True, is_superuser=True)
    event = AuditEvent.objects.create(action=A.LOGIN, summary="<script>alert(1)</script>")
    client.force_login(superuser)

    listing = client.get("/admin/arenasite/auditevent/")
    assert listing.status_code == 200
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in listing.content
    assert b"<script>alert(1)" not in listing.content
    page = client.get(f"/admin/arenasite/auditevent/{event.pk}/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content  # a read-only page: no save button
    assert client.get("/admin/arenasite/auditevent/add/").status_code == 403
    assert client.post(f"/admin/arenasite/auditevent/{event.pk}/change/", {"summary": "x"}).status_code == 403
    assert client.post(f"/admin/arenasite/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    response = client.post(
        "/admin/arenasite/auditevent/", {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"}
    )
    assert AuditEvent.objects.filter(pk=event.pk).exists(), response.status_code
    assert AuditEvent.objects.get(pk=event.pk).summary == "<script>alert(1)</script>"

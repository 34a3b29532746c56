"""The security audit log: one append-only row per security-relevant event.

Rows are written by arenasite/audit.py (signal receivers and one middleware), never by hand.
Neither Python nor the admin can change or delete a row; deleting a user keeps their rows
(the actor becomes empty, the label keeps who it was).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from .append_only import AppendOnlyModel


class AuditEvent(AppendOnlyModel):
    class Action(models.TextChoices):
        LOGIN = "login", "Logged in"
        LOGIN_FAILED = "login_failed", "Login failed"
        LOGOUT = "logout", "Logged out"
        MFA_ADDED = "mfa_added", "Second factor added"
        MFA_REMOVED = "mfa_removed", "Second factor removed"
        TOKEN_CREATED = "token_created", "API token created"
        TOKEN_REVOKED = "token_revoked", "API token revoked"
        MEMBERSHIP_ADDED = "membership_added", "Provider membership added"
        MEMBERSHIP_CHANGED = "membership_changed", "Provider role changed"
        MEMBERSHIP_REMOVED = "membership_removed", "Provider membership removed"
        ACCOUNT_CHANGED = "account_changed", "Staff, superuser or active flag changed"
        PERMISSIONS_CHANGED = "permissions_changed", "Permissions or groups changed"
        DOWNLOAD = "download", "Data downloaded"
        LIFECYCLE = "lifecycle", "Model lifecycle transition"
        IDENTITY_TERM = "identity_term", "Identity term approved or refused"
        VOTES_REJUDGED = "votes_rejudged", "Votes re-judged by identity terms"

    at = models.DateTimeField(default=timezone.now, db_index=True)
    action = models.CharField(max_length=24, choices=Action, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Who did it; empty for the scheduler, an anonymous visitor or a deleted account.",
    )
    actor_label = models.CharField(
        max_length=150, blank=True, help_text="The actor's username at the time, or the login that was tried."
    )
    subject_type = models.CharField(max_length=100, blank=True, help_text="app_label.model of what it was about.")
    subject_id = models.CharField(max_length=64, blank=True)
    summary = models.CharField(max_length=300)
    ip = models.GenericIPAddressField("IP address", null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["subject_type", "subject_id"], name="auditevent_subject")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.action}: {self.summary}"

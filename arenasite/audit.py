"""Write the security audit log (arenasite.models.AuditEvent) from signals.

The apps do not call this module: logins, second factors, API tokens, memberships, staff
flags and permissions, downloads and lifecycle transitions are recorded by receivers of
the signals Django, allauth and the apps' models already send, so no write path (admin,
API, command, task) can forget to log. The one exception is a bulk `QuerySet.update()`,
which sends no signal: code that changes an audited field does it row by row. Identity
terms are decided and votes re-judged only through battles/identity_terms.py, which calls
`record` itself, in the same transaction as the change.

AuditContextMiddleware remembers the request being served, so an event raised deep in a
save (a membership changed in admin) still knows who did it and from which address.
"""

from __future__ import annotations

import contextvars
import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.db import models
from django.http import HttpRequest

from .models import AuditEvent

logger = logging.getLogger(__name__)
Action = AuditEvent.Action

_request: contextvars.ContextVar[HttpRequest | None] = contextvars.ContextVar("audit_request", default=None)

# Fields whose change is a security event, per model (label_lower). Their previous values
# are read in pre_save, only when a save may touch them.
TRACKED_FIELDS = {
    "providers.apitoken": ("revoked_at",),
    "providers.membership": ("role",),
}
USER_FLAGS = ("is_staff", "is_superuser", "is_active")


class AuditContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(token)


def client_ip(request: HttpRequest | None) -> str | None:
    # REMOTE_ADDR only: X-Forwarded-For is whatever the client wrote unless a trusted proxy
    # sets it, and a proxy that does should also set REMOTE_ADDR (gunicorn --forwarded-allow-ips).
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def record(
    action: str,
    summary: str,
    *,
    actor=None,
    actor_label: str = "",
    subject: models.Model | None = None,
    request: HttpRequest | None = None,
    **details: Any,
) -> AuditEvent:
    """Append one event. Without an explicit actor, the user of the request being served."""
    request = request if request is not None else _request.get()
    if actor is None and request is not None:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            actor = user
    if actor is not None and not actor_label:
        actor_label = actor.get_username()
    return AuditEvent.objects.create(
        action=action,
        summary=summary[:300],
        actor=actor,
        actor_label=actor_label[:150],
        subject_type=subject._meta.label_lower if subject is not None else "",
        subject_id=str(subject.pk) if subject is not None else "",
        ip=client_ip(request),
        details=details,
    )


# --- receivers (connected in arenasite.apps.ArenasiteConfig.ready) ---------------------------------


def on_login(sender, request, user, **kwargs):
    record(Action.LOGIN, f"{user.get_username()} logged in", actor=user, subject=user, request=request)


def on_logout(sender, request, user, **kwargs):
    if user is not None:
        record(Action.LOGOUT, f"{user.get_username()} logged out", actor=user, subject=user, request=request)


def on_login_failed(sender, credentials, request=None, **kwargs):
    # Django has already masked secrets in `credentials`; what is left names the account tried.
    tried = str(credentials.get("email") or credentials.get("username") or credentials.get("login") or "")
    record(Action.LOGIN_FAILED, f"failed login for {tried or 'an unnamed account'}", actor_label=tried, request=request)


def on_authenticator_added(sender, request, user, authenticator, **kwargs):
    record(
        Action.MFA_ADDED,
        f"{user.get_username()} added a {authenticator.type} authenticator",
        actor=user,
        subject=user,
        request=request,
        type=authenticator.type,
    )


def on_authenticator_removed(sender, request, user, authenticator, **kwargs):
    record(
        Action.MFA_REMOVED,
        f"{user.get_username()} removed a {authenticator.type} authenticator",
        subject=user,
        request=request,
        type=authenticator.type,
    )


def remember_previous(sender, instance, raw=False, update_fields=None, **kwargs):
    """pre_save: keep the tracked fields' stored values on the instance for post_save."""
    fields = USER_FLAGS if sender is get_user_model() else TRACKED_FIELDS.get(sender._meta.label_lower, ())
    if raw or instance._state.adding or not fields:
        return
    if update_fields is not None and not set(update_fields) & set(fields):
        return  # e.g. last_login on every login: nothing tracked can change
    instance._audit_previous = sender._base_manager.filter(pk=instance.pk).values(*fields).first() or {}


def _changes(instance, fields) -> dict[str, list]:
    previous = getattr(instance, "_audit_previous", None)
    if previous is None:
        return {}
    instance._audit_previous = None
    return {
        name: [_plain(previous.get(name)), _plain(getattr(instance, name))]
        for name in fields
        if previous.get(name) != getattr(instance, name)
    }


def _plain(value):
    return value.isoformat() if hasattr(value, "isoformat") else value


def on_token_saved(sender, instance, created, raw=False, **kwargs):
    if raw:
        return
    owner = instance.user.get_username()
    if created:
        record(
            Action.TOKEN_CREATED,
            f"API token {instance.prefix} '{instance.name}' created for {owner}",
            subject=instance,
            owner=owner,
        )
    elif _changes(instance, ("revoked_at",)) and instance.revoked_at is not None:
        record(
            Action.TOKEN_REVOKED,
            f"API token {instance.prefix} '{instance.name}' of {owner} revoked",
            subject=instance,
            owner=owner,
        )


def on_membership_saved(sender, instance, created, raw=False, **kwargs):
    if raw:
        return
    who, where = instance.user.get_username(), instance.provider.name
    if created:
        record(
            Action.MEMBERSHIP_ADDED,
            f"{who} joined {where} as {instance.role}",
            subject=instance,
            user=who,
            provider=instance.provider.slug,
            role=instance.role,
        )
    elif changes := _changes(instance, ("role",)):
        old, new = changes["role"]
        record(
            Action.MEMBERSHIP_CHANGED,
            f"{who} at {where}: {old} → {new}",
            subject=instance,
            user=who,
            provider=instance.provider.slug,
            role=[old, new],
        )


def on_membership_deleted(sender, instance, **kwargs):
    who, where = instance.user.get_username(), instance.provider.name
    record(
        Action.MEMBERSHIP_REMOVED,
        f"{who} left {where} ({instance.role})",
        subject=instance,
        user=who,
        provider=instance.provider.slug,
        role=instance.role,
    )


def on_user_saved(sender, instance, created, raw=False, **kwargs):
    if raw:
        return
    if created:
        changes = {name: [None, True] for name in ("is_staff", "is_superuser") if getattr(instance, name)}
    else:
        changes = _changes(instance, USER_FLAGS)
    if changes:
        flags = ", ".join(f"{name} {old} → {new}" for name, (old, new) in changes.items())
        record(Action.ACCOUNT_CHANGED, f"{instance.get_username()}: {flags}", subject=instance, **changes)


def on_user_m2m_changed(sender, instance, action, reverse, model, pk_set, **kwargs):
    """Permissions or groups added to or removed from a user (or users added to a group)."""
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if reverse:
        # `instance` is the permission or group; pk_set the users.
        users = list(get_user_model()._base_manager.filter(pk__in=pk_set or ()))
        names = [str(instance)]
    else:
        users = [instance]
        names = [str(item) for item in model._base_manager.filter(pk__in=pk_set or ())] if pk_set else []
    verb = {"post_add": "added", "post_remove": "removed", "post_clear": "cleared"}[action]
    what = "groups" if sender is get_user_model().groups.through else "permissions"
    for user in users:
        record(
            Action.PERMISSIONS_CHANGED,
            f"{user.get_username()}: {what} {verb}: {', '.join(names) or 'all'}",
            subject=user,
            change=verb,
            kind=what,
            items=names,
        )


def on_download_saved(sender, instance, created, raw=False, **kwargs):
    if raw or not created:
        return
    what = f"share {instance.share_id}" if instance.share_id else f"release {instance.release_id}"
    who = instance.user.get_username() if instance.user_id else "an anonymous visitor"
    record(
        Action.DOWNLOAD,
        f"{who} downloaded {instance.format} of {what}",
        actor=instance.user,
        subject=instance,
        format=instance.format,
        share=instance.share_id,
        release=instance.release_id,
        provider=instance.provider_id,
        bytes=instance.bytes,
    )


def on_lifecycle_event_saved(sender, instance, created, raw=False, **kwargs):
    if raw or not created:
        return
    # The lifecycle log (providers.LifecycleEvent) stays the record of a model's life; this row
    # puts the step in the security timeline and points at it.
    verb = "scheduled" if instance.kind == "scheduled" else "done"
    record(
        Action.LIFECYCLE,
        f"model {instance.arena_model_id}: {instance.action} ({verb}) {instance.from_status} → {instance.to_status}",
        actor=instance.actor,
        actor_label="" if instance.actor_id else "scheduler",
        subject=instance.arena_model,
        lifecycle_event=instance.pk,
        step=instance.action,
        kind=instance.kind,
    )

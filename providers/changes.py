"""Edits of a model's fields, and the staff review of what answers behind a model in the pool.

Admission checks who can reach a model (the third-party-access rule) and what answers for
it (its endpoint). Once a model is in initial rating or listed, changing either would swap
the model behind its name and ratings, so for those models a change of access kind,
endpoint address or endpoint model id is a request (providers.models.ChangeRequest) that
staff approve or refuse; until approved, the model is served with its approved values. The
rules are checked when the change is asked for and again when it is approved. Replacing the
API key alone is no such change (the provider rotates its own secret), but it is logged.

Every step is one function that locks the model's row, checks, writes and appends a
LifecycleEvent in one transaction; the lifecycle log's receiver puts each step in the
security audit log too (arenasite/audit.py). A refusal raises TransitionRefused with a
rule and a sentence, as providers.lifecycle does. The API and the portal edit through
providers.registration, which checks the edit's rules and calls model_edit(); the admin
calls these functions; none of them applies such a change itself.

Steps in the lifecycle log (the status does not change, so `from_status == to_status`):
request-change, withdraw-change, approve-change, refuse-change and rotate-key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, models, transaction

from arenasite import clock

from . import access, names
from .endpoints import endpoint_refusal
from .lifecycle import REASON_MAX_LENGTH, TransitionRefused
from .models import ArenaModel, ChangeRequest, LifecycleEvent

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)
Status = ArenaModel.Status

# What staff review for a model in the pool, and the statuses where they do.
REVIEWED_FIELDS = ("access_kind", "endpoint_base_url", "endpoint_model_id")
REVIEWED_STATUSES = ArenaModel.POOL_STATUSES


class ChangeAction(models.TextChoices):
    REQUEST = "request-change", "Request an access or endpoint change"
    WITHDRAW = "withdraw-change", "Withdraw the change request"
    APPROVE = "approve-change", "Approve the change"
    REFUSE = "refuse-change", "Refuse the change"
    ROTATE_KEY = "rotate-key", "Replace the endpoint API key"


# Steps the public registry does not show: an approved change is public (the model answering
# behind a public name changed), the rest is between the provider and staff.
PRIVATE_ACTIONS = frozenset({ChangeAction.REQUEST, ChangeAction.WITHDRAW, ChangeAction.REFUSE, ChangeAction.ROTATE_KEY})


class InvalidName(ValueError):
    """A public name taken between validation and saving (a concurrent request)."""


@dataclass(frozen=True)
class EditOutcome:
    model: ArenaModel
    change: ChangeRequest | None  # the pending request this edit made, or found with the same values
    key_rotated: bool = False

    def describe(self) -> str:
        if self.change is not None:
            return (
                f"The change of access or endpoint ({self.change.describe()}) waits for staff; "
                f"{self.model.display_name} is served as approved until then."
            )
        return "Saved."


@dataclass(frozen=True)
class ChangeOutcome:
    change: ChangeRequest
    event: LifecycleEvent | None  # None when nothing needed doing

    @property
    def changed(self) -> bool:
        return self.event is not None


def may_decide(user: access.Person | None) -> bool:
    """Staff who move models through their lifecycle also decide their change requests."""
    return access.moves_models(user)


def pending_change(model: ArenaModel) -> ChangeRequest | None:
    return model.change_requests.filter(state=ChangeRequest.State.PENDING).first()


def model_edit(*, model_id: int, actor: User | None, values: dict[str, Any]) -> EditOutcome:
    """Change some fields of a model, writing only those in `values`.

    For a model in the pool, new values of REVIEWED_FIELDS become a pending request (with
    the API key, if one was sent: it belongs to the new endpoint) and the rest is saved at
    once. Asking again for what is already pending changes nothing; asking for something
    else while a request is pending is refused (`change_pending`): withdraw it first. A key
    replaced on its own is saved and logged (`rotate-key`) for any model past draft.

    The caller (providers.registration) has checked the values against the field rules and
    decided the actor may edit the model; a retired, rejected or withdrawn model is refused
    here too.
    """
    values = dict(values)
    with transaction.atomic():
        # The row lock orders this edit with transitions and decisions on the same model.
        model = ArenaModel.objects.select_for_update().get(pk=model_id)
        if model.status in ArenaModel.TERMINAL_STATUSES:
            raise TransitionRefused("invalid_state", f"A {model.get_status_display().lower()} model cannot be edited.")
        now = clock.now()
        key = values.pop("endpoint_api_key", None)
        asked = {field: values.pop(field) for field in REVIEWED_FIELDS if field in values}
        wanted = {field: value for field, value in asked.items() if value != getattr(model, field)}
        change = None
        if model.status not in REVIEWED_STATUSES:
            values.update(wanted)
        elif wanted:
            change = _request(model, actor, wanted, key, now)
            key = None  # the key waits with the request
        rotated = key is not None and key != model.endpoint_api_key
        if rotated:
            values["endpoint_api_key"] = key
        for field, value in values.items():
            setattr(model, field, value)
        if values:
            try:
                with transaction.atomic():
                    model.save(update_fields=list(values))
            except IntegrityError:
                refusal = names.name_refusal(model.name, provider=model.provider, exclude_pk=model.pk)
                if refusal:
                    raise InvalidName(refusal) from None
                raise
        if rotated and model.status != Status.DRAFT:
            what = "replaced" if key else "removed"
            _log(model, ChangeAction.ROTATE_KEY, actor, f"The endpoint API key was {what}.", now)
        return EditOutcome(model, change, rotated)


def _pending_locked(model: ArenaModel) -> ChangeRequest | None:
    return (
        ChangeRequest.objects.select_for_update().filter(arena_model=model, state=ChangeRequest.State.PENDING).first()
    )


def _request(
    model: ArenaModel, actor: User | None, wanted: dict[str, str], key: str | None, now: datetime
) -> ChangeRequest:
    served = {field: getattr(model, field) for field in REVIEWED_FIELDS}
    target = {**served, **wanted}
    pending = _pending_locked(model)
    if pending is not None:
        if pending.requested_values() == target and (key is None or key == pending.endpoint_api_key):
            return pending  # asked again: already waiting
        raise TransitionRefused(
            "change_pending",
            f"A change of access or endpoint ({pending.describe()}) already waits for staff since "
            f"{pending.requested_at:%Y-%m-%d %H:%M} UTC; withdraw it before asking for another.",
        )
    _check_rules(model, target)
    change = ChangeRequest.objects.create(
        arena_model=model,
        previous=served,
        **target,
        endpoint_api_key=key or "",
        replaces_api_key=key is not None,
        requested_by=actor,
        requested_at=now,
    )
    _log(model, ChangeAction.REQUEST, actor, change.describe(), now)
    return change


def _check_rules(model: ArenaModel, target: dict[str, str]) -> None:
    """The admission rules, for the values that would answer behind the model."""
    if target["access_kind"] == ArenaModel.AccessKind.PRIVATE:
        raise TransitionRefused(
            "third_party_access",
            f"Only models that third parties can reach (open weights, a public API or a public service) may be "
            f"in the arena; {model.display_name} cannot become private.",
        )
    if not model.is_demo and not (target["endpoint_base_url"] and target["endpoint_model_id"]):
        raise TransitionRefused(
            "endpoint_required",
            f"{model.display_name} is in the arena: it needs an endpoint address and model id to answer.",
        )
    refusal = endpoint_refusal(target["endpoint_base_url"]) if target["endpoint_base_url"] else None
    if refusal:
        raise TransitionRefused("endpoint_address", refusal)


def change_withdraw(*, model_id: int, actor: User | None) -> ChangeOutcome:
    """Withdraw the model's pending request; the approved values stay. Refused when none waits."""
    with transaction.atomic():
        model = ArenaModel.objects.select_for_update().get(pk=model_id)
        change = _pending_locked(model)
        if change is None:
            raise TransitionRefused("no_pending_change", f"No change of {model.display_name} waits for staff.")
        now = clock.now()
        _close(change, ChangeRequest.State.WITHDRAWN, actor, "", now)
        event = _log(model, ChangeAction.WITHDRAW, actor, change.describe(), now)
        return ChangeOutcome(change, event)


def change_approve(*, change_id: int, actor: User | None, reason: str = "") -> ChangeOutcome:
    """Approve a pending request: the rules are checked again against the model as it is now,
    then the new values (and the key sent with them) are what battles and health checks use.
    Idempotent: approving an approved request changes nothing."""
    reason = _reason(reason)
    model_id = ChangeRequest.objects.values_list("arena_model_id", flat=True).get(pk=change_id)
    with transaction.atomic():
        # The model first, then the request: the order model_edit() takes them in.
        model = ArenaModel.objects.select_for_update().get(pk=model_id)
        change = ChangeRequest.objects.select_for_update().get(pk=change_id)
        if change.state == ChangeRequest.State.APPROVED:
            return ChangeOutcome(change, None)
        _check_pending(change)
        if model.status not in REVIEWED_STATUSES:
            raise TransitionRefused(
                "invalid_state",
                f"{model.name} is {model.get_status_display().lower()}: no change is applied to a model out of the "
                "arena; refuse the request instead.",
            )
        _check_rules(model, change.requested_values())
        fields = list(REVIEWED_FIELDS)
        for field, value in change.requested_values().items():
            setattr(model, field, value)
        if change.replaces_api_key:
            model.endpoint_api_key = change.endpoint_api_key
            fields.append("endpoint_api_key")
        model.save(update_fields=fields)
        now = clock.now()
        _close(change, ChangeRequest.State.APPROVED, actor, reason, now)
        event = _log(model, ChangeAction.APPROVE, actor, _with_reason(change.describe(), reason), now)
        return ChangeOutcome(change, event)


def change_refuse(*, change_id: int, actor: User | None, reason: str) -> ChangeOutcome:
    """Refuse a pending request, with a reason the provider reads; the approved values stay.
    Idempotent: refusing a refused request changes nothing."""
    reason = _reason(reason)
    if not reason:
        raise TransitionRefused("reason_required", "Refusing a change needs a reason for the provider.")
    model_id = ChangeRequest.objects.values_list("arena_model_id", flat=True).get(pk=change_id)
    with transaction.atomic():
        model = ArenaModel.objects.select_for_update().get(pk=model_id)
        change = ChangeRequest.objects.select_for_update().get(pk=change_id)
        if change.state == ChangeRequest.State.REFUSED:
            return ChangeOutcome(change, None)
        _check_pending(change)
        now = clock.now()
        _close(change, ChangeRequest.State.REFUSED, actor, reason, now)
        event = _log(model, ChangeAction.REFUSE, actor, _with_reason(change.describe(), reason), now)
        return ChangeOutcome(change, event)


def _reason(reason: str) -> str:
    reason = reason.strip()
    if len(reason) > REASON_MAX_LENGTH:
        raise TransitionRefused("reason_too_long", f"The reason is limited to {REASON_MAX_LENGTH} characters.")
    return reason


def _with_reason(description: str, reason: str) -> str:
    return f"{description}. {reason}" if reason else description


def _check_pending(change: ChangeRequest) -> None:
    if change.state != ChangeRequest.State.PENDING:
        raise TransitionRefused(
            "not_pending",
            f"This change request is {change.get_state_display().lower()}; only a waiting one is decided.",
        )


def _close(change: ChangeRequest, state: str, actor: User | None, reason: str, now: datetime) -> None:
    # The key sent with a request is kept no longer than the request waits.
    change.state, change.decided_by, change.decided_at, change.decision_reason = state, actor, now, reason
    change.endpoint_api_key = ""
    change.save(update_fields=["state", "decided_by", "decided_at", "decision_reason", "endpoint_api_key"])


def _log(model: ArenaModel, action: ChangeAction, actor: User | None, reason: str, now: datetime) -> LifecycleEvent:
    event = LifecycleEvent.objects.create(
        arena_model=model,
        action=action,
        kind=LifecycleEvent.Kind.DONE,
        from_status=model.status,
        to_status=model.status,
        actor=actor,
        reason=reason[:REASON_MAX_LENGTH],
        effective_at=now,
        created_at=now,
    )
    logger.info("changes: %s %s by %s", model.name, action, actor or "system")
    return event

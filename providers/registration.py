"""Registering a model and editing its record: the rules, in one place for every caller.

The REST API (POST and PATCH /api/v1/models/) and the provider portal call these functions
with values whose shape their serializer or form has checked (types, lengths, choices).
The rules are here:

- a model is registered by a member of its provider, which stays its provider;
- public names follow providers.names (unique within the provider and among public models,
  nothing reserved), and change only while the model is a draft;
- an endpoint is an http(s) URL the server may call (providers.endpoints);
- who may edit is providers.access.may_edit; a retired, rejected or withdrawn model
  (ArenaModel.TERMINAL_STATUSES) is edited by no one;
- the write itself is providers.changes.model_edit, the one writer of model edits: for a
  model in the pool, a new access kind or endpoint becomes a request staff approve.

An edit is judged under the model's row lock, in the transaction that writes it, so it
cannot race a transition: the status it is checked against is the one it is saved with.
Refusals: InvalidFields (field -> sentences, for the form or the 400), EditRefused (not this
user, or not this model any more: a 403), and TransitionRefused from providers.changes
(a rule of the change review, e.g. a change already pending: a 409).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction

from . import access, changes, names
from .endpoints import endpoint_refusal
from .models import ArenaModel, Provider

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# What a provider sets on its model; everything else is the lifecycle's or staff's.
EDITABLE_FIELDS = frozenset(
    {
        "name",
        "access_kind",
        "licence",
        "description",
        "knowledge_cutoff",
        "heads_up_requested",
        "endpoint_base_url",
        "endpoint_model_id",
        "endpoint_api_key",
        "temperature",
    }
)


class InvalidFields(Exception):
    """Values the rules refuse. `errors` maps a field name ("provider" for the owner) to
    sentences fit to show next to it; nothing was saved."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("; ".join(message for messages in errors.values() for message in messages))


class EditRefused(PermissionDenied):
    """The user may not edit this model, or no one may any more. A PermissionDenied, so the API
    answers it with a 403 and its sentence."""


def provider_for(*, user: User, slug: str | None) -> Provider:
    """The provider a new model of `user` belongs to: the one named by `slug` among the user's
    own, or the only one they have when no slug is given.

    A slug of a provider the user does not belong to is refused in the same words whether it
    exists or not, so the answer tells nothing about other providers."""
    providers = Provider.objects.filter(memberships__user=user)
    if slug is not None:
        provider = providers.filter(slug=slug).first()
        if provider is None:
            raise InvalidFields({"provider": [f"You are not a member of a provider with the slug {slug!r}."]})
        return provider
    only = list(providers[:2])
    if len(only) != 1:
        message = (
            "You belong to several providers (or none); name one by its slug."
            if only
            else "You are not a member of any provider."
        )
        raise InvalidFields({"provider": [message]})
    return only[0]


def model_register(*, provider: Provider, user: User, values: Mapping[str, Any]) -> ArenaModel:
    """A new draft model of `provider`, registered by `user`, one of its members.

    `values` holds some of EDITABLE_FIELDS (a name at least). Not idempotent: a second call
    with the same name is refused, since the provider then has a model of that name."""
    values = _editable(values)
    if not access.member_of(user, provider):
        raise EditRefused(f"Only members of {provider.name} may register its models.")
    if not values.get("name"):
        raise InvalidFields({"name": ["A model needs a public name."]})
    _check(values, provider=provider, model=None)
    try:
        # A savepoint: the insert may fail on the unique name indexes, and the caller's
        # transaction, if any, must stay usable.
        with transaction.atomic():
            return ArenaModel.objects.create(provider=provider, **values)
    except IntegrityError:
        # A name taken by another request between the check and the insert is bad input, not an error.
        refusal = names.name_refusal(values["name"], provider=provider)
        if refusal:
            raise InvalidFields({"name": [refusal]}) from None
        raise


def model_update(
    *, model_id: int, user: User, values: Mapping[str, Any], provider_slug: str | None = None
) -> changes.EditOutcome:
    """Change some fields of a model: only those in `values` (some of EDITABLE_FIELDS) are written.

    `provider_slug`, if given, must name the model's own provider (a model never moves to
    another one). Checked and written under the row lock, in one transaction. For a model in
    the pool, a new access kind or endpoint becomes a request for staff (providers.changes);
    the outcome says which. Idempotent: sending the values the model has changes nothing.
    """
    values = _editable(values)
    with transaction.atomic():
        model = _editable_model(model_id, user)
        if provider_slug is not None and provider_slug != model.provider.slug:
            raise InvalidFields({"provider": ["A model cannot move to another provider."]})
        _check(values, provider=model.provider, model=model)
        try:
            return changes.model_edit(model_id=model.pk, actor=user, values=values)
        except changes.InvalidName as exc:
            raise InvalidFields({"name": [str(exc)]}) from None


def change_withdraw(*, model_id: int, user: User) -> changes.ChangeOutcome:
    """Withdraw the model's pending change of access or endpoint, for someone who may edit it;
    the approved values stay. TransitionRefused when no change waits."""
    with transaction.atomic():
        model = _editable_model(model_id, user)
        return changes.change_withdraw(model_id=model.pk, actor=user)


def _editable_model(model_id: int, user: User) -> ArenaModel:
    """The model, locked, once `user` may edit it and it has not left the arena."""
    # The model's row only (of=self), not its provider's: admissions lock the provider to count
    # its models in initial rating, and an edit need not wait for them.
    model = ArenaModel.objects.select_for_update(of=("self",)).select_related("provider").get(pk=model_id)
    if not access.may_edit(user, model):
        raise EditRefused("Only the provider's members and staff who may change models may edit it.")
    if model.status in ArenaModel.TERMINAL_STATUSES:
        raise EditRefused(f"A {model.get_status_display().lower()} model cannot be edited.")
    return model


def _editable(values: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(values) - EDITABLE_FIELDS
    if unknown:
        # A caller's mistake, not the user's: the serializer and the form offer only these fields.
        raise ValueError(f"Not fields a provider sets: {', '.join(sorted(unknown))}.")
    return dict(values)


def _check(values: Mapping[str, Any], *, provider: Provider, model: ArenaModel | None) -> None:
    """The field rules, all of them, so the caller shows every refusal at once."""
    errors: dict[str, list[str]] = {}
    if "name" in values and (model is None or values["name"] != model.name):
        if model is not None and model.status != ArenaModel.Status.DRAFT:
            refusal: str | None = "The public name can only change while the model is a draft."
        else:
            refusal = names.name_refusal(
                values["name"], provider=provider, exclude_pk=model.pk if model is not None else None
            )
        if refusal:
            errors["name"] = [refusal]
    if values.get("endpoint_base_url"):
        refusal = _endpoint_url_refusal(values["endpoint_base_url"])
        if refusal:
            errors["endpoint_base_url"] = [refusal]
    if errors:
        raise InvalidFields(errors)


def _endpoint_url_refusal(url: str) -> str | None:
    # A URL field also takes ftp:// and ftps://, but the endpoint is called over HTTP.
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        return "The endpoint must be an http:// or https:// URL."
    return endpoint_refusal(url)

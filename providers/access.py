"""Who may see a provider's models and who may act on them: the one vocabulary.

The REST API, the provider portal and the admin ask these questions rather than spelling the
answer out themselves, so a rule changes in one place:

- a provider's **members** see and edit all of its models and take the provider's own
  lifecycle actions (submit, withdraw, request retirement);
- **staff** hold only the powers their permissions give, as in the admin: being staff is not
  enough. Viewing, changing or moving models lets them see every model; changing models lets
  them edit any of them; moving models (the transition permission) lets them take every
  lifecycle action and decide change requests.

A staff member acting without a second factor, or through a token issued without one, reaches
these functions with `is_staff` off (arenasite.mfa.withhold_staff_powers), so every answer
here is the one for an ordinary account.

This module imports no model at run time: providers.models builds its querysets on
sees_every_model().
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    from .models import ArenaModel, Membership, Provider

    Person: TypeAlias = User | AnonymousUser

# Any of these lets staff see every model, listed or not, with its private ratings.
MODEL_STAFF_PERMISSIONS = (
    "providers.view_arenamodel",
    "providers.change_arenamodel",
    "providers.transition_arenamodel",
)
CHANGE_PERMISSION = "providers.change_arenamodel"
TRANSITION_PERMISSION = "providers.transition_arenamodel"


def staff_with(user: Person | None, permission: str) -> bool:
    """Staff holding `permission` (being staff alone gives no power)."""
    return bool(user is not None and user.is_authenticated and user.is_staff and user.has_perm(permission))


def sees_every_model(user: Person | None) -> bool:
    """Staff who may see every model, listed or not, and its private ratings: those who may
    view, change or move models."""
    return any(staff_with(user, permission) for permission in MODEL_STAFF_PERMISSIONS)


def moves_models(user: Person | None) -> bool:
    """Staff who move models through their lifecycle (every action) and decide the change
    requests of models in the pool."""
    return staff_with(user, TRANSITION_PERMISSION)


def changes_models(user: Person | None) -> bool:
    """Staff who may edit any model's fields, as in the admin's change form."""
    return staff_with(user, CHANGE_PERMISSION)


def member_of(user: Person | None, provider: Provider) -> bool:
    """Whether `user` is a member (of any role) of `provider`.

    Reads the provider's memberships when a list prefetched them (one query for a whole page),
    else asks the database about this one user.
    """
    if user is None or not user.is_authenticated:
        return False
    prefetched = getattr(provider, "_prefetched_objects_cache", {}).get("memberships")
    if prefetched is not None:
        return any(membership.user_id == user.pk for membership in prefetched)
    return provider.memberships.filter(user_id=user.pk).exists()


def membership_in(user: Person | None, slug: str) -> Membership | None:
    """The user's membership of the provider with this slug, with the provider; None when they
    are not a member, or when no such provider exists: the same answer, so that a provider's
    pages (404 without one) tell nothing of other providers."""
    if user is None or not user.is_authenticated:
        return None
    return user.memberships.select_related("provider").filter(provider__slug=slug).first()


def sees_record(user: Person | None, model: ArenaModel) -> bool:
    """Whether `user` sees the model's whole record (endpoint, codename, lifecycle log, pending
    change), not only what the public sees of a listed model."""
    return sees_every_model(user) or member_of(user, model.provider)


def may_edit(user: Person | None, model: ArenaModel) -> bool:
    """Whether `user` may change the model's fields. A model that left the arena is edited by
    no one, whoever asks: that is a state rule (providers.registration), not a permission."""
    return member_of(user, model.provider) or changes_models(user)


def may_transition(user: Person | None, model: ArenaModel, action: str) -> bool:
    """Whether `user` may ask for the lifecycle `action` on the model: staff who move models
    any action, the provider's members the provider's own actions (lifecycle.PROVIDER_ACTIONS).
    Whether the action is allowed now is the lifecycle's policy (lifecycle.transition)."""
    # Imported here: lifecycle imports providers.models, which imports this module.
    from .lifecycle import PROVIDER_ACTIONS

    if moves_models(user):
        return True
    return action in PROVIDER_ACTIONS and member_of(user, model.provider)


def actor_label(actor: User | None, *, viewer: Person | None) -> str | None:
    """How a model's lifecycle log names who acted, to `viewer`: providers see that staff
    acted, not which staff member; None for the scheduler."""
    if actor is None:
        return None
    if actor.is_staff and not (viewer is not None and viewer.is_staff):
        return "staff"
    return actor.get_username()

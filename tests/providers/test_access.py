"""providers.access: who sees a model whole and who may act on it, asked in one vocabulary by
the API, the portal and the change review."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser, Permission

from arenasite.mfa import withhold_staff_powers
from providers import access, changes
from providers.lifecycle import Action
from providers.models import ArenaModel, Provider

from ..conftest import make_model
from ..factories import UserFactory

pytestmark = pytest.mark.django_db
S = ArenaModel.Status


def staff_with(*codenames: str):
    user = UserFactory(username=f"{'-'.join(codenames) or 'none'}@arenasite.example", staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


@pytest.mark.parametrize(
    ("codenames", "sees", "changes_", "moves"),
    [
        ((), False, False, False),
        (("view_arenamodel",), True, False, False),
        (("change_arenamodel",), True, True, False),
        (("transition_arenamodel",), True, False, True),
    ],
)
def test_staff_hold_only_the_powers_their_permissions_give(codenames, sees, changes_, moves):
    user = staff_with(*codenames)
    assert (access.sees_every_model(user), access.changes_models(user), access.moves_models(user)) == (
        sees,
        changes_,
        moves,
    )
    assert changes.may_decide(user) == moves


def test_permissions_without_the_staff_flag_or_with_powers_withheld_give_nothing(provider_a):
    model = make_model(provider_a)
    user = staff_with("view_arenamodel", "change_arenamodel", "transition_arenamodel")
    withhold_staff_powers(user, "no second factor")
    not_staff = UserFactory(username="perms-only@example.com")
    not_staff.user_permissions.add(*Permission.objects.filter(codename__endswith="_arenamodel"))
    for person in (user, not_staff, AnonymousUser(), None):
        assert not access.sees_every_model(person)
        assert not access.moves_models(person)
        assert not access.sees_record(person, model)
        assert not access.may_transition(person, model, Action.ADMIT)


def test_members_see_and_act_on_their_providers_models_only(provider_a, provider_b, member_a, member_b):
    model = make_model(provider_a)
    assert access.member_of(member_a, provider_a) and not access.member_of(member_b, provider_a)
    assert access.sees_record(member_a, model) and not access.sees_record(member_b, model)
    assert access.may_edit(member_a, model) and not access.may_edit(member_b, model)
    assert access.may_transition(member_a, model, Action.SUBMIT)
    assert not access.may_transition(member_a, model, Action.ADMIT)  # a staff action
    assert not access.may_transition(member_b, model, Action.SUBMIT)


def test_staff_who_move_models_take_every_action_but_edit_only_with_the_change_permission(provider_a, staff):
    model = make_model(provider_a, S.LISTED)
    assert all(access.may_transition(staff, model, action) for action in Action)
    assert access.sees_record(staff, model) and not access.may_edit(staff, model)
    assert access.may_edit(staff_with("change_arenamodel"), model)


def test_a_providers_pages_find_a_membership_by_slug_and_nothing_for_others(provider_a, provider_b, member_a):
    assert access.membership_in(member_a, "provider-a").provider == provider_a
    assert access.membership_in(member_a, "provider-b") is None
    assert access.membership_in(member_a, "no-such-provider") is None
    assert access.membership_in(AnonymousUser(), "provider-a") is None


def test_membership_answers_from_prefetched_memberships_without_a_query(
    provider_a, member_a, member_b, django_assert_num_queries
):
    provider = Provider.objects.prefetch_related("memberships").get(pk=provider_a.pk)
    with django_assert_num_queries(0):
        assert access.member_of(member_a, provider)
        assert not access.member_of(member_b, provider)


def test_the_log_names_staff_as_staff_to_providers_and_by_name_to_staff(member_a, staff):
    assert access.actor_label(staff, viewer=member_a) == "staff"
    assert access.actor_label(staff, viewer=staff) == staff.get_username()
    assert access.actor_label(member_a, viewer=member_a) == member_a.get_username()
    assert access.actor_label(None, viewer=member_a) is None

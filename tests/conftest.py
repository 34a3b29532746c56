"""Shared personas: two providers with a member each, staff with and without the
lifecycle permission, and API clients that authenticate with real bearer tokens."""

from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from arenasite import clock
from providers.lifecycle import Action, transition
from providers.models import ApiToken, ArenaModel

from .factories import ArenaModelFactory, MembershipFactory, ProviderFactory, UserFactory


@pytest.fixture
def provider_a(db):
    return ProviderFactory(name="Provider A", slug="provider-a")


@pytest.fixture
def provider_b(db):
    return ProviderFactory(name="Provider B", slug="provider-b")


@pytest.fixture
def member_a(provider_a):
    return MembershipFactory(provider=provider_a, user=UserFactory(username="alice@a.example")).user


@pytest.fixture
def member_b(provider_b):
    return MembershipFactory(provider=provider_b, user=UserFactory(username="bob@b.example")).user


@pytest.fixture
def staff(db):
    return UserFactory(username="staff@arenasite.example", staff=True, can_transition=True)


@pytest.fixture
def staff_without_permission(db):
    return UserFactory(username="intern@arenasite.example", staff=True)


def token_client(user) -> APIClient:
    client = APIClient()
    _, raw = ApiToken.objects.issue(user=user, name="test")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def anon_client():
    return APIClient()


@pytest.fixture
def client_a(member_a):
    return token_client(member_a)


@pytest.fixture
def client_b(member_b):
    return token_client(member_b)


@pytest.fixture
def staff_client(staff):
    return token_client(staff)


def make_model(provider, status: str = ArenaModel.Status.DRAFT, *, votes: int = 0, staff=None, **fields):
    """A model walked to `status` through the real lifecycle service."""
    model = ArenaModelFactory(provider=provider, votes_counted=max(votes, 0), **fields)
    path = {
        "draft": [],
        "submitted": [Action.SUBMIT],
        "rejected": [Action.SUBMIT, Action.REJECT],
        "initial_rating": [Action.SUBMIT, Action.ADMIT],
        "withdrawn": [Action.SUBMIT, Action.ADMIT, Action.WITHDRAW],
        "listed": [Action.SUBMIT, Action.ADMIT, Action.PUBLISH],
        "retired": [Action.SUBMIT, Action.ADMIT, Action.PUBLISH],
    }[status]
    if status in ("listed", "retired") and model.votes_counted < 1000:
        ArenaModel.objects.filter(pk=model.pk).update(votes_counted=1000)
    for action in path:
        transition(model_id=model.pk, action=action, actor=staff, reason="set-up")
    if status == "retired":
        # Past the listing window, so the retirement happens at once.
        ArenaModel.objects.filter(pk=model.pk).update(listed_at=clock.now() - timedelta(days=30))
        transition(model_id=model.pk, action=Action.RETIRE, actor=staff, reason="set-up")
    model.refresh_from_db()
    return model


@pytest.fixture(autouse=True)
def answers_ended_before_the_database_is_emptied(request):
    """A test on a committed database (transaction=True, live servers) may end while the
    answering threads still write its battles; emptying the tables then (TRUNCATE) would
    deadlock with them. Those tests wait, after their last step, for the answers to end."""
    marker = request.node.get_closest_marker("django_db")
    transactional = (marker is not None and marker.kwargs.get("transaction")) or any(
        name in request.fixturenames for name in ("transactional_db", "live_server", "asgi_live_server")
    )
    if not transactional:
        yield
        return
    # Set up the database fixture first, so that it is torn down (emptied) after this one.
    request.getfixturevalue("_django_db_helper")
    yield
    from battles import answering

    answering.wait_until_idle(timeout=60)


@pytest.fixture(autouse=True)
def empty_cache():
    """Each test starts with an empty cache (leaderboard pages are cached per run id)."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()

"""Who reaches which portal page: anonymous visitors go to the login, members see their own
provider only, and another provider's pages and objects are 404 whatever the method."""

from __future__ import annotations

import pytest
from django.test import Client

from providers.models import ApiToken, ArenaModel, LifecycleEvent, Membership
from releases.models import DataSharingAgreement, ProviderShare

from ..conftest import make_model
from ..factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db
S = ArenaModel.Status


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def model_a(provider_a):
    return make_model(provider_a, S.INITIAL_RATING, name="a-secret")


def provider_pages(slug: str, pk: int) -> list[tuple[str, str]]:
    base = f"/portal/providers/{slug}"
    return [
        ("get", f"{base}/"),
        ("get", f"{base}/models/new/"),
        ("post", f"{base}/models/new/"),
        ("get", f"{base}/models/{pk}/"),
        ("get", f"{base}/models/{pk}/edit/"),
        ("post", f"{base}/models/{pk}/edit/"),
        ("post", f"{base}/models/{pk}/test/"),
        ("post", f"{base}/models/{pk}/heads-up/"),
        ("post", f"{base}/models/{pk}/withdraw/"),
        ("get", f"{base}/data/"),
        ("post", f"{base}/data/accept/"),
        ("post", f"{base}/data/shares/"),
    ]


def test_anonymous_visitors_are_sent_to_the_login(client, model_a):
    pages = [("get", "/portal/"), ("get", "/portal/new-provider/"), ("get", "/portal/tokens/")]
    pages += [("post", "/portal/tokens/1/revoke/"), *provider_pages("provider-a", model_a.pk)]
    for method, url in pages:
        response = getattr(client, method)(url)
        assert response.status_code == 302, (method, url)
        assert response["Location"].startswith("/accounts/login/?next="), (method, url)


def test_another_providers_member_gets_404_everywhere_and_changes_nothing(member_b, model_a):
    client = logged_in(member_b)
    events = LifecycleEvent.objects.count()
    for method, url in provider_pages("provider-a", model_a.pk):
        data = {
            "reason": "mine now",
            "name": "renamed",
            "access_kind": "open_weights",
            "version": "2024-06",
            "accept": "on",
            "heads_up_requested": "on",
        }
        response = getattr(client, method)(url, data) if method == "post" else client.get(url)
        assert response.status_code == 404, (method, url)
    model_a.refresh_from_db()
    assert (model_a.status, model_a.name, model_a.heads_up_requested) == (S.INITIAL_RATING, "a-secret", False)
    assert LifecycleEvent.objects.count() == events
    assert not DataSharingAgreement.objects.exists() and not ProviderShare.objects.exists()


def test_a_model_is_404_under_the_slug_of_a_provider_it_does_not_belong_to(member_a, member_b, provider_a, model_a):
    """A member of both providers still reaches a model only under its own provider's slug."""
    Membership.objects.create(provider=provider_a, user=member_b)
    client = logged_in(member_b)
    assert client.get(f"/portal/providers/provider-a/models/{model_a.pk}/").status_code == 200
    assert client.get(f"/portal/providers/provider-b/models/{model_a.pk}/").status_code == 404
    response = client.post(f"/portal/providers/provider-b/models/{model_a.pk}/withdraw/", {"reason": "x"})
    assert response.status_code == 404
    assert ArenaModel.objects.get(pk=model_a.pk).status == S.INITIAL_RATING


def test_staff_who_are_not_members_use_the_admin_not_the_portal(staff, model_a):
    client = logged_in(staff)
    assert client.get("/portal/providers/provider-a/").status_code == 404
    assert client.get(f"/portal/providers/provider-a/models/{model_a.pk}/").status_code == 404


def test_the_portal_pages_of_ones_own_provider_open(member_a, model_a):
    client = logged_in(member_a)
    for method, url in provider_pages("provider-a", model_a.pk):
        if method == "get":
            assert client.get(url).status_code == 200, url


def test_a_plain_member_may_do_what_the_api_lets_members_do(provider_a):
    """Roles: the API lets every member submit, withdraw and ask for retirement; so does the portal."""
    member = MembershipFactory(provider=provider_a, user=UserFactory(username="m@a.example")).user
    assert Membership.objects.get(user=member).role == Membership.Role.MEMBER
    model = make_model(provider_a, S.DRAFT, name="by-a-member")
    client = logged_in(member)
    response = client.post(f"/portal/providers/provider-a/models/{model.pk}/submit/", {"reason": ""})
    assert response.status_code == 302
    assert ArenaModel.objects.get(pk=model.pk).status == S.SUBMITTED


@pytest.mark.parametrize("action", ["admit", "publish", "reject", "retire", "unknown"])
def test_staff_actions_are_not_offered_to_providers(member_a, provider_a, action):
    model = make_model(provider_a, S.SUBMITTED, name="waiting")
    response = logged_in(member_a).post(f"/portal/providers/provider-a/models/{model.pk}/{action}/", {"reason": "r"})
    assert response.status_code == 404
    assert ArenaModel.objects.get(pk=model.pk).status == S.SUBMITTED


def test_the_nav_links_the_portal_for_logged_in_users_only(client, member_a):
    assert b"Provider portal" not in client.get("/").content
    assert b"Provider portal" in logged_in(member_a).get("/").content


def test_writes_need_post(member_a, model_a):
    client = logged_in(member_a)
    assert client.get(f"/portal/providers/provider-a/models/{model_a.pk}/withdraw/").status_code == 405
    assert client.get("/portal/providers/provider-a/data/shares/").status_code == 405
    assert client.get("/portal/tokens/1/revoke/").status_code == 405
    assert not ApiToken.objects.exists()

"""Starting in the portal (creating a provider) and the user's own API tokens."""

from __future__ import annotations

import pytest
from django.test import Client

from providers.models import ApiToken, Membership, Provider

from ..factories import UserFactory

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def newcomer(db):
    return UserFactory(username="new@c.example")


# --- providers -------------------------------------------------------------------------------


def test_a_user_without_a_provider_is_offered_to_create_one_or_be_added(newcomer):
    html = logged_in(newcomer).get("/portal/").content.decode()
    assert "Create a provider" in html and "staff to add your account" in html


def test_creating_a_provider_makes_its_creator_the_admin(newcomer):
    client = logged_in(newcomer)
    response = client.post("/portal/new-provider/", {"name": "  Cirrus Labs ", "website": "cirrus.example"})
    provider = Provider.objects.get()
    assert response.status_code == 302 and response["Location"] == "/portal/providers/cirrus-labs/"
    assert (provider.name, provider.slug, provider.website, provider.contact_email) == (
        "Cirrus Labs", "cirrus-labs", "https://cirrus.example", "new@c.example",
    )  # fmt: skip
    assert Membership.objects.get(user=newcomer).role == Membership.Role.ADMIN
    # With one provider, the portal opens on its dashboard.
    assert client.get("/portal/")["Location"] == "/portal/providers/cirrus-labs/"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("provider a", "already exists"),  # the same name in another case
        ("Provider-A", "already exists"),  # the same slug
        ("!!!", "at least one letter or digit"),
        ("", "This field is required."),
    ],
)
def test_a_taken_or_empty_provider_name_is_refused(newcomer, provider_a, name, message):
    response = logged_in(newcomer).post("/portal/new-provider/", {"name": name})
    assert response.status_code == 400
    assert message in str(response.context["form"].errors)
    assert list(Provider.objects.all()) == [provider_a]
    assert not Membership.objects.filter(user=newcomer).exists()


def test_a_member_of_several_providers_chooses_one(member_a, provider_b):
    Membership.objects.create(provider=provider_b, user=member_a)
    html = logged_in(member_a).get("/portal/").content.decode()
    assert "/portal/providers/provider-a/" in html and "/portal/providers/provider-b/" in html


# --- tokens ----------------------------------------------------------------------------------


def test_a_new_token_is_shown_once_and_works_against_the_api(member_a):
    client = logged_in(member_a)
    response = client.post("/portal/tokens/", {"name": "ci"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    raw = response.context["new_token"]
    token = ApiToken.objects.get(user=member_a)
    assert raw.startswith(f"arena_{token.prefix}_") and raw in response.content.decode()
    assert raw not in client.get("/portal/tokens/").content.decode()
    api = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get("/api/v1/models/").status_code == 200
    assert api.post("/api/v1/models/", {"name": "via-token"}, content_type="application/json").status_code == 201


def test_a_token_is_revoked_for_good(member_a):
    token, raw = ApiToken.objects.issue(user=member_a, name="old")
    client = logged_in(member_a)
    assert client.post(f"/portal/tokens/{token.pk}/revoke/").status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    api = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.post("/api/v1/models/", {"name": "x"}, content_type="application/json").status_code == 401
    revoked_at = token.revoked_at
    client.post(f"/portal/tokens/{token.pk}/revoke/")
    token.refresh_from_db()
    assert token.revoked_at == revoked_at


def test_another_users_token_is_404_and_stays_active(member_a, member_b):
    token, _ = ApiToken.objects.issue(user=member_b, name="bobs")
    client = logged_in(member_a)
    assert client.post(f"/portal/tokens/{token.pk}/revoke/").status_code == 404
    assert ApiToken.objects.get(pk=token.pk).revoked_at is None
    assert "bobs" not in client.get("/portal/tokens/").content.decode()


def test_a_token_needs_a_name_and_a_provider(member_a, newcomer):
    response = logged_in(member_a).post("/portal/tokens/", {"name": "  "})
    assert response.status_code == 400
    assert logged_in(newcomer).post("/portal/tokens/", {"name": "mine"}).status_code == 403
    assert not ApiToken.objects.exists()

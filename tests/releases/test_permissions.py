"""Who may do what with releases, agreements, shares and downloads: every endpoint against
every persona, each cell asserted.

Personas: anonymous, a member of another provider, a member, an admin of the provider,
staff without the permission, staff with it (the view permissions of the releases models
and the permission to decide agreements). Another provider's objects are "not found"
(404), never "forbidden", so ids do not leak.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from arenasite import clock
from providers.models import ApiToken, ArenaModel, Membership
from releases import building, sharing
from releases.models import DataSharingAgreement, Download

from ..conftest import make_model
from ..factories import MembershipFactory, UserFactory
from .test_release import build, voted_battle

PERSONAS = ("anonymous", "other_member", "member", "provider_admin", "staff_without", "staff_with")
STAFF_PERMISSIONS = (
    "view_datarelease",
    "view_datasharingagreement",
    "decide_datasharingagreement",
    "view_providershare",
    "view_download",
)


@pytest.fixture(autouse=True)
def releases_in_tmp(settings, tmp_path):
    settings.RELEASES_DIR = tmp_path / "releases"


@dataclass
class World:
    ids: dict[str, int] = field(default_factory=dict)
    users: dict[str, object] = field(default_factory=dict)


@pytest.fixture
def world(provider_a, provider_b, member_a, member_b, staff_without_permission) -> World:
    """Provider A and B each with an approved agreement, a ready share and a download; a
    published and a built (unpublished) release."""
    a = make_model(provider_a, ArenaModel.Status.LISTED, name="a-listed")
    b = make_model(provider_b, ArenaModel.Status.LISTED, name="b-listed")
    voted_battle(a, b, days_ago=5)
    published = building.publish(build(clock.now() - timedelta(days=4)))
    voted_battle(a, b, days_ago=1)
    built = build()

    admin_a = MembershipFactory(
        provider=provider_a, user=UserFactory(username="ada@a.example"), role=Membership.Role.ADMIN
    ).user
    staff_with = UserFactory(username="reviewer@arenasite.example", staff=True)
    staff_with.user_permissions.add(*Permission.objects.filter(codename__in=STAFF_PERMISSIONS))

    world = World()
    for name, provider, member in (("a", provider_a, member_a), ("b", provider_b, member_b)):
        agreement, _ = sharing.agreement_accept(provider=provider, user=member)
        sharing.agreement_decide(agreement_id=agreement.pk, approve=True)
        share = sharing.share_build(sharing.share_request(provider=provider, user=member, enqueue=False).pk)
        download = Download.objects.create(user=member, provider=provider, share=share, format="jsonl", bytes=10)
        world.ids |= {f"agreement_{name}": agreement.pk, f"share_{name}": share.pk, f"download_{name}": download.pk}
    world.ids |= {"published": published.pk, "built": built.pk}
    world.users = {
        "anonymous": None,
        "other_member": member_b,
        "member": member_a,
        "provider_admin": admin_a,
        "staff_without": staff_without_permission,
        "staff_with": staff_with,
    }
    return world


def client_for(user) -> APIClient:
    """Token for the API and a session for pages and admin, as a real user would have."""
    client = APIClient()
    if user is not None:
        _, raw = ApiToken.objects.issue(user=user, name="matrix")
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        client.force_login(user)
    return client


@dataclass(frozen=True)
class Endpoint:
    method: str
    url: str
    expected: tuple[int, ...]  # one status per persona, in PERSONAS order
    data: dict | None = None
    visible: tuple | None = None  # for lists: the ids each persona sees, in PERSONAS order


A, B, BOTH, NONE = ("a",), ("b",), ("a", "b"), ()
OWN_ONLY = (None, B, A, A, NONE, BOTH)

ENDPOINTS = {
    # Community releases: anyone reads published ones; staff with the permission review built files.
    "releases list": Endpoint("get", "/api/v1/releases/", (200,) * 6),
    "published release": Endpoint("get", "/api/v1/releases/{published}/", (200,) * 6),
    "built release in the API": Endpoint("get", "/api/v1/releases/{built}/", (404,) * 6),
    "data page": Endpoint("get", "/data/", (200,) * 6),
    "published file": Endpoint("get", "/data/releases/{published}/battles.jsonl", (200,) * 6),
    "built file": Endpoint("get", "/data/releases/{built}/manifest.json", (404, 404, 404, 404, 404, 200)),
    # Agreements.
    "terms": Endpoint("get", "/api/v1/agreements/terms/", (200,) * 6),
    "agreements list": Endpoint("get", "/api/v1/agreements/", (401, 200, 200, 200, 200, 200), visible=OWN_ONLY),
    "agreement of A": Endpoint("get", "/api/v1/agreements/{agreement_a}/", (401, 404, 200, 200, 404, 200)),
    "accept terms for A": Endpoint(
        "post", "/api/v1/agreements/", (401, 400, 200, 200, 400, 400), data={"provider": "provider-a"}
    ),
    # Shares.
    "shares list": Endpoint("get", "/api/v1/shares/", (401, 200, 200, 200, 200, 200), visible=OWN_ONLY),
    "share of A": Endpoint("get", "/api/v1/shares/{share_a}/", (401, 404, 200, 200, 404, 200)),
    "request a share for A": Endpoint(
        "post", "/api/v1/shares/", (401, 400, 201, 201, 400, 400), data={"provider": "provider-a"}
    ),
    "download a share of A": Endpoint(
        "get", "/api/v1/shares/{share_a}/download/?format=jsonl", (401, 404, 200, 200, 404, 200)
    ),
    # Downloads.
    "downloads log": Endpoint("get", "/api/v1/downloads/", (401, 200, 200, 200, 200, 200), visible=OWN_ONLY),
    # Admin: staff with the view permission only (others are sent to the login page).
    "admin releases": Endpoint("get", "/admin/releases/datarelease/", (302, 302, 302, 302, 403, 200)),
    "admin agreements": Endpoint("get", "/admin/releases/datasharingagreement/", (302, 302, 302, 302, 403, 200)),
    "admin shares": Endpoint("get", "/admin/releases/providershare/", (302, 302, 302, 302, 403, 200)),
    "admin share of A": Endpoint(
        "get", "/admin/releases/providershare/{share_a}/change/", (302, 302, 302, 302, 403, 200)
    ),
    "admin downloads": Endpoint("get", "/admin/releases/download/", (302, 302, 302, 302, 403, 200)),
    "admin revoke A": Endpoint(
        "post",
        "/admin/releases/datasharingagreement/",
        (302, 302, 302, 302, 403, 302),
        data={"action": "revoke", "_selected_action": "{agreement_a}", "confirm": "yes", "reason": "matrix"},
    ),
}

CELLS = [(name, persona) for name in ENDPOINTS for persona in PERSONAS]


@pytest.mark.parametrize(("endpoint", "persona"), CELLS, ids=[f"{e}-{p}" for e, p in CELLS])
def test_permission_matrix(world, endpoint, persona):
    spec = ENDPOINTS[endpoint]
    column = PERSONAS.index(persona)
    client = client_for(world.users[persona])
    url = spec.url.format(**world.ids)
    if spec.data is None:
        response = getattr(client, spec.method)(url)
    elif url.startswith("/admin/"):
        data = {key: value.format(**world.ids) for key, value in spec.data.items()}
        response = client.post(url, data)
    else:
        response = client.post(url, spec.data, format="json")

    assert response.status_code == spec.expected[column]

    if spec.visible is not None and response.status_code == 200:
        kind = url.rstrip("/").rsplit("/", 1)[-1].rstrip("s")  # agreement, share, download
        expected = {world.ids[f"{kind}_{name}"] for name in spec.visible[column]}
        assert {row["id"] for row in response.json()["results"]} == expected
    if endpoint == "releases list":
        assert [row["id"] for row in response.json()["results"]] == [world.ids["published"]]
    if endpoint == "admin revoke A":
        state = DataSharingAgreement.objects.get(pk=world.ids["agreement_a"]).state
        assert state == ("revoked" if persona == "staff_with" else "approved")
    if spec.expected[column] in (401, 403, 404) and not url.startswith(("/admin/", "/data/")):
        assert "detail" in response.json()  # API errors are JSON with a sentence


def test_a_download_by_reviewing_staff_is_not_in_the_providers_log(world):
    share_a = world.ids["share_a"]
    client_for(world.users["staff_with"]).get(f"/api/v1/shares/{share_a}/download/?format=jsonl")
    logged = Download.objects.order_by("-id").first()
    assert logged.user == world.users["staff_with"] and logged.provider is None
    seen = client_for(world.users["member"]).get("/api/v1/downloads/").json()["results"]
    assert [row["id"] for row in seen] == [world.ids["download_a"]]

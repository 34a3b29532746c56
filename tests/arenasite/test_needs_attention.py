"""The admin opens on what waits for staff: each count links to the admin list filtered to
those rows, and only the lists the staff member may view are shown."""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from providers.models import ArenaModel
from releases import sharing

from ..conftest import make_model
from ..factories import UserFactory

pytestmark = pytest.mark.django_db
S = ArenaModel.Status


def _row(html: str, label: str) -> str:
    start = html.index(label)
    return html[start : html.index("</tr>", start)]


def test_the_admin_index_shows_what_waits_with_links_to_the_filtered_lists(provider_a, member_a, staff):
    make_model(provider_a, S.SUBMITTED, staff=staff, name="waiting-one")
    make_model(provider_a, S.SUBMITTED, staff=staff, name="waiting-two")
    agreement, _ = sharing.agreement_accept(provider=provider_a, user=member_a)
    boss = UserFactory(username="boss@arenasite.example", staff=True, is_superuser=True)
    client = Client()
    client.force_login(boss)
    html = client.get("/admin/").content.decode()
    assert "Needs attention" in html
    submissions = _row(html, "Submissions waiting for admission")
    assert "<strong>2</strong>" in submissions
    assert "/admin/providers/arenamodel/?status__exact=submitted" in html
    assert "<strong>1</strong>" in _row(html, "Data-sharing agreements waiting")
    assert "/admin/releases/datasharingagreement/?state__exact=pending" in html
    for label in (
        "Access or endpoint changes waiting",
        "Models offline inside their listing window",
        "Retirement candidates to decide",
        "Flagged voters to review",
        "Releases built, ready to review and publish",
    ):
        assert label in html
    listed = client.get("/admin/providers/arenamodel/?status__exact=submitted").content.decode()
    assert "waiting-one" in listed and "waiting-two" in listed


def test_staff_see_only_the_counts_of_lists_they_may_view(staff):
    intern = UserFactory(username="intern@arenasite.example", staff=True)
    intern.user_permissions.add(Permission.objects.get(codename="view_flaggedvoter"))
    client = Client()
    client.force_login(intern)
    html = client.get("/admin/").content.decode()
    assert "Flagged voters to review" in html
    assert "Submissions waiting for admission" not in html and "Data-sharing agreements waiting" not in html

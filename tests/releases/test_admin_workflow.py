"""Staff build, review and publish a community release from admin, without a shell: the build
runs as a Celery task (eager in tests), the release's page shows its counts, what it left out,
a sample of its rows and its data card, and publishing goes through a confirmation page that
says what becomes public."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from releases.models import DataRelease

from ..factories import UserFactory
from .test_release import models, releases_in_tmp, voted_battle  # noqa: F401 - fixtures

RELEASE_PERMISSIONS = ("view_datarelease", "add_datarelease", "publish_datarelease")


@pytest.fixture
def release_staff(db):
    user = UserFactory(username="releases@arenasite.example", staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=RELEASE_PERMISSIONS))
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_staff_build_review_and_publish_a_release_from_admin(release_staff, models):  # noqa: F811
    battles = [voted_battle(models["listed"], models["retired"], prompt=f"Question number {i}?") for i in range(3)]
    voted_battle(models["listed"], models["initial"], prompt="Write to me at maria.keller@mailbox.org please")

    changelist = release_staff.get("/admin/releases/datarelease/")
    assert b"Build a release" in changelist.content
    form = release_staff.get("/admin/releases/datarelease/build/")
    assert form.status_code == 200 and b"Cutoff" in form.content

    built = release_staff.post("/admin/releases/datarelease/build/", {"cutoff": form.context["form"].initial["cutoff"]})
    release = DataRelease.objects.get()
    assert built.status_code == 302 and built["Location"] == f"/admin/releases/datarelease/{release.pk}/change/"
    assert release.state == DataRelease.State.BUILT and release.battle_count == 3

    page = release_staff.get(built["Location"]).content.decode()
    assert "Built: review it below" in page
    assert "<div>personal data (email): 1</div>" in page  # left out, with its reason
    for battle in battles:
        assert battle.question_id in page  # the sample of rows
    assert "Question number 0?" in page
    assert f"# Arenasite community release {release.pk}" in page  # the data card
    assert "Publish…" in page

    confirm = release_staff.get(f"/admin/releases/datarelease/{release.pk}/publish/").content.decode()
    assert "cannot be undone" in confirm
    assert "3 battles" in confirm and "listed-model" in confirm and "retired-model" in confirm
    release.refresh_from_db()
    assert release.state == DataRelease.State.BUILT  # the page itself publishes nothing

    done = release_staff.post(f"/admin/releases/datarelease/{release.pk}/publish/", {"confirm": "yes", "reason": ""})
    assert done.status_code == 302
    release.refresh_from_db()
    assert release.state == DataRelease.State.PUBLISHED and release.published_by is not None
    assert f"/data/releases/{release.pk}/battles.jsonl" in release_staff.get("/data/").content.decode()


@pytest.mark.django_db
def test_the_list_action_asks_before_publishing(release_staff, models):  # noqa: F811
    voted_battle(models["listed"], models["retired"])
    release_staff.post("/admin/releases/datarelease/build/", {"cutoff": "2999-01-01"})
    assert not DataRelease.objects.exists()  # a cutoff in the future is refused on the form
    release_staff.post("/admin/releases/datarelease/build/", {"cutoff": "now-ish"})
    assert not DataRelease.objects.exists()

    from arenasite import clock

    release_staff.post("/admin/releases/datarelease/build/", {"cutoff": f"{clock.now():%Y-%m-%d}"})
    release = DataRelease.objects.get()
    asked = release_staff.post("/admin/releases/datarelease/", {"action": "publish", "_selected_action": [release.pk]})
    assert asked.status_code == 200 and b"cannot be undone" in asked.content
    release.refresh_from_db()
    assert release.state == DataRelease.State.BUILT
    release_staff.post(
        "/admin/releases/datarelease/",
        {"action": "publish", "_selected_action": [release.pk], "confirm": "yes", "reason": "first release"},
    )
    release.refresh_from_db()
    assert release.state == DataRelease.State.PUBLISHED


@pytest.mark.django_db
def test_staff_without_the_permissions_cannot_build_or_publish(models):  # noqa: F811
    user = UserFactory(username="viewer@arenasite.example", staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_datarelease"))
    client = Client()
    client.force_login(user)
    assert b"Build a release" not in client.get("/admin/releases/datarelease/").content
    assert client.get("/admin/releases/datarelease/build/").status_code == 403
    assert client.post("/admin/releases/datarelease/build/", {"cutoff": "2024-01-01"}).status_code == 403
    assert not DataRelease.objects.exists()

"""Early data access in the portal: accept the terms, wait for staff, request a share and
download it; the rules are releases.sharing's, the download the API's own."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from providers.models import ArenaModel
from releases import sharing
from releases.models import DataSharingAgreement, Download, ProviderShare

from ..conftest import make_model
from ..releases.test_release import voted_battle

pytestmark = pytest.mark.django_db
S = ArenaModel.Status
DATA = "/portal/providers/provider-a/data/"


@pytest.fixture(autouse=True)
def releases_in_tmp(settings, tmp_path):
    settings.RELEASES_DIR = tmp_path / "releases"


@pytest.fixture
def web_a(member_a) -> Client:
    client = Client()
    client.force_login(member_a)
    return client


def accept(client: Client, version: str = "2024-06", **extra):
    return client.post(f"{DATA}accept/", {"version": version, "accept": "on", **extra})


def test_accepting_the_terms_records_a_pending_agreement_once(web_a, member_a, provider_a, settings):
    settings.DATA_SHARING_TERMS_VERSION = "2024-06"
    html = web_a.get(DATA).content.decode()
    assert "has not accepted the data-sharing terms" in html and "Arenasite data-sharing terms" in html
    assert accept(web_a).status_code == 302
    agreement = DataSharingAgreement.objects.get()
    assert (agreement.provider, agreement.accepted_by, agreement.state) == (provider_a, member_a, "pending")
    assert "waiting for approval" in web_a.get(DATA).content.decode()
    accept(web_a)
    assert DataSharingAgreement.objects.count() == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"version": "2024-06"}, "This field is required."),  # the box not ticked
        ({"version": "2023-01", "accept": "on"}, "The terms changed to version 2024-06"),
    ],
)
def test_accepting_needs_the_box_and_the_current_version(web_a, settings, data, message):
    settings.DATA_SHARING_TERMS_VERSION = "2024-06"
    response = web_a.post(f"{DATA}accept/", data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not DataSharingAgreement.objects.exists()


def test_a_share_needs_an_approved_agreement(web_a, member_a, provider_a):
    sharing.agreement_accept(provider=provider_a, user=member_a)
    assert b"Request a share" not in web_a.get(DATA).content
    response = web_a.post(f"{DATA}shares/")
    assert response.status_code == 403
    assert "waiting for approval by the arena" in response.content.decode()
    assert not ProviderShare.objects.exists()


def test_a_requested_share_is_built_and_downloads_through_the_api(
    web_a, member_a, provider_a, provider_b, staff, django_capture_on_commit_callbacks
):
    mine = make_model(provider_a, S.INITIAL_RATING, name="a-blind")
    theirs = make_model(provider_b, S.LISTED, name="b-listed")
    voted_battle(mine, theirs, prompt="What is a tide?")
    agreement, _ = sharing.agreement_accept(provider=provider_a, user=member_a)
    sharing.agreement_decide(agreement_id=agreement.pk, approve=True, by=staff)

    with django_capture_on_commit_callbacks(execute=True):  # the build task, queued at commit, runs eagerly
        assert web_a.post(f"{DATA}shares/").status_code == 302
    share = ProviderShare.objects.get()
    assert (share.state, share.battle_count, share.requested_by) == ("ready", 1, member_a)
    html = web_a.get(DATA).content.decode()
    link = f"/api/v1/shares/{share.pk}/download/?format=jsonl"
    assert f'href="{link}"' in html

    response = web_a.get(link)
    assert response.status_code == 200
    (row,) = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert (row["model_a"], row["model_b"]) == ("anonymous", "anonymous")
    assert row["conversation_a"][0]["content"] == "What is a tide?"
    download = Download.objects.get()
    assert (download.provider, download.user, download.format) == (provider_a, member_a, "jsonl")
    assert "alice@a.example" in web_a.get(DATA).content.decode()  # in the download log


def test_a_provider_sees_only_its_own_shares(web_a, member_b, provider_b, staff):
    agreement, _ = sharing.agreement_accept(provider=provider_b, user=member_b)
    sharing.agreement_decide(agreement_id=agreement.pk, approve=True, by=staff)
    share = sharing.share_request(provider=provider_b, user=member_b, enqueue=False)
    html = web_a.get(DATA).content.decode()
    assert f"/api/v1/shares/{share.pk}/" not in html and "bob@b.example" not in html


def test_a_revoked_agreement_offers_to_accept_again(web_a, member_a, provider_a, staff):
    agreement, _ = sharing.agreement_accept(provider=provider_a, user=member_a)
    sharing.agreement_decide(agreement_id=agreement.pk, approve=False, by=staff, reason="misuse")
    html = web_a.get(DATA).content.decode()
    assert "was revoked (misuse)" in html and "Accept the terms" in html
    assert accept(web_a, version=sharing.terms_version()).status_code == 302
    assert DataSharingAgreement.objects.filter(state="pending").count() == 1

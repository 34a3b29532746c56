"""The provider portal in a real browser (Debian's Chromium through Playwright, against a live
server): a provider signs up, creates its provider, registers a model served by an
OpenAI-compatible endpoint on loopback, tests it and submits it; staff admit it in the
Django admin; the provider accepts the data-sharing terms; staff approve them in the admin;
the provider requests a share and downloads its file.

Skipped without Chromium unless CI_REQUIRE_BROWSER=1 (see test_arena_browser.py, whose
browser fixture this module shares).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import override_settings

from providers.models import ArenaModel
from releases.models import DataSharingAgreement, Download, ProviderShare
from tests.support.openai_server import OpenAIServer

from ..conftest import make_model
from ..factories import ProviderFactory, UserFactory
from ..releases.test_release import voted_battle
from . import test_arena_browser
from .test_arena_browser import _console_error, _failed, snap

try:
    from playwright.sync_api import Browser, Page, expect
except ImportError:  # the browser fixture skips (or fails under CI_REQUIRE_BROWSER)
    pass

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
browser = test_arena_browser.browser  # the module-scoped Chromium fixture, with its skip rules

EMAIL = "lead@cirrus.example"
PASSWORD = "cirrus-passphrase-42"
STAFF_EMAIL = "staff@arenasite.example"
STAFF_PASSWORD = "staff-passphrase-42"


@pytest.fixture(autouse=True)
def releases_in_tmp(settings, tmp_path):
    settings.RELEASES_DIR = tmp_path / "releases"


@pytest.fixture(autouse=True)
def staff_without_second_factor():
    # The admin's second factor has its own tests; here staff log in with a password only.
    with override_settings(ARENA_STAFF_REQUIRE_MFA=False):
        yield


@pytest.fixture
def endpoint() -> Iterator[OpenAIServer]:
    """The provider's model: an OpenAI-compatible server on loopback."""
    with OpenAIServer() as server:
        yield server


@pytest.fixture
def staff_user():
    return UserFactory(username=STAFF_EMAIL, staff=True, is_superuser=True, password=STAFF_PASSWORD)


@pytest.fixture
def opponent():
    """A listed model of another provider, for the battles the share will hold."""
    return make_model(ProviderFactory(name="Harbor Labs", slug="harbor"), "listed", name="harbor-chat", is_demo=True)


def new_page(browser: Browser, base_url: str, errors: list[str]) -> Page:
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on("console", lambda msg: errors.append(f"console: {msg.text}") if _console_error(msg) else None)
    page.on("response", lambda r: errors.append(f"HTTP {r.status} {r.url}") if _failed(r) else None)
    return page


def admin_action(page: Page, changelist: str, row_text: str, action: str, reason: str = "") -> None:
    """Tick one row of an admin changelist, run the action and confirm it."""
    page.goto(changelist)
    row = page.locator("#result_list tbody tr", has_text=row_text)
    row.locator("input.action-select").check()
    page.locator("select[name=action]").select_option(action)
    page.locator("button[name=index]").first.click()  # "Go"
    if reason:
        page.locator("textarea[name=reason]").fill(reason)
    page.locator(".submit-row input[type=submit]").click()


def test_a_provider_goes_from_sign_up_to_a_downloaded_share(
    browser, live_server, endpoint, staff_user, opponent, mailoutbox
):
    errors: list[str] = []
    provider = new_page(browser, live_server.url, errors)
    staff = new_page(browser, live_server.url, errors)

    # Sign up (allauth), then open the portal from the site's navigation.
    provider.goto("/accounts/signup/")
    provider.locator("input[name=email]").fill(EMAIL)
    provider.locator("input[name=password1]").fill(PASSWORD)
    provider.locator("input[name=password2]").fill(PASSWORD)
    provider.locator("form").filter(has=provider.locator("input[name=password2]")).locator(
        "button[type=submit]"
    ).click()
    # The address is confirmed before the account is used: the link from the mail, then Confirm.
    expect(provider).to_have_url(re.compile(r"/accounts/confirm-email/$"))
    provider.goto(re.search(r"https?://[^/\s]+(/accounts/confirm-email/\S+/)", mailoutbox[-1].body).group(1))
    provider.get_by_role("button", name="Confirm").click()
    provider.get_by_role("link", name="Provider portal").click()
    expect(provider.get_by_role("heading", name="Provider portal")).to_be_visible()
    snap(provider, "portal-start")

    provider.get_by_role("link", name="Create a provider").click()
    provider.get_by_label("Name").fill("Cirrus Labs")
    provider.get_by_label("Website").fill("https://cirrus.example")
    provider.get_by_role("button", name="Create the provider").click()
    expect(provider).to_have_url(re.compile(r"/portal/providers/cirrus-labs/$"))
    expect(provider.locator(".messages")).to_contain_text("Cirrus Labs is created, and you are its admin.")

    # Register the model with its endpoint, test it, submit it.
    provider.get_by_role("link", name="Register a model").first.click()
    provider.get_by_label("Public name").fill("cirrus-chat")
    provider.get_by_label("Access kind").select_option("open_weights")
    provider.get_by_label("Licence").fill("Apache-2.0")
    provider.get_by_label("Endpoint base URL").fill(endpoint.base_url)
    provider.get_by_label("Endpoint model id").fill("cirrus-chat-v1")
    provider.get_by_label("Endpoint API key").fill("sk-cirrus")
    provider.get_by_role("button", name="Register the model").click()
    expect(provider.locator(".messages")).to_contain_text("cirrus-chat is registered as a draft")
    model = ArenaModel.objects.get(name="cirrus-chat")
    assert model.endpoint_api_key == "sk-cirrus" and model.provider.slug == "cirrus-labs"

    provider.get_by_role("button", name="Test the endpoint").click()
    expect(provider.locator(".test-answer")).to_have_text("Loopback answer to: Say hello in one short sentence.")
    assert [r.headers["authorization"] for r in endpoint.requests_for("cirrus-chat-v1")] == ["Bearer sk-cirrus"]
    snap(provider, "portal-tested")
    provider.get_by_role("button", name="Submit for admission").click()
    expect(provider.locator(".messages")).to_contain_text("cirrus-chat: now submitted")

    # Staff admit it in the admin (logging in through the site's login).
    staff.goto("/admin/")
    staff.locator("input[name=login]").fill(STAFF_EMAIL)
    staff.locator("input[name=password]").fill(STAFF_PASSWORD)
    staff.locator("form").filter(has=staff.locator("input[name=login]")).locator("button[type=submit]").click()
    expect(staff).to_have_url(re.compile(r"/admin/$"))
    admin_action(staff, "/admin/providers/arenamodel/", "cirrus-chat", "admit")
    expect(staff.locator(".messagelist")).to_contain_text("cirrus-chat: now initial rating", ignore_case=True)
    assert ArenaModel.objects.get(pk=model.pk).status == ArenaModel.Status.INITIAL_RATING

    # The provider sees the new state and the history.
    provider.reload()
    expect(provider.locator(".state")).to_have_text("Initial rating")
    expect(provider.locator("table").last).to_contain_text("Submitted → Initial rating")

    # Some voted battles with the model, in the release pool.
    model.refresh_from_db()
    for prompt in ("What is a tide?", "Why is the sky blue?"):
        voted_battle(model, opponent, prompt=prompt)

    # The provider accepts the terms; staff approve the agreement.
    provider.get_by_role("link", name="Data access").first.click()
    provider.get_by_label("I accept these terms on behalf of the provider").check()
    provider.get_by_role("button", name="Accept the terms").click()
    expect(provider.locator(".agreement-state")).to_contain_text("waiting for approval")
    admin_action(staff, "/admin/releases/datasharingagreement/", "Cirrus Labs", "approve")
    expect(staff.locator(".messagelist")).to_contain_text("is approved")
    assert DataSharingAgreement.objects.get().state == DataSharingAgreement.State.APPROVED

    # The provider requests a share (built at once: tasks run eagerly in tests) and downloads it.
    provider.reload()
    provider.get_by_role("button", name="Request a share").click()
    expect(provider.locator(".messages")).to_contain_text("requested")
    share = ProviderShare.objects.get()
    assert share.state == ProviderShare.State.READY and share.battle_count == 2
    provider.reload()  # the page shows the share as ready
    snap(provider, "portal-share")
    with provider.expect_download() as download:
        provider.get_by_role("link", name="jsonl").click()
    rows = [json.loads(line) for line in Path(download.value.path()).read_text(encoding="utf-8").splitlines()]
    assert sorted(row["conversation_a"][0]["content"] for row in rows) == ["What is a tide?", "Why is the sky blue?"]
    # Not on the leaderboard when shared, so the provider's own model is "anonymous" too.
    assert {row["model_a"] for row in rows} == {row["model_b"] for row in rows} == {"anonymous"}
    assert Download.objects.get().provider.slug == "cirrus-labs"
    provider.reload()
    expect(provider.locator("#downloads")).to_contain_text(EMAIL)  # the download log
    assert not errors

"""The public pages in a real browser (Debian's Chromium through Playwright, against a live
server): each fits a 390 px phone screen without sideways page scroll, in light and dark mode;
an accessibility scan (axe-core, vendored in arenasite/static/vendor/) finds nothing on the
main pages and on sign-in; the leaderboard is searched and sorted in the page.

Skipped without Chromium unless CI_REQUIRE_BROWSER=1 (see test_arena_browser.py, whose
browser fixture this module shares).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from django.templatetags.static import static

from providers.models import ArenaModel

from ..conftest import make_model
from ..factories import ProviderFactory
from ..support.runs import publish_ratings
from . import test_arena_browser
from .test_arena_browser import PROMPT, _console_error, _failed, ask_in_the_arena, snap

try:
    from playwright.sync_api import Page, expect
except ImportError:  # the browser fixture skips (or fails under CI_REQUIRE_BROWSER)
    pass

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
browser = test_arena_browser.browser  # the module-scoped Chromium fixture, with its skip rules
watchable_answers = test_arena_browser.watchable_answers  # demo answers paced as in the arena's tests

PHONE = {"width": 390, "height": 844}
PUBLIC_PAGES = ["/", "/arena/", "/arena/side-by-side/", "/leaderboard/", "/models/", "/transparency/", "/data/"]
SCANNED_PAGES = ["/", "/arena/", "/leaderboard/", "/models/", "/transparency/", "/data/", "/accounts/login/"]
AXE = static("vendor/axe-core/axe.min.js")


@pytest.fixture
def arena() -> dict[str, ArenaModel]:
    """Listed demo models with long names, licences and a published run: the widest tables."""
    northwind = ProviderFactory(name="Northwind Research Laboratories", slug="northwind")
    harbor = ProviderFactory(name="Harbor Labs", slug="harbor")
    models = [
        make_model(northwind, "listed", name="northwind-listed", is_demo=True, licence="Apache-2.0"),
        make_model(
            northwind, "listed", name="borealis-13b-instruct-preview", is_demo=True, licence="Llama 3.1 Community"
        ),
        make_model(harbor, "listed", name="harbor-chat", is_demo=True, licence="Proprietary"),
    ]
    publish_ratings({models[0]: 1100.0, models[1]: 1050.0, models[2]: (990.0, 12345)})
    return {model.name: model for model in models}


def visitor(browser, live_server, *, scheme: str = "light", javascript: bool = True) -> Iterator[Page]:
    context = browser.new_context(
        base_url=live_server.url, viewport=PHONE, color_scheme=scheme, java_script_enabled=javascript
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on("console", lambda msg: errors.append(f"console: {msg.text}") if _console_error(msg) else None)
    page.on("response", lambda r: errors.append(f"HTTP {r.status} {r.url}") if _failed(r) else None)
    yield page
    context.close()
    assert not errors


@pytest.fixture(params=["light", "dark"])
def phone(request, browser, live_server) -> Iterator[Page]:
    yield from visitor(browser, live_server, scheme=request.param)


@pytest.fixture
def phone_without_javascript(browser, live_server) -> Iterator[Page]:
    yield from visitor(browser, live_server, javascript=False)


def page_width(page: Page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


def test_every_public_page_fits_a_phone(phone, arena):
    for path in PUBLIC_PAGES:
        phone.goto(path)
        snap(phone, f"phone-{path.strip('/').replace('/', '-') or 'home'}")
        assert page_width(phone) <= PHONE["width"], path
    # The wide tables scroll inside their own box instead.
    phone.goto("/models/")
    box = phone.locator(".table-scroll").first
    assert box.evaluate("(el) => el.scrollWidth > el.clientWidth")


def test_a_battle_fits_a_phone(phone, arena):
    phone.goto("/arena/")
    ask_in_the_arena(phone, PROMPT)
    assert page_width(phone) <= PHONE["width"]  # while the answers arrive
    # On two busy cores both answers may take a while: the width is what this test is about.
    expect(phone.locator("section#battle")).to_have_attribute("data-status", "ready", timeout=30_000)
    snap(phone, "phone-battle")
    assert page_width(phone) <= PHONE["width"]
    phone.get_by_role("button", name="A is better").click()
    expect(phone.locator(".reveal")).to_be_visible()
    assert page_width(phone) <= PHONE["width"]


def axe_violations(page: Page) -> list[dict]:
    # A file of the site, so the page's Content-Security-Policy lets it run.
    page.add_script_tag(url=AXE)
    return page.evaluate(
        """async () => (await axe.run(document)).violations.map((v) => ({
            rule: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5)}))"""
    )


def test_no_accessibility_violations(phone, arena):
    found = {}
    for path in SCANNED_PAGES:
        phone.goto(path)
        if violations := axe_violations(phone):
            found[path] = violations
    assert not found, json.dumps(found, indent=1)


def test_no_accessibility_violations_on_a_wide_screen_or_a_model_card(browser, live_server, arena):
    for page in visitor(browser, live_server):
        page.set_viewport_size({"width": 1400, "height": 900})
        found = {}
        for path in [*SCANNED_PAGES, f"/models/{arena['harbor-chat'].pk}/"]:
            page.goto(path)
            if violations := axe_violations(page):
                found[path] = violations
        assert not found, json.dumps(found, indent=1)


def model_column(page: Page) -> list[str]:
    return [
        name.strip()
        for name in page.locator("table[data-board] tbody tr:not([hidden]) td:nth-child(2) a").all_text_contents()
    ]


def test_the_leaderboard_is_searched_and_sorted_in_the_page(phone, arena):
    phone.goto("/leaderboard/")
    assert model_column(phone) == ["northwind-listed", "borealis-13b-instruct-preview", "harbor-chat"]
    rank = phone.get_by_role("columnheader", name=re.compile("Rank"))
    expect(rank).to_have_attribute("aria-sort", "ascending")

    votes = phone.get_by_role("button", name="Votes")
    votes.click()  # most votes first
    expect(phone.get_by_role("columnheader", name=re.compile("Votes"))).to_have_attribute("aria-sort", "descending")
    expect(rank).not_to_have_attribute("aria-sort", "ascending")
    assert model_column(phone)[0] == "harbor-chat"
    phone.get_by_role("button", name="Model").click()  # names A to Z
    assert model_column(phone) == ["borealis-13b-instruct-preview", "harbor-chat", "northwind-listed"]
    phone.get_by_role("button", name="Model").click()
    assert model_column(phone) == ["northwind-listed", "harbor-chat", "borealis-13b-instruct-preview"]

    search = phone.get_by_label("Search models, providers and licences")
    search.fill("northwind research")  # a provider's name finds its models
    expect(phone.locator("#board-status")).to_have_text("2 of 3 models match “northwind research”.")
    assert sorted(model_column(phone)) == ["borealis-13b-instruct-preview", "northwind-listed"]
    search.fill("no such model")
    expect(phone.locator("#board-empty")).to_be_visible()
    assert model_column(phone) == []
    search.fill("")
    assert len(model_column(phone)) == 3
    snap(phone, "phone-leaderboard-sorted")

    # Each row opens the model's card.
    phone.get_by_role("link", name="harbor-chat").click()
    expect(phone.get_by_role("heading", level=1)).to_have_text("harbor-chat")
    expect(phone.locator("dl.facts").first).to_contain_text("Harbor Labs")
    expect(phone.locator("dl.facts").first).to_contain_text("Proprietary")
    assert page_width(phone) <= PHONE["width"]


def test_the_leaderboard_search_works_without_javascript(phone_without_javascript, arena):
    page = phone_without_javascript
    page.goto("/leaderboard/")
    page.get_by_label("Search models, providers and licences").fill("harbor")
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(r"q=harbor"))
    assert model_column(page) == ["harbor-chat"]
    expect(page.locator("#board-status")).to_have_text("1 of 3 models match “harbor”.")

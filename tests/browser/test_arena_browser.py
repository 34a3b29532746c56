"""The arena in a real browser: Debian's Chromium, driven by Playwright, against the site
under an ASGI server on loopback (the asgi_live_server fixture, tests/browser/conftest.py),
with demo models answering in the server's background threads slowly enough to watch the
answers stream in.

Skipped when /usr/bin/chromium is missing, unless CI_REQUIRE_BROWSER=1 (as .ci/run sets),
where a missing browser fails instead, so CI cannot quietly skip these. Set
BROWSER_SCREENSHOTS to a folder to keep a full-page screenshot of each step there.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import override_settings

from battles import clients
from battles.clients import demo_answer
from battles.models import Vote
from providers.models import ArenaModel

from ..conftest import make_model
from ..factories import ProviderFactory

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # reported by the `browser` fixture, which knows whether skipping is allowed
    sync_playwright = None

CHROMIUM = Path("/usr/bin/chromium")
PROMPT = "How do tides work?"
FOLLOW_UP = "And on Mars?"
# Each demo model's answer to PROMPT is at least this many words: at one word every
# ARENA_DEMO_CHUNK_DELAY, a turn lasts over a second, many of the stream's events.
MIN_WORDS = 60
WATCHABLE = {
    "ARENA_DEMO_CHUNK_DELAY": 0.02,
    "ARENA_ANSWER_SAVE_INTERVAL": 0.05,
    "ARENA_MODEL_RETRIES": 0,
}

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    missing = None
    if sync_playwright is None:
        missing = "Playwright is not installed (make install-dev)"
    elif not CHROMIUM.exists():
        missing = f"{CHROMIUM} is missing (apt-get install chromium)"
    if missing:
        if os.environ.get("CI_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{missing}, and CI_REQUIRE_BROWSER=1 says the browser tests must run")
        pytest.skip(missing)
    with pytest.MonkeyPatch.context() as env, sync_playwright() as playwright:
        # Playwright's sync API leaves its event loop marked as running on this thread, which
        # Django's guard against the ORM in async code takes for async code. The tests are
        # plain synchronous code (set-up, a database check, the flush after each test).
        env.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        expect.set_options(timeout=10_000)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, asgi_live_server) -> Iterator[Page]:
    """A fresh visitor (no cookies) with JavaScript; any script error fails the test."""
    yield from _visitor(browser, asgi_live_server, javascript=True)


@pytest.fixture
def page_without_javascript(browser, asgi_live_server) -> Iterator[Page]:
    yield from _visitor(browser, asgi_live_server, javascript=False)


def _visitor(browser, live_server, *, javascript: bool) -> Iterator[Page]:
    context = browser.new_context(
        base_url=live_server.url, java_script_enabled=javascript, viewport={"width": 1280, "height": 900}
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


def _failed(response) -> bool:
    # The site has no favicon yet; the browser's own request for one is not the page's fault.
    return response.status >= 400 and not response.url.endswith("/favicon.ico")


def _console_error(message) -> bool:
    # A failed load is logged here too; the response check above already judges those.
    return message.type == "error" and not message.text.startswith("Failed to load resource")


# Demo answers vary from battle to battle; here every answer uses this seed, so the test knows
# what each model says (and that each answer to PROMPT is long enough to watch).
DEMO_SEED = 0


@pytest.fixture(autouse=True)
def watchable_answers(monkeypatch):
    # The answering threads read settings while they run, so this reaches them too.
    monkeypatch.setattr(clients.demo, "demo_seed", lambda: DEMO_SEED)
    with override_settings(**WATCHABLE):
        yield


@pytest.fixture
def pool() -> dict[str, ArenaModel]:
    northwind = ProviderFactory(name="Northwind Research", slug="northwind")
    harbor = ProviderFactory(name="Harbor Labs", slug="harbor")
    models = [
        make_model(northwind, "listed", name="northwind-listed", is_demo=True),
        make_model(northwind, "listed", name="borealis-13b", is_demo=True),
        make_model(harbor, "listed", name="harbor-chat", is_demo=True),
    ]
    for model in models:
        words = len(demo_answer(model.name, [{"role": "user", "content": PROMPT}], seed=DEMO_SEED).split())
        assert words >= MIN_WORDS, f"{model.name} answers in {words} words; pick another name or DEMO_SEED"
    return {model.name: model for model in models}


def snap(page: Page, name: str) -> None:
    folder = os.environ.get("BROWSER_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


# True at a moment when the last turn shows part of an answer that is still arriving while
# all four vote buttons are disabled. Checked on every animation frame in the page, since
# that moment can be short, and expect()'s retries grow to 1 s apart.
PARTIAL_ANSWER_WHILE_VOTING_WAITS = """() => {
  const battle = document.querySelector('section#battle[data-status="answering"]');
  if (!battle) return false;
  const turns = battle.querySelectorAll('.turn');
  const texts = [...turns[turns.length - 1].querySelectorAll('.answer .text.typing')];
  const buttons = [...battle.querySelectorAll('form.votes button[name="winner"]')];
  return texts.some((t) => t.textContent.trim() !== '') && buttons.length === 4 && buttons.every((b) => b.disabled);
}"""


def expect_streaming(page: Page, step: str) -> None:
    page.wait_for_function(PARTIAL_ANSWER_WHILE_VOTING_WAITS, polling="raf")
    snap(page, f"{step}-streaming")


def expect_turn_complete(page: Page, turns: int) -> None:
    expect(page.locator("section#battle")).to_have_attribute("data-status", "ready")
    expect(page.locator(".turn")).to_have_count(turns)
    expect(page.locator(".answer .text.typing")).to_have_count(0)
    for side in "ab":
        expect(page.locator(f'.turn >> nth={turns - 1} >> [data-side="{side}"] .text')).not_to_be_empty()
    votes = page.locator('form.votes button[name="winner"]')
    expect(votes).to_have_count(4)
    for i in range(4):
        expect(votes.nth(i)).to_be_enabled()


def answer_text(page: Page, turn: int, side: str) -> str:
    """The answer as the page holds it: its Markdown source (data-source, set by the page's
    script, which renders it), else the plain text the server wrote."""
    text = page.locator(".turn").nth(turn).locator(f'[data-side="{side}"] .text')
    return text.get_attribute("data-source") or text.text_content() or ""


def expected_answers(model: str, prompts: list[str], shown: list[str]) -> list[str]:
    """What a demo model answers on each turn, given what it said before (as the page showed it)."""
    conversation: list[dict[str, str]] = []
    answers = []
    for prompt, earlier in zip(prompts, shown, strict=True):
        conversation.append({"role": "user", "content": prompt})
        answers.append(demo_answer(model, conversation, seed=DEMO_SEED))
        conversation.append({"role": "assistant", "content": earlier})
    return answers


def ask_in_the_arena(page: Page, prompt: str) -> None:
    expect(page.get_by_label("Your prompt")).to_be_visible()
    page.get_by_label("Your prompt").fill(prompt)
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page).to_have_url(re.compile(r"/arena/battles/[0-9a-f]{32}/$"))


def test_a_whole_anonymous_battle(page, pool):
    page.goto("/arena/")
    snap(page, "arena")
    ask_in_the_arena(page, PROMPT)
    first_battle = page.url
    expect(page.locator(".answer h2")).to_have_text(["Model A", "Model B"])
    expect_streaming(page, "turn-1")
    expect_turn_complete(page, turns=1)

    page.locator("textarea#id_next_prompt").fill(FOLLOW_UP)
    page.get_by_role("button", name="Send to both").click()
    expect(page.locator(".turn .prompt")).to_have_text([PROMPT, FOLLOW_UP])
    expect_streaming(page, "turn-2")
    expect_turn_complete(page, turns=2)
    snap(page, "turn-2-complete")
    shown = {side: [answer_text(page, turn, side) for turn in range(2)] for side in "ab"}

    page.get_by_role("button", name="A is better").click()
    reveal = page.locator(".reveal")
    expect(reveal).to_contain_text("You voted: A is better.")
    name_a, name_b = reveal.locator("strong").all_text_contents()[1:]
    assert {name_a, name_b} <= set(pool) and name_a != name_b
    expect(page.locator(".answer h2").first).to_have_text(f"Model A: {name_a}")
    expect(page.locator('form.votes button[name="winner"]')).to_have_count(0)
    snap(page, "revealed")
    # Both answers of both turns arrived whole, not cut where the page last polled.
    for side, name in (("a", name_a), ("b", name_b)):
        assert shown[side] == expected_answers(name, [PROMPT, FOLLOW_UP], shown[side])
    vote = Vote.objects.select_related("model_a").get()
    assert vote.winner == "model_a" and vote.model_a.name == name_a and vote.anony

    page.get_by_role("link", name="New round").click()
    expect(page).to_have_url(re.compile(r"/arena/$"))
    ask_in_the_arena(page, "Why is the sky blue?")
    assert page.url != first_battle
    expect(page.locator(".answer h2")).to_have_text(["Model A", "Model B"])  # anonymous again
    expect(page.locator(".turn")).to_have_count(1)
    expect_turn_complete(page, turns=1)


def test_a_side_by_side_battle(page, pool):
    page.goto("/arena/side-by-side/")
    page.get_by_label("Model A").select_option("harbor-chat")
    page.get_by_label("Model B").select_option("northwind-listed")
    page.get_by_label("Your prompt").fill(PROMPT)
    snap(page, "side-by-side")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page).to_have_url(re.compile(r"/arena/battles/[0-9a-f]{32}/$"))
    # The names are shown from the start.
    expect(page.locator(".answer h2")).to_have_text(["Model A: harbor-chat", "Model B: northwind-listed"])
    expect_streaming(page, "side-by-side")
    expect_turn_complete(page, turns=1)
    assert answer_text(page, 0, "a") == demo_answer(
        "harbor-chat", [{"role": "user", "content": PROMPT}], seed=DEMO_SEED
    )

    page.get_by_role("button", name="B is better").click()
    reveal = page.locator(".reveal")
    expect(reveal).to_contain_text("You voted: B is better.")
    expect(reveal).to_contain_text("Model A was harbor-chat; Model B was northwind-listed.")
    expect(reveal).to_contain_text("Side-by-side votes do not count for the leaderboard.")
    snap(page, "side-by-side-revealed")
    vote = Vote.objects.get()
    assert vote.winner == "model_b" and not vote.anony


def test_a_visitor_without_javascript_can_play_a_battle(page_without_javascript, pool):
    page = page_without_javascript
    page.goto("/arena/")
    ask_in_the_arena(page, PROMPT)
    # No stream: the page reloads itself (a <noscript> refresh) until both answers are in.
    expect_turn_complete(page, turns=1)
    page.get_by_role("button", name="Tie").click()
    expect(page.locator(".reveal")).to_contain_text("You voted: Tie.")
    assert Vote.objects.get().winner == "tie"


def test_the_proof_of_work_check_solves_itself_in_the_browser_before_the_first_battle(page, pool):
    """The ALTCHA widget and its worker, served by the site under its strict CSP, solve the
    challenge while the voter types; the battle then starts."""
    with override_settings(ARENA_CHALLENGE=True, ARENA_CHALLENGE_COST=2000, ARENA_CHALLENGE_EVERY=2):
        page.goto("/arena/")
        expect(page.locator("altcha-widget")).to_be_visible()
        page.wait_for_function("() => document.querySelector('input[name=altcha]')?.value", timeout=30_000)
        snap(page, "challenge-solved")
        ask_in_the_arena(page, PROMPT)
        expect_turn_complete(page, turns=1)
        page.goto("/arena/")  # the solution covers the session's next battle: no widget
        expect(page.get_by_label("Your prompt")).to_be_visible()
        expect(page.locator("altcha-widget")).to_have_count(0)

"""The streamed battle page in a real browser (Debian's Chromium, the site under uvicorn):
answers rendered as Markdown while they arrive, a text selection that survives the arriving
text, the vote by keyboard, the reveal, sanitised answers, copying. The fixtures are those of
test_arena_browser.py: any script error, CSP violation or failed request fails a test."""

from __future__ import annotations

import itertools
import re

import pytest
from django.test import override_settings
from playwright.sync_api import Page, expect

from battles.clients import demo
from battles.models import Battle, Vote

from . import test_arena_browser as arena
from .test_pages_browser import axe_violations

# The fixtures of test_arena_browser.py, used here too.
browser, page, pool, watchable_answers = arena.browser, arena.page, arena.pool, arena.watchable_answers
snap = arena.snap

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# A prompt that mentions Markdown: the demo models answer with a heading, a numbered list, a
# fenced Python or shell block, a bulleted list, a quote and inline code.
MARKDOWN_PROMPT = "Show me Markdown: how would I count the words in a file?"


@pytest.fixture(autouse=True)
def embedded_stream_log():
    # The pieces travel through the embedded log, in this process: what is tested here is the
    # page, and a Redis shared with other test runs can drop a piece (the row fills it in only
    # at the end, which would stall the page the test is watching).
    with override_settings(ARENA_STREAM_REDIS_URL=""):
        yield


def start(page: Page, prompt: str) -> None:
    page.goto("/arena/")
    box = page.get_by_label("Your prompt")
    box.fill(prompt)
    expect(page.get_by_text("Enter sends; Shift+Enter adds a line.")).to_be_visible()
    box.press("Shift+Enter")  # a new line, not a send
    expect(box).to_have_value(prompt + "\n")
    box.press("Enter")
    expect(page).to_have_url(re.compile(r"/arena/battles/[0-9a-f]{32}/$"))


def answering(page: Page) -> bool:
    return page.locator('section#battle[data-status="answering"]').count() == 1


# The first heading of answer A has been rendered whole (the words after it have arrived) while
# the answers still stream: select its text, and keep the element to check it stays the same.
SELECT_THE_HEADING = """() => {
  if (!document.querySelector('section#battle[data-status="answering"]')) return false;
  const heading = document.querySelector('[data-side="a"] .text h3');
  const next = heading && heading.nextElementSibling;
  if (!next || !next.textContent.trim()) return false;
  const range = document.createRange();
  range.selectNodeContents(heading);
  const selection = document.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
  window.selectedHeading = heading;
  window.selectedText = selection.toString();
  return true;
}"""

# A highlighted code block is on the page (a Python keyword or a shell command coloured)
# while the answers are still arriving.
CODE_WHILE_STREAMING = """() =>
  document.querySelector('section#battle[data-status="answering"]') !== null &&
  document.querySelector('.text .code-block pre code.hljs [class^="hljs-"]') !== null"""

SELECTION_KEPT = """() => {
  const selection = document.getSelection();
  return document.contains(window.selectedHeading) && selection.rangeCount === 1 &&
    selection.toString() === window.selectedText &&
    window.selectedHeading.contains(selection.getRangeAt(0).commonAncestorContainer);
}"""


def test_a_whole_battle_streams_markdown_keeps_a_selection_and_is_voted_by_keyboard(page, pool):
    with override_settings(ARENA_DEMO_CHUNK_DELAY=0.04):
        start(page, MARKDOWN_PROMPT)
        battle = Battle.objects.get()
        page.wait_for_function("() => /answering…$/.test(document.querySelector('#battle-progress').textContent)")
        # Markdown is rendered as it streams: a heading, then a highlighted code block.
        page.wait_for_function(SELECT_THE_HEADING, polling="raf")
        selected = page.evaluate("window.selectedText")
        assert selected.startswith("On “Show me Markdown")
        page.wait_for_function(CODE_WHILE_STREAMING, polling="raf")
        snap(page, "stream-markdown-streaming")
        # Text went on arriving, and the selection is where the voter made it.
        assert page.evaluate(SELECTION_KEPT)

        expect(page.locator("section#battle")).to_have_attribute("data-status", "ready", timeout=20_000)
    assert page.evaluate(SELECTION_KEPT)
    expect(page.locator("#battle-progress")).to_have_text("Both answers are in: vote for the better one.")
    battle.refresh_from_db()
    for side, conversation in (("a", battle.conversation_a), ("b", battle.conversation_b)):
        answer = page.locator(f'[data-side="{side}"] .text')
        expect(answer).to_have_attribute("data-source", conversation[-1]["content"])
        expect(answer.locator("h3")).to_have_count(1)
        expect(answer.locator("ol > li")).to_have_count(3)
        expect(answer.locator("ul > li strong")).to_have_count(3)
        expect(answer.locator("blockquote")).to_have_count(1)
        expect(answer.locator(".code-block pre code.hljs")).to_have_count(1)
        expect(answer.locator(".code-block")).to_contain_text(re.compile(r"def |head -n"))
        expect(answer).not_to_contain_text("```")
        expect(answer).not_to_contain_text("**")
    # The answers' headings come under the page's h1; an answer's own headings under those.
    assert page.locator("h1, h2, h3").evaluate_all("els => els.map(e => e.tagName)")[:4] == ["H1", "H2", "H3", "H2"]
    snap(page, "stream-markdown-complete")
    assert axe_violations(page) == []

    # The vote buttons have the focus: Tab to the next, Enter votes.
    expect(page.get_by_role("button", name="A is better")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="B is better")).to_be_focused()
    page.keyboard.press("Enter")
    reveal = page.locator(".reveal")
    expect(reveal).to_contain_text("You voted: B is better.")
    expect(reveal).to_contain_text("is a codename")
    name_a, name_b = reveal.locator("strong").all_text_contents()[1:]
    assert {name_a, name_b} <= set(pool)
    expect(page.locator(".answer h2")).to_have_text([f"Model A: {name_a}", f"Model B: {name_b}"])
    # Revealed and reloaded, the answers are still rendered.
    expect(page.locator('[data-side="a"] .text .code-block')).to_have_count(1)
    snap(page, "stream-markdown-revealed")
    assert axe_violations(page) == []
    assert Vote.objects.get().winner == "model_b"


HOSTILE = """### Hello <script>window.ran = 1</script>

<img src="https://images.example.com/track.png" onerror="window.ran = 2">
<iframe src="https://example.com/"></iframe>

![a picture](https://images.example.com/cat.png) and [a link](https://example.com/page)
and [a trap](javascript:window.ran=3) and <a href="https://example.com" onclick="window.ran=4">raw</a>

```python
print("<b>not bold</b>")
```
"""


def test_nothing_an_answer_says_runs_or_loads(page, pool, monkeypatch):
    monkeypatch.setattr(demo, "demo_answer", lambda *args, **kwargs: HOSTILE)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    start(page, "Say something")
    expect(page.locator("section#battle")).to_have_attribute("data-status", "ready")
    for side in "ab":
        text = page.locator(f'[data-side="{side}"] .text')
        expect(text.locator("h3")).to_contain_text("Hello <script>")  # HTML is shown as text
        expect(text.locator("script, img, iframe, [onerror], [onclick], [style]")).to_have_count(0)
        # Links (the picture's too) go to http(s) only, and tell the browser not to vouch for them.
        links = text.locator("a")
        expect(text.get_by_role("link", name="a link")).to_have_attribute("href", "https://example.com/page")
        for link in links.all():
            assert re.match(r"https?://", link.get_attribute("href") or "")
            assert link.get_attribute("rel") == "nofollow noopener noreferrer"
        expect(text.get_by_role("link", name="Image: a picture")).to_have_attribute(
            "href", "https://images.example.com/cat.png"
        )
        expect(text.locator("pre code")).to_contain_text('print("<b>not bold</b>")')
    assert page.evaluate("window.ran") is None
    assert not [url for url in requested if "example.com" in url]


def test_copy_buttons_copy_the_answer_and_the_code(page, pool):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    start(page, MARKDOWN_PROMPT)
    expect(page.locator("section#battle")).to_have_attribute("data-status", "ready")
    answer = page.locator('[data-side="a"]')
    answer.get_by_role("button", name="Copy code").click()
    code = answer.locator(".code-block pre").text_content()
    assert page.evaluate("navigator.clipboard.readText()") == code
    answer.get_by_role("button", name="Copy answer").click()
    assert page.evaluate("navigator.clipboard.readText()") == Battle.objects.get().conversation_a[-1]["content"]
    expect(page.locator("#battle-progress")).to_have_text("Copied to the clipboard.")


def test_stop_ends_the_answers_and_the_battle_can_still_be_voted(page, pool):
    with override_settings(ARENA_DEMO_CHUNK_DELAY=0.1):
        start(page, MARKDOWN_PROMPT)
        page.wait_for_function("() => document.querySelector('[data-side=\"a\"] .text').textContent.length > 20")
        page.get_by_role("button", name="Stop").click()
        expect(page.locator("section#battle")).not_to_have_attribute("data-status", "answering")
    assert len(page.locator('[data-side="a"] .text').get_attribute("data-source") or "") > 20
    expect(page.get_by_role("button", name="Tie")).to_be_enabled()
    expect(page.locator("#battle-progress")).to_have_text("The answers were stopped: vote on them, or regenerate them.")


def test_regenerate_before_the_vote_answers_again(page, pool, monkeypatch):
    seeds = itertools.count()
    monkeypatch.setattr(demo, "demo_seed", lambda: next(seeds))  # other words each time
    start(page, "How do tides work?")
    expect(page.locator("section#battle")).to_have_attribute("data-status", "ready")
    first = page.locator('[data-side="a"] .text').get_attribute("data-source")
    page.get_by_role("button", name="Regenerate both answers").click()
    expect(page.locator("section#battle")).to_have_attribute("data-status", "ready")
    expect(page.locator('[data-side="a"] .text')).not_to_have_attribute("data-source", first or "")
    expect(page.get_by_role("button", name="A is better")).to_be_enabled()


def test_a_shared_battle_shows_its_answers_rendered_as_on_the_battle_page(page, pool):
    start(page, MARKDOWN_PROMPT)
    expect(page.locator("section#battle")).to_have_attribute("data-status", "ready")
    page.get_by_role("button", name="Tie").click()
    expect(page.locator(".reveal")).to_contain_text("You voted")
    battle = Battle.objects.get()
    token = "shared-in-a-browser-test"
    Battle.objects.filter(pk=battle.pk).update(share_token=token)
    page.goto(f"/arena/shared/{token}/")
    expect(page.locator('nav.site [aria-current="page"]')).to_have_count(0)  # not the arena's own page
    for side in "ab":
        text = page.locator(f'[data-side="{side}"] .text')
        expect(text.locator("h3")).to_have_count(1)  # the answer's "###" heading, rendered
        expect(text.locator(".code-block pre code.hljs")).to_have_count(1)
        assert "###" not in (text.text_content() or "")
    expect(page.get_by_role("button", name="Copy answer")).to_have_count(2)
    snap(page, "shared-battle-rendered")
    assert axe_violations(page) == []

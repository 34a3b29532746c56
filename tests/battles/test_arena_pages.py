"""The arena pages (server-rendered forms, the battle page whose script follows the answers'
event stream, refreshing itself without JavaScript), with real background answering threads
and demo models. The page's script is tested in a browser: tests/browser/."""

from __future__ import annotations

import time

import pytest
from django.test import Client, override_settings

from battles.models import Battle, Vote
from providers.models import ArenaModel

from ..conftest import make_model
from ..factories import ProviderFactory
from .test_arena_api import FAST

S = ArenaModel.Status
pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def fast_answers():
    with override_settings(**FAST):
        yield


@pytest.fixture
def pool():
    provider = ProviderFactory(name="Northwind Research", slug="northwind")
    return {
        "listed": make_model(provider, S.LISTED, name="northwind-listed", is_demo=True),
        "other": make_model(provider, S.LISTED, name="northwind-other", is_demo=True),
    }


def start(client, prompt="How do tides work?") -> Battle:
    response = client.post("/arena/", {"prompt": prompt})
    assert response.status_code == 302, response.content.decode()[:500]
    battle = Battle.objects.get(question_id=response["Location"].rstrip("/").split("/")[-1])
    assert response["Location"] == f"/arena/battles/{battle.question_id}/"
    return battle


def wait_for_page(client, battle) -> str:
    deadline = time.monotonic() + 15
    while True:
        html = client.get(f"/arena/battles/{battle.question_id}/").content.decode()
        if 'data-status="answering"' not in html:
            return html
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_the_arena_page_offers_a_prompt_box(client, pool):
    html = client.get("/arena/").content.decode()
    assert '<textarea name="prompt"' in html and 'maxlength="8000"' in html
    assert "csrfmiddlewaretoken" in html


def test_a_battle_is_played_on_the_pages(client, pool):
    battle = start(client)
    page = client.get(f"/arena/battles/{battle.question_id}/").content.decode()
    assert "Model A" in page and "Model B" in page
    assert f'data-stream="/api/v1/battles/{battle.question_id}/stream/"' in page and "battles/battle.js" in page
    # Scripts are files of the site (the CSP allows no inline script).
    assert page.count("<script") == page.count('<script src="/static/')
    assert "northwind-listed" not in page and "northwind-other" not in page

    fragment = wait_for_page(client, battle)
    assert 'data-status="ready"' in fragment
    assert 'value="model_a"' in fragment and "disabled" not in fragment.split('class="votes"')[1].split("</form>")[0]
    assert "Send to both" in fragment

    response = client.post(f"/arena/battles/{battle.question_id}/vote/", {"winner": "tie (bothbad)"})
    assert response.status_code == 302
    revealed = client.get(response["Location"]).content.decode()
    assert "You voted: Both are bad." in revealed
    assert "northwind-listed" in revealed and "northwind-other" in revealed
    assert "New round" in revealed and 'value="model_a"' not in revealed
    assert "is a codename" in revealed  # a model never listed is named by its codename
    assert Vote.objects.get().winner == "tie (bothbad)"


def test_while_answering_the_vote_buttons_wait_and_without_javascript_the_page_refreshes(client, pool):
    with override_settings(ARENA_DEMO_CHUNK_DELAY=0.05):
        battle = start(client)
        page = client.get(f"/arena/battles/{battle.question_id}/").content.decode()
        assert 'data-status="answering"' in page
        assert '<noscript><meta http-equiv="refresh" content="2"></noscript>' in page
        votes = page.split('class="votes"')[1].split("</form>")[0]
        assert votes.count("disabled") == 4
        early = client.post(f"/arena/battles/{battle.question_id}/vote/", {"winner": "model_a"})
        assert early.status_code == 409 and "Wait until both answers are complete" in early.content.decode()
        wait_for_page(client, battle)
    assert not Vote.objects.exists()


def test_a_second_turn_on_the_page(client, pool):
    battle = start(client)
    wait_for_page(client, battle)
    response = client.post(f"/arena/battles/{battle.question_id}/turns/", {"prompt": "And on Mars?"})
    assert response.status_code == 302
    html = wait_for_page(client, battle)
    assert html.count('class="turn"') == 2 and "And on Mars?" in html


def test_bad_prompts_get_a_clear_error_and_store_nothing(client, pool):
    for prompt, message in [("  ", "Write a prompt first."), ("x" * 8001, "the limit is 8,000")]:
        response = client.post("/arena/", {"prompt": prompt})
        assert response.status_code == 400 and message in response.content.decode()
    assert not Battle.objects.exists()


def test_user_content_is_escaped(client, pool):
    battle = start(client, prompt="<script>alert('x')</script> what is <b>bold</b>?")
    html = wait_for_page(client, battle)
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html


def test_another_visitor_cannot_see_or_vote_on_the_battle(client, pool):
    battle = start(client)
    stranger = Client()
    assert stranger.get(f"/arena/battles/{battle.question_id}/").status_code == 404
    assert stranger.get(f"/arena/battles/{battle.question_id}/").status_code == 404
    assert stranger.post(f"/arena/battles/{battle.question_id}/vote/", {"winner": "model_a"}).status_code == 404
    assert not Vote.objects.exists()


def test_side_by_side_shows_the_names_and_the_choice(client, pool):
    html = client.get("/arena/side-by-side/").content.decode()
    assert '<option value="northwind-listed">' in html and '<option value="northwind-other">' in html
    response = client.post(
        "/arena/side-by-side/", {"model_a": "northwind-other", "model_b": "northwind-listed", "prompt": "Hi"}
    )
    assert response.status_code == 302
    battle = Battle.objects.get()
    assert battle.anony is False and battle.model_a == pool["other"]
    fragment = wait_for_page(client, battle)
    assert "Model A: northwind-other" in fragment and "Model B: northwind-listed" in fragment


def test_side_by_side_refuses_the_same_model_twice(client, pool):
    response = client.post(
        "/arena/side-by-side/", {"model_a": "northwind-listed", "model_b": "northwind-listed", "prompt": "Hi"}
    )
    assert response.status_code == 400 and "Pick two different models." in response.content.decode()
    assert not Battle.objects.exists()


def test_the_arena_says_it_is_closed_without_two_models(client):
    response = client.post("/arena/", {"prompt": "hello"})
    assert response.status_code == 503 and "not open right now" in response.content.decode()

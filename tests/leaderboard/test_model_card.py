"""A model's card (/models/<id>/) and the leaderboard's search: what a voter opens from a row."""

from datetime import timedelta

import pytest
import time_machine

from arenasite import clock
from providers.lifecycle import Action, transition
from providers.models import ArenaModel

from ..conftest import make_model
from ..support.runs import publish_ratings
from .test_plots import publish_run

pytestmark = pytest.mark.django_db
S = ArenaModel.Status
DELAY = timedelta(days=30)


def card(client, model) -> str:
    response = client.get(f"/models/{model.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def test_the_card_has_the_terms_the_lifecycle_and_the_rating_history(client, provider_a, staff):
    model = make_model(provider_a, S.LISTED, staff=staff, name="card-model", licence="Apache-2.0", family="cards")
    start = clock.now() - timedelta(days=10)
    publish_run([model], published_at=start, status=S.INITIAL_RATING)  # private when it was made
    publish_run([model], published_at=start + timedelta(days=1))
    publish_run([model], published_at=start + timedelta(days=2))
    html = card(client, model)
    for shown in ("card-model", provider_a.name, "Apache-2.0", model.get_access_kind_display(), model.codename):
        assert shown in html
    assert f"Listed</dt><dd>{model.listed_at:%Y-%m-%d}" in html
    # The history: the two runs since listing, drawn and listed; not the run from initial rating.
    assert "history-chart" in html
    assert "the last 2 published runs" in html
    assert f"{start:%Y-%m-%d %H:%M}" not in html
    assert f"{start + timedelta(days=2):%Y-%m-%d %H:%M}" in html


def test_a_model_without_public_ratings_has_a_card_without_history(client, provider_a, staff):
    model = make_model(provider_a, S.LISTED, staff=staff, name="fresh-model")
    html = card(client, model)
    assert "No published run has rated it while it was public." in html


@pytest.mark.parametrize("status", [S.DRAFT, S.SUBMITTED, S.REJECTED, S.INITIAL_RATING])
def test_a_model_that_is_not_public_has_no_card(client, provider_a, staff, status):
    model = make_model(provider_a, status, staff=staff, name="not-yet-public")
    publish_ratings({model: 1234.0, make_model(provider_a, S.LISTED, staff=staff): 1000.0})
    response = client.get(f"/models/{model.pk}/")
    assert response.status_code == 404
    assert "not-yet-public" not in response.content.decode()
    assert model.codename not in response.content.decode()


def test_an_unknown_id_is_not_found(client, db):
    assert client.get("/models/999999/").status_code == 404


def test_a_withdrawn_model_gets_its_card_when_its_delay_is_over(client, provider_a, member_a, staff):
    model = make_model(provider_a, S.INITIAL_RATING, staff=staff, name="dropped-card")
    publish_ratings({model: 1234.0, make_model(provider_a, S.LISTED, staff=staff): 1000.0})
    transition(model_id=model.pk, action=Action.WITHDRAW, actor=member_a, reason="Replaced by our next one.")
    model.refresh_from_db()
    with time_machine.travel(model.withdrawn_at + DELAY - timedelta(seconds=1), tick=False):
        assert client.get(f"/models/{model.pk}/").status_code == 404
    with time_machine.travel(model.withdrawn_at + DELAY, tick=False):
        html = card(client, model)
    for shown in ("dropped-card", "1234", "Replaced by our next one.", "Withdrawn", "never listed"):
        assert shown in html


def test_a_sibling_listing_makes_a_parked_variant_public_after_the_delay(client, provider_a, staff):
    best = make_model(provider_a, S.INITIAL_RATING, staff=staff, name="fam-v2", family="fam", votes=1000)
    parked = make_model(provider_a, S.INITIAL_RATING, staff=staff, name="fam-v1", family="fam")
    transition(model_id=best.pk, action=Action.PUBLISH, actor=staff, reason="set-up")
    best.refresh_from_db()
    with time_machine.travel(best.listed_at + DELAY - timedelta(seconds=1), tick=False):
        assert client.get(f"/models/{parked.pk}/").status_code == 404
    with time_machine.travel(best.listed_at + DELAY, tick=False):
        assert "fam-v1" in card(client, parked)


def test_each_leaderboard_row_links_to_its_card(client, provider_a, staff):
    models = [make_model(provider_a, S.LISTED, staff=staff, name=f"linked-{i}") for i in range(2)]
    publish_ratings({models[0]: 1100.0, models[1]: 1000.0})
    html = client.get("/leaderboard/").content.decode()
    for model in models:
        assert f'href="/models/{model.pk}/"' in html
    assert f'href="/models/{models[0].pk}/"' in client.get("/models/").content.decode()


def test_the_leaderboard_search_works_without_the_script(client, provider_a, provider_b, staff):
    """?q= sends every row, those that do not match hidden, so the page's script can show them again."""
    wanted = make_model(provider_a, S.LISTED, staff=staff, name="needle-chat")
    other = make_model(provider_b, S.LISTED, staff=staff, name="haystack-chat")
    publish_ratings({wanted: 1100.0, other: 1000.0})
    html = client.get("/leaderboard/", {"q": "NEEDLE"}).content.decode()
    row = {
        name: html[html.index(f'data-search="{name}') :].split(">", 1)[0] for name in ("needle-chat", "haystack-chat")
    }
    assert " hidden" not in row["needle-chat"]
    assert " hidden" in row["haystack-chat"]
    assert "1 of 2 models match “NEEDLE”." in html
    # A provider's name finds its models too, and a search that matches nothing says so.
    html = client.get("/leaderboard/", {"q": provider_b.name}).content.decode()
    assert "1 of 2 models match" in html
    html = client.get("/leaderboard/", {"q": "nothing-like-this"}).content.decode()
    assert '<tr id="board-empty">' in html

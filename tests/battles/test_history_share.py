"""A voter's own battles (/arena/history/) and the public link of a battle its voter shares."""

from __future__ import annotations

import pytest
from django.test import Client

from battles.models import Battle
from battles.voters import SESSION_KEY, judge_id
from providers.models import ArenaModel

from ..conftest import make_model
from ..factories import ProviderFactory, UserFactory
from ..releases.test_release import voted_battle

pytestmark = pytest.mark.django_db


@pytest.fixture
def models():
    provider = ProviderFactory(name="Northwind Research", slug="northwind")
    return [
        make_model(provider, ArenaModel.Status.LISTED, name=f"northwind-{n}", is_demo=True) for n in ("small", "large")
    ]


def battle_of(judge: str, models, *, prompt: str, vote: bool = True) -> Battle:
    battle = voted_battle(*models, prompt=prompt, vote=vote, days_ago=0)
    battle.judge = judge
    battle.save(update_fields=["judge"])
    return battle


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def visitor(session_voter: str) -> Client:
    client = Client()
    session = client.session
    session[SESSION_KEY] = session_voter
    session.save()
    client.cookies["sessionid"] = session.session_key
    return client


def test_history_shows_only_ones_own_battles_with_the_vote_and_the_names(models):
    alice, bob = UserFactory(), UserFactory()
    battle_of(judge_id(f"user:{alice.pk}"), models, prompt="Alice asks about tides")
    battle_of(judge_id(f"user:{alice.pk}"), models, prompt="Alice has not voted yet", vote=False)
    battle_of(judge_id(f"user:{bob.pk}"), models, prompt="Bob asks about volcanoes")

    page = signed_in(alice).get("/arena/history/")
    assert page.status_code == 200 and page["Cache-Control"] == "private, no-store"
    text = page.content.decode()
    assert "Alice asks about tides" in text and "Alice has not voted yet" in text
    assert "Bob asks about volcanoes" not in text
    assert "A is better" in text and "northwind-small" in text  # the vote and the revealed names
    assert text.count("northwind-small") == 1  # an unvoted battle's names stay hidden
    assert "Bob asks about volcanoes" in signed_in(bob).get("/arena/history/").content.decode()


def test_an_anonymous_visitor_sees_the_battles_of_their_session_and_is_asked_to_sign_in(models):
    battle_of(judge_id("session:visitor-1"), models, prompt="A visitor's question")
    battle_of(judge_id("session:visitor-2"), models, prompt="Someone else's question")
    text = visitor("visitor-1").get("/arena/history/").content.decode()
    assert "A visitor&#x27;s question" in text and "Someone else&#x27;s question" not in text
    assert "Sign in" in text
    fresh = Client().get("/arena/history/")
    assert fresh.status_code == 200 and "No battles yet" in fresh.content.decode()


def test_a_share_link_works_only_after_the_voter_shares_and_stops_after_revoking(models):
    alice = UserFactory()
    client = signed_in(alice)
    battle = battle_of(judge_id(f"user:{alice.pk}"), models, prompt="Shared question about tides")
    assert battle.share_token is None
    assert Client().get(f"/arena/shared/{battle.question_id}/").status_code == 404  # the id is not a link

    response = client.post(f"/arena/battles/{battle.question_id}/share/")
    assert response.status_code == 302 and response["Location"].startswith("/arena/history/")
    battle.refresh_from_db()
    token = battle.share_token
    assert token and len(token) >= 32 and token != battle.question_id
    assert f"/arena/shared/{token}/" in client.get("/arena/history/").content.decode()

    public = Client().get(f"/arena/shared/{token}/")  # anyone with the link, signed in or not
    assert public.status_code == 200
    text = public.content.decode()
    assert "Shared question about tides" in text and "northwind-small" in text and "northwind-large" in text
    assert public["X-Robots-Tag"] == "noindex, nofollow" and "no-store" in public["Cache-Control"]
    assert battle.judge not in text

    client.post(f"/arena/battles/{battle.question_id}/share/")  # sharing again keeps the link
    battle.refresh_from_db()
    assert battle.share_token == token

    assert client.post(f"/arena/battles/{battle.question_id}/unshare/").status_code == 302
    assert Client().get(f"/arena/shared/{token}/").status_code == 404
    client.post(f"/arena/battles/{battle.question_id}/share/")
    battle.refresh_from_db()
    assert battle.share_token != token  # a new share is a new link; the revoked one stays dead
    assert Client().get(f"/arena/shared/{token}/").status_code == 404


def test_a_battle_is_shared_only_after_the_vote(models):
    alice = UserFactory()
    battle = battle_of(judge_id(f"user:{alice.pk}"), models, prompt="Not voted yet", vote=False)
    signed_in(alice).post(f"/arena/battles/{battle.question_id}/share/")
    battle.refresh_from_db()
    assert battle.share_token is None


def test_another_voter_can_neither_share_nor_revoke_nor_read_a_battle(models):
    alice, mallory = UserFactory(), UserFactory()
    battle = battle_of(judge_id(f"user:{alice.pk}"), models, prompt="Alice's question")
    signed_in(alice).post(f"/arena/battles/{battle.question_id}/share/")
    battle.refresh_from_db()
    intruder = signed_in(mallory)
    assert intruder.post(f"/arena/battles/{battle.question_id}/share/").status_code == 404
    assert intruder.post(f"/arena/battles/{battle.question_id}/unshare/").status_code == 404
    assert intruder.get(f"/arena/battles/{battle.question_id}/").status_code == 404
    assert intruder.get(f"/api/v1/battles/{battle.question_id}/").status_code == 404
    battle.refresh_from_db()
    assert battle.share_token is not None  # still shared: only its voter revokes it
    assert intruder.get(f"/arena/shared/{battle.share_token}/").status_code == 200  # with the link, as anyone

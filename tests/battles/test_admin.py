"""Battles and votes in admin: readable, searchable, escaped, and not editable by hand."""

from __future__ import annotations

import pytest

from battles.models import Battle, Vote
from providers.models import ArenaModel

from ..conftest import make_model

S = ArenaModel.Status


@pytest.fixture
def voted_battle(provider_a):
    model_a = make_model(provider_a, S.LISTED, name="north-a", is_demo=True)
    model_b = make_model(provider_a, S.LISTED, name="north-b", is_demo=True)
    battle = Battle.objects.create(
        question_id="q-admin-1",
        model_a=model_a,
        model_b=model_b,
        turn=1,
        conversation_a=[
            {"role": "user", "content": "<script>alert(1)</script>"},
            {"role": "assistant", "content": "A <b>"},
        ],
        conversation_b=[
            {"role": "user", "content": "<script>alert(1)</script>"},
            {"role": "assistant", "content": "B"},
        ],
        openai_moderation={"flagged": True, "categories": {"violence": True, "hate": False}},
        judge="j" * 32,
    )
    Vote.objects.create(
        battle=battle, model_a=model_a, model_b=model_b, winner="model_a", judge="j" * 32, excluded_reason="moderation"
    )
    return battle


def test_the_battle_list_and_page_show_the_conversation_escaped(admin_client, voted_battle):
    listing = admin_client.get("/admin/battles/battle/")
    assert listing.status_code == 200 and "q-admin-1" in listing.content.decode()
    page = admin_client.get(f"/admin/battles/battle/{voted_battle.pk}/change/").content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page
    assert "A &lt;b&gt;" in page
    assert "flagged: violence" in page
    assert "Flagged by moderation" in page  # the vote inline, with its reason


def test_votes_are_filtered_by_reason_and_found_by_judge(admin_client, voted_battle):
    by_reason = admin_client.get("/admin/battles/vote/?excluded_reason=moderation").content.decode()
    assert "q-admin-1" in by_reason
    assert "q-admin-1" not in admin_client.get("/admin/battles/vote/?excluded_reason=error").content.decode()
    assert "q-admin-1" in admin_client.get(f"/admin/battles/vote/?q={'j' * 32}").content.decode()


def test_battles_and_votes_cannot_be_changed_or_deleted_in_admin(admin_client, voted_battle):
    vote = Vote.objects.get()
    response = admin_client.post(f"/admin/battles/vote/{vote.pk}/change/", {"winner": "model_b"})
    assert response.status_code == 403
    assert admin_client.post(f"/admin/battles/battle/{voted_battle.pk}/delete/", {"post": "yes"}).status_code == 403
    assert admin_client.get("/admin/battles/vote/add/").status_code == 403
    vote.refresh_from_db()
    assert vote.winner == "model_a" and Battle.objects.count() == 1


def test_served_shares_are_listed(admin_client, voted_battle):
    assert admin_client.get("/admin/battles/samplingshare/").status_code == 200

"""Votes imported before judges were keyed are keyed by migration 0013."""

import importlib

import pytest
from django.apps import apps

from battles.import_writer import imported_judge
from battles.models import Battle, FlaggedVoter, Vote
from providers.models import ArenaModel

from ..conftest import make_model
from .test_import import fastchat, run, write_json

pytestmark = pytest.mark.django_db

migration = importlib.import_module("battles.migrations.0013_key_imported_judges")


def test_judges_imported_before_are_keyed_and_found_again_by_a_later_import(tmp_path, provider_a):
    raw = [f"arena_user_10.0.0.{n}" for n in range(3)]
    rows = [fastchat(n, question_id=f"conv-{n}", judge=judge) for n, judge in enumerate(raw)]
    run(write_json(tmp_path / "conv.json", rows))
    # As an import before keying left them: the file's judges, raw.
    imported = Vote.objects.filter(battle__source="imported").order_by("created_at")
    for vote, judge in zip(imported, raw, strict=True):
        Vote.objects.filter(pk=vote.pk).update(judge=judge)
    live_model = make_model(provider_a, ArenaModel.Status.LISTED, name="live-model")
    other = ArenaModel.objects.get(name="koala-13b")
    live = Battle.objects.create(question_id="live-1", model_a=live_model, model_b=other)
    Vote.objects.create(battle=live, model_a=live_model, model_b=other, winner="tie", judge="a" * 32)
    FlaggedVoter.objects.create(judge=raw[1], votes_tested=1, statistic=60.0, direction="against", alpha=0.02)

    migration.key_imported_judges(apps, None)

    assert list(imported.values_list("judge", flat=True)) == [imported_judge(judge) for judge in raw]
    assert Vote.objects.get(battle=live).judge == "a" * 32
    assert FlaggedVoter.objects.get().judge == imported_judge(raw[1])
    # FastChat's other mode of the same dump (no question_id) finds the votes by their keyed judge.
    simple = [{k: v for k, v in row.items() if k != "question_id"} for row in rows]
    out = run(write_json(tmp_path / "simple.json", simple))
    assert "3 rows read, 0 added, 3 skipped." in out
    assert "already imported under another key" in out

"""Community releases: which battles, which labels, what is left out, the files, and publishing."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta

import pandas as pd
import pyarrow.parquet as pq
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from arenasite import clock
from battles.models import Battle, Vote
from providers.lifecycle import Action, transition
from providers.models import ArenaModel
from releases import building, files
from releases.dates import parse_cutoff
from releases.models import DataRelease, ReleasedBattle

from ..conftest import make_model

S = ArenaModel.Status
_ids = itertools.count()


@pytest.fixture(autouse=True)
def releases_in_tmp(settings, tmp_path):
    settings.RELEASES_DIR = tmp_path / "releases"


@pytest.fixture
def models(provider_a, provider_b):
    withdrawn = make_model(provider_b, S.INITIAL_RATING, name="never-listed")
    transition(model_id=withdrawn.pk, action=Action.WITHDRAW, actor=None, reason="pulled out")
    return {
        "listed": make_model(provider_a, S.LISTED, name="listed-model"),
        "retired": make_model(provider_a, S.RETIRED, name="retired-model"),
        "initial": make_model(provider_b, S.INITIAL_RATING, name="secret-model"),
        "withdrawn": ArenaModel.objects.get(pk=withdrawn.pk),
    }


def question_id(in_pool: bool) -> str:
    """The next test id whose keyed hash puts it in (or out of) the release pool."""
    while True:
        candidate = f"q-{next(_ids)}"
        if Battle.pool_for(candidate) == in_pool:
            return candidate


def voted_battle(model_a, model_b, *, in_pool=True, prompt="Hello there", answer="An answer.", days_ago=2, vote=True):
    created = clock.now() - timedelta(days=days_ago)
    battle = Battle.objects.create(
        question_id=question_id(in_pool),
        model_a=model_a,
        model_b=model_b,
        turn=1,
        language="English",
        conversation_a=[{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
        conversation_b=[{"role": "user", "content": prompt}, {"role": "assistant", "content": "Another answer."}],
        openai_moderation={"flagged": False, "categories": {"violence": False}, "category_scores": {"violence": 0.01}},
        created_at=created,
    )
    assert battle.in_release_pool == in_pool
    if vote:
        Vote.objects.create(
            battle=battle, model_a=model_a, model_b=model_b, winner="model_a", judge="judge-1", created_at=created
        )
    return battle


def build(cutoff=None):
    return building.build(building.start_release(cutoff or clock.now()))


def released_rows(release) -> list[dict]:
    path = building.release_path(release) / files.JSONL_NAME
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_release_holds_the_voted_pool_battles_up_to_the_cutoff(models):
    listed, retired = models["listed"], models["retired"]
    included = voted_battle(listed, retired)
    voted_battle(listed, retired, in_pool=False)
    voted_battle(listed, retired, vote=False)
    late = voted_battle(listed, retired, days_ago=0)

    release = build(clock.now() - timedelta(days=1))

    assert release.state == DataRelease.State.BUILT
    assert [row["question_id"] for row in released_rows(release)] == [included.question_id]
    assert release.battle_count == 1 and release.manifest["battles"] == 1
    # The next release takes what came after, and never the same battle again.
    second = build()
    assert [row["question_id"] for row in released_rows(second)] == [late.question_id]
    assert ReleasedBattle.objects.count() == 2


@pytest.mark.parametrize(
    ("side_a", "side_b", "labels"),
    [
        ("listed", "retired", ("listed-model", "retired-model")),
        ("listed", "initial", ("listed-model", "anonymous")),
        ("withdrawn", "retired", ("anonymous", "retired-model")),
    ],
)
def test_models_are_labelled_by_whether_they_are_or_were_listed(models, side_a, side_b, labels):
    voted_battle(models[side_a], models[side_b])
    (row,) = released_rows(build())
    assert (row["model_a"], row["model_b"]) == labels
    assert "secret-model" not in json.dumps(row) and models["initial"].codename not in json.dumps(row)


def test_a_row_carries_the_dataset_fields(models):
    battle = voted_battle(models["listed"], models["retired"], prompt="What is 2+2?", answer="4")
    (row,) = released_rows(build())
    assert list(row) == list(files.COLUMNS)
    assert row["conversation_a"] == battle.conversation_a and row["turn"] == 1 and row["anony"] is True
    assert row["winner"] == "model_a" and row["language"] == "English"
    assert row["judge"].startswith("arena_user_") and "judge-1" not in row["judge"]
    assert row["tstamp"] == pytest.approx(Vote.objects.get().created_at.timestamp())
    moderation = row["openai_moderation"]
    assert set(moderation["categories"]) == set(files.MODERATION_CATEGORIES) and moderation["flagged"] is False
    assert row["toxic_chat_tag"] is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Write to me at maria.keller@mailbox.org please", "email"),
        ("Call me on +1 415 555 0132 tomorrow", "phone"),
        ("My card is 4539 1488 0343 6467, expiry 09/27", "payment_card"),
    ],
)
def test_conversations_with_personal_data_are_left_out_and_counted(models, text, reason):
    clean = voted_battle(models["listed"], models["retired"])
    dirty = voted_battle(models["listed"], models["retired"], answer=text)
    release = build()
    assert [row["question_id"] for row in released_rows(release)] == [clean.question_id]
    assert release.manifest["excluded"]["personal_data"] == {reason: 1}
    assert release.excluded_count == 1
    assert ReleasedBattle.objects.get(battle=dirty).excluded_reason == reason
    card = (building.release_path(release) / files.CARD_NAME).read_text()
    assert f"1: {reason}" in card
    # Handled once: the next release does not reconsider it.
    assert build().manifest["considered"] == 0


def test_the_files_load_with_pandas_and_datasets_in_the_public_schema(models):
    for _ in range(3):
        voted_battle(models["listed"], models["initial"])
    release = build()
    directory = building.release_path(release)

    frame = pd.read_parquet(directory / files.PARQUET_NAME)
    assert list(frame.columns) == list(files.COLUMNS) and len(frame) == 3
    assert pq.read_schema(directory / files.PARQUET_NAME).equals(files.SCHEMA, check_metadata=False)
    lines = pd.read_json(directory / files.JSONL_NAME, lines=True)
    assert list(lines.columns) == list(files.COLUMNS) and len(lines) == 3

    datasets = pytest.importorskip("datasets")
    loaded = datasets.load_dataset("parquet", data_files=str(directory / files.PARQUET_NAME), split="train")
    assert loaded.column_names == list(files.COLUMNS)
    features = loaded.features
    assert features["turn"].dtype == "int64" and features["tstamp"].dtype == "float64"
    assert features["anony"].dtype == "bool"
    assert loaded[0]["conversation_a"][0]["role"] == "user"
    from_jsonl = datasets.load_dataset("json", data_files=str(directory / files.JSONL_NAME), split="train")
    assert from_jsonl.num_rows == 3 and from_jsonl.column_names == list(files.COLUMNS)


def test_the_manifest_has_counts_cutoff_and_checksums(models):
    voted_battle(models["listed"], models["retired"])
    release = build()
    manifest = json.loads((building.release_path(release) / files.MANIFEST_NAME).read_text())
    assert manifest == release.manifest
    assert manifest["battles"] == 1 and manifest["cutoff"] == release.cutoff.isoformat()
    for name in (files.JSONL_NAME, files.PARQUET_NAME, files.CLEAN_BATTLE_NAME, files.CARD_NAME):
        summary = files.file_summary(building.release_path(release) / name)
        assert {key: manifest["files"][name][key] for key in summary} == summary
    assert manifest["labels"] == {"listed-model": 1, "retired-model": 1}


def test_a_build_that_fails_halfway_leaves_no_files_and_takes_no_battle(models, monkeypatch, settings):
    for _ in range(5):
        voted_battle(models["listed"], models["retired"])
    monkeypatch.setattr(building, "BATCH", 2)
    real_write = files.ReleaseWriter.write
    calls = itertools.count()

    def write_then_die(self, rows):
        if next(calls) == 1:
            raise OSError("disk full")
        real_write(self, rows)

    monkeypatch.setattr(files.ReleaseWriter, "write", write_then_die)
    with pytest.raises(OSError, match="disk full"):
        build()
    release = DataRelease.objects.get()
    assert release.state == DataRelease.State.FAILED and "disk full" in release.error
    assert not ReleasedBattle.objects.exists()
    assert list(settings.RELEASES_DIR.iterdir()) == []

    monkeypatch.undo()
    settings.RELEASES_DIR = settings.RELEASES_DIR  # the fixture's directory, still in place
    assert build().battle_count == 5


def test_an_interrupted_build_is_expired_and_the_next_one_succeeds(models, time_machine):
    voted_battle(models["listed"], models["retired"])
    stuck = building.start_release(clock.now())  # a build whose process died before finishing
    with pytest.raises(building.ReleaseRefused, match="Another release is being built"):
        building.start_release(clock.now())
    time_machine.move_to(clock.now() + timedelta(minutes=11))
    release = build()
    stuck.refresh_from_db()
    assert stuck.state == DataRelease.State.FAILED and "interrupted" in stuck.error
    assert release.battle_count == 1


def test_a_cutoff_in_the_future_is_refused_and_today_means_now(models):
    with pytest.raises(building.ReleaseRefused, match="in the future"):
        building.start_release(clock.now() + timedelta(days=1))
    assert not DataRelease.objects.exists()
    before = clock.now()
    release = building.start_release(parse_cutoff(before.date().isoformat()))
    assert before <= release.cutoff <= clock.now()


# --- commands --------------------------------------------------------------------------------


def test_build_and_publish_from_the_shell(models, tmp_path, capsys):
    voted_battle(models["listed"], models["retired"])
    out = tmp_path / "out"
    call_command("build_release", "--cutoff", clock.now().date().isoformat(), "--out", str(out))
    printed = capsys.readouterr().out
    release = DataRelease.objects.get()
    assert f"Release {release.pk} built (not yet published): 1 battles" in printed
    assert sorted(p.name for p in out.iterdir()) == sorted(files.FILE_NAMES)

    call_command("publish_release", str(release.pk))
    release.refresh_from_db()
    assert release.state == DataRelease.State.PUBLISHED and release.published_at is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["build_release", "--cutoff", "yesterday"], "not a date"),
        (["build_release", "--cutoff", "2999-01-01"], "in the future"),
        (["publish_release", "999"], "There is no release 999"),
    ],
)
def test_the_commands_refuse_bad_input_clearly(models, args, message):
    with pytest.raises(CommandError, match=message):
        call_command(*args)
    assert not DataRelease.objects.exists()


def test_only_a_built_release_can_be_published_and_a_published_one_stays(models):
    voted_battle(models["listed"], models["retired"])
    release = build()
    building.discard(release)
    with pytest.raises(building.ReleaseRefused, match="only a built release"):
        building.publish(release)
    assert not ReleasedBattle.objects.exists()  # discarded: its battles wait for the next release
    again = build()
    building.publish(again)
    with pytest.raises(building.ReleaseRefused, match="stays published"):
        building.discard(again)


# --- public page, API, admin -----------------------------------------------------------------


@pytest.fixture
def published_and_built(models):
    voted_battle(models["listed"], models["retired"])
    published = building.publish(build(clock.now() - timedelta(days=1)))
    voted_battle(models["listed"], models["retired"], days_ago=0)
    return published, build()


def test_the_data_page_and_api_show_only_published_releases(client, published_and_built):
    published, built = published_and_built
    page = client.get("/data/").content.decode()
    assert f"Release {published.pk}:" in page and f"Release {built.pk}:" not in page
    listing = client.get("/api/v1/releases/").json()
    assert [r["id"] for r in listing["results"]] == [published.pk]
    assert set(listing["results"][0]["files"]) == set(files.FILE_NAMES)
    assert client.get(f"/api/v1/releases/{built.pk}/").status_code == 404
    assert client.get(f"/api/v1/releases/{published.pk}/").json()["battle_count"] == 1


def test_published_files_download_and_unpublished_ones_do_not(client, admin_client, published_and_built):
    published, built = published_and_built
    response = client.get(f"/data/releases/{published.pk}/battles.jsonl")
    assert response.status_code == 200
    assert b"".join(response.streaming_content).decode().count("\n") == 1
    assert client.get(f"/data/releases/{built.pk}/battles.jsonl").status_code == 404
    assert client.get(f"/data/releases/{published.pk}/../../settings.py").status_code == 404
    assert client.get(f"/data/releases/{published.pk}/secrets.txt").status_code == 404
    assert admin_client.get(f"/data/releases/{built.pk}/manifest.json").status_code == 200  # staff review


def test_staff_publish_from_admin_only_with_the_permission(admin_client, client, staff_without_permission, models):
    voted_battle(models["listed"], models["retired"])
    release = build()
    client.force_login(staff_without_permission)
    from django.contrib.auth.models import Permission

    staff_without_permission.user_permissions.add(Permission.objects.get(codename="view_datarelease"))
    listing = client.get("/admin/releases/datarelease/").content.decode()
    assert "Publish the selected releases" not in listing

    asked = admin_client.post("/admin/releases/datarelease/", {"action": "publish", "_selected_action": [release.pk]})
    assert "cannot be undone" in asked.content.decode()  # a confirmation page first
    release.refresh_from_db()
    assert release.state == DataRelease.State.BUILT
    response = admin_client.post(
        "/admin/releases/datarelease/",
        {"action": "publish", "_selected_action": [release.pk], "confirm": "yes", "reason": ""},
        follow=True,
    )
    assert f"Release {release.pk} is published" in response.content.decode()
    release.refresh_from_db()
    assert release.state == DataRelease.State.PUBLISHED
    page = admin_client.get(f"/admin/releases/datarelease/{release.pk}/change/").content.decode()
    assert "battles.parquet" in page and "sha256" in page

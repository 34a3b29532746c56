"""Releases and shares from the files the community really uses, and back.

FastChat's `clean_battle_data.py` writes one JSON array in two modes: `conv_release` (with
`question_id` and conversations whose messages carry `num_tokens`) and `simple` (neither).
The HuggingFace `chatbot_arena_conversations` dataset is Parquet in its own schema. These
are imported, released and shared, and the release is imported again; and a consumer who
reads a release with pandas and rates it gets the ratings the project's engine gives on
the counted votes of those battles.
"""

from __future__ import annotations

import json
import random
from io import StringIO

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from scipy.optimize import minimize

from arenasite import clock
from battles.import_writer import imported_judge
from battles.models import Battle, ExclusionReason, Vote
from providers.models import ArenaModel
from ratings_engine.bradley_terry import compute_ratings
from ratings_engine.counts import aggregate
from releases import building, files, sharing
from releases.models import DataRelease, ReleasedBattle

from ..conftest import make_model

S = ArenaModel.Status
T0 = 1_700_000_000.125
NAMES = ["vicuna-13b", "koala-13b", "alpaca-13b", "chatglm-6b"]
DATASET_KEYS = {"role", "content"}

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def every_battle_in_the_pool(settings, tmp_path):
    settings.RELEASES_DIR = tmp_path / "releases"
    settings.RELEASE_POOL_FRACTION = 1.0


def conv_release_row(n: int, rng: random.Random, *, anony: bool = True) -> dict:
    """One battle as `clean_battle_data.py --mode conv_release` writes it (num_tokens included)."""
    a, b = rng.sample(NAMES, 2)
    prompt = f"Question {n}: what is {n} squared?"

    def conversation(side: str) -> list[dict]:
        answer = f"Answer {side}{n}: it is {n * n}."
        return [
            {"role": "user", "content": prompt, "num_tokens": len(prompt.split())},
            {"role": "assistant", "content": answer, "num_tokens": len(answer.split())},
        ]

    return {
        "question_id": f"{n:032x}",
        "model_a": a,
        "model_b": b,
        "winner": rng.choice(["model_a", "model_a", "model_b", "tie", "tie (bothbad)"]),
        "judge": f"arena_user_{n % 9}",
        "conversation_a": conversation("a"),
        "conversation_b": conversation("b"),
        "turn": 1,
        "anony": anony,
        "language": "English",
        "tstamp": T0 + 37 * n,
    }


def simple_row(row: dict) -> dict:
    """The same battle as `--mode simple` writes it: no conversations, no question_id."""
    return {k: v for k, v in row.items() if k not in ("conversation_a", "conversation_b", "question_id")}


def write_json(path, rows):
    path.write_text(json.dumps(rows, indent=2, ensure_ascii=False), encoding="utf-8")
    return path


def write_hf_parquet(path, rows):
    """The rows as the HuggingFace dataset is published: Parquet written by `datasets`."""
    import datasets

    hf_rows = [
        {
            **row,
            "conversation_a": [{"content": m["content"], "role": m["role"]} for m in row["conversation_a"]],
            "conversation_b": [{"content": m["content"], "role": m["role"]} for m in row["conversation_b"]],
            "openai_moderation": {"flagged": False, "categories": {"violence": False}},
            "toxic_chat_tag": {"roberta-large": {"flagged": False, "probability": 0.01}},
        }
        for row in rows
    ]
    datasets.Dataset.from_list(hf_rows).to_parquet(str(path))
    return path


def run_import(path) -> str:
    out = StringIO()
    call_command("import_battles", str(path), stdout=out)
    return out.getvalue()


def jsonl_rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def exclude(reason: str, *, judge: str | None = None, question_ids=()) -> int:
    votes = Vote.objects.filter(excluded_reason="")
    votes = votes.filter(judge=judge) if judge else votes.filter(battle__question_id__in=list(question_ids))
    return votes.update(excluded_reason=reason)


def approved_share(provider, user):
    agreement, _ = sharing.agreement_accept(provider=provider, user=user)
    sharing.agreement_decide(agreement_id=agreement.pk, approve=True)
    return sharing.share_build(sharing.share_request(provider=provider, user=user, enqueue=False).pk)


def test_fastchat_and_dataset_files_released_shared_and_imported_again(tmp_path, provider_a, member_a):
    rng = random.Random(7)
    conv = [conv_release_row(n, rng) for n in range(40)]
    side_by_side = [conv_release_row(n, rng, anony=False) for n in range(40, 46)]

    # FastChat's conversation release (num_tokens in every message), then its simple mode of
    # the same battles, then the dataset's Parquet of the side-by-side ones: each battle once.
    assert "40 added" in run_import(write_json(tmp_path / "clean_battle_conv_20231114.json", conv))
    simple = run_import(write_json(tmp_path / "clean_battle_20231114.json", [simple_row(r) for r in conv]))
    assert "0 added" in simple and "already imported under another key" in simple
    assert "6 added" in run_import(write_hf_parquet(tmp_path / "train.parquet", side_by_side))
    assert Battle.objects.count() == 46

    # A row stored before message keys were dropped on import still has FastChat's num_tokens.
    stored = Battle.objects.get(question_id=conv[0]["question_id"])
    Battle.objects.filter(pk=stored.pk).update(conversation_a=conv[0]["conversation_a"])

    # Votes the leaderboard does not count, for two reasons.
    flagged = exclude(ExclusionReason.FLAGGED_USER, judge=imported_judge("arena_user_3"))
    revealed = exclude(ExclusionReason.IDENTITY_REVEALED, question_ids=[conv[1]["question_id"]])
    assert flagged and revealed == 1
    # A never-listed model of a provider, with counted votes against imported models and itself.
    hidden = make_model(provider_a, S.INITIAL_RATING, name="a-secret")
    hidden_two = make_model(provider_a, S.INITIAL_RATING, name="a-secret-2")
    vicuna = ArenaModel.objects.get(name="vicuna-13b")
    for n, (a, b) in enumerate([(hidden, vicuna), (vicuna, hidden), (hidden, hidden_two)]):
        battle = Battle.objects.create(
            question_id=f"live-{n}",
            model_a=a,
            model_b=b,
            turn=1,
            conversation_a=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
            conversation_b=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey"}],
            created_at=clock.now(),
        )
        Vote.objects.create(battle=battle, model_a=a, model_b=b, winner="model_b", judge="live-judge")
    not_counted = {r: Vote.objects.filter(excluded_reason=r).count() for r in ("flagged_user", "identity_revealed")}

    out = StringIO()
    call_command("build_release", "--cutoff", clock.now().isoformat(), stdout=out)
    release = DataRelease.objects.get()
    assert release.state == DataRelease.State.BUILT
    directory = building.release_path(release)
    rows = jsonl_rows(directory / files.JSONL_NAME)

    # Exactly the counted votes, and the side-by-side ones, marked by anony.
    counted = set(Vote.objects.filter(excluded_reason="").values_list("battle__question_id", flat=True))
    assert {row["question_id"] for row in rows} == counted
    assert sum(not row["anony"] for row in rows) == 6
    assert release.manifest["excluded"]["not_counted"] == not_counted
    assert release.manifest["considered"] == 49 and release.manifest["battles"] == 49 - sum(not_counted.values())
    assert "Left out because the leaderboard does not count their vote" in out.getvalue()
    card = (directory / files.CARD_NAME).read_text()
    assert f"{not_counted['flagged_user']}: flagged_user" in card and "1: identity_revealed" in card
    assert "Leave out rows with `anonymous` on either side" in card
    # Taken, with the reason, so the next release does not consider them again.
    assert ReleasedBattle.objects.filter(excluded_reason="not_counted:flagged_user").count() == flagged
    # Messages carry the dataset's keys only, in both files.
    for row in rows:
        for message in row["conversation_a"] + row["conversation_b"]:
            assert set(message) == DATASET_KEYS
    frame = pd.read_parquet(directory / files.PARQUET_NAME)
    assert list(frame.columns) == list(files.COLUMNS) and len(frame) == len(rows)
    assert {("anonymous", "anonymous"), ("anonymous", "vicuna-13b")} <= set(
        zip(frame.model_a, frame.model_b, strict=True)
    )

    # A share for the provider of the hidden models: anonymous on both sides.
    share = approved_share(provider_a, member_a)
    assert share.state == share.State.READY
    shared = jsonl_rows(sharing.share_path(share) / files.JSONL_NAME)
    assert {(r["model_a"], r["model_b"]) for r in shared} == {("anonymous", "anonymous")}
    assert share.manifest["excluded"]["not_counted"] == {}

    # The release and the share import again: into this arena they add nothing...
    for path in (directory / files.JSONL_NAME, directory / files.PARQUET_NAME, sharing.share_file(share, "jsonl")):
        assert "0 added" in run_import(path)
    # ...and into an arena without those battles, every row is kept and the anonymous ones never rated.
    ReleasedBattle.objects.all().delete()
    Battle.objects.all().delete()
    out = run_import(directory / files.JSONL_NAME)
    assert f"{len(rows)} added" in out and "kept but never rated: 3 battle(s)" in out
    assert "0 added" in run_import(directory / files.PARQUET_NAME)
    assert "0 added" in run_import(sharing.share_file(share, "jsonl"))
    unnamed = Vote.objects.filter(excluded_reason=ExclusionReason.UNNAMED_MODEL)
    assert unnamed.count() == 3
    assert Vote.objects.filter(excluded_reason="").count() == len(rows) - 3


def test_a_failed_build_ends_in_a_clear_error_and_a_failed_release(tmp_path, monkeypatch):
    rng = random.Random(3)
    run_import(write_json(tmp_path / "clean_battle_conv.json", [conv_release_row(n, rng) for n in range(3)]))
    # As before messages were cut to the dataset's keys: num_tokens reaches the Parquet writer.
    Battle.objects.update(conversation_a=[{"role": "user", "content": "Hi", "num_tokens": 1}])
    monkeypatch.setattr(files, "conversation_in_schema", lambda messages: messages)

    with pytest.raises(CommandError, match=r"Release \d+ failed \(ReleaseFileError: rows 1 to 3 .*unexpected field"):
        call_command("build_release", "--cutoff", clock.now().isoformat(), stdout=StringIO())

    release = DataRelease.objects.get()
    assert release.state == DataRelease.State.FAILED and "ReleaseFileError" in release.error
    assert not ReleasedBattle.objects.exists()
    assert not building.release_path(release).exists()
    # With the messages cut to the dataset's keys, the same rows build.
    monkeypatch.undo()
    call_command("build_release", "--cutoff", clock.now().isoformat(), stdout=StringIO())
    assert DataRelease.objects.filter(state=DataRelease.State.BUILT, battle_count=3).exists()


def plain_bradley_terry(frame: pd.DataFrame) -> pd.Series:
    """A consumer's own fit: ties half a win each way, maximum likelihood, Elo scale, mean 1000."""
    models = sorted(set(frame.model_a) | set(frame.model_b))
    index = {m: i for i, m in enumerate(models)}
    i = frame.model_a.map(index).to_numpy()
    j = frame.model_b.map(index).to_numpy()
    y = frame.winner.map({"model_a": 1.0, "model_b": 0.0, "tie": 0.5, "tie (bothbad)": 0.5}).to_numpy()

    def loss(theta):
        d = theta[i] - theta[j]
        p = 1 / (1 + np.exp(-d))
        grad_d = p - y
        grad = np.bincount(i, grad_d, len(models)) - np.bincount(j, grad_d, len(models))
        return -(y * d - np.logaddexp(0, d)).sum(), grad

    theta = minimize(loss, np.zeros(len(models)), jac=True, method="BFGS", options={"gtol": 1e-10}).x
    theta -= theta.mean()
    return pd.Series(400 / np.log(10) * theta + 1000, index=models)


def test_a_consumer_rates_a_release_as_the_leaderboard_rates_its_votes(tmp_path, provider_a):
    rng = random.Random(11)
    strength = {"vicuna-13b": 1.2, "koala-13b": 0.4, "alpaca-13b": 0.0, "chatglm-6b": -0.5}
    rows = []
    for n in range(600):
        row = conv_release_row(n, rng, anony=n % 10 != 0)
        p = 1 / (1 + np.exp(strength[row["model_b"]] - strength[row["model_a"]]))
        u = rng.random()
        row["winner"] = "model_a" if u < p * 0.85 else "model_b" if u < 0.85 else rng.choice(["tie", "tie (bothbad)"])
        rows.append(row)
    run_import(write_json(tmp_path / "clean_battle_conv.json", rows))
    # A flagged voter who always votes for the weakest model, and a never-listed model.
    exclude(ExclusionReason.FLAGGED_USER, judge=imported_judge("arena_user_4"))
    Vote.objects.filter(excluded_reason=ExclusionReason.FLAGGED_USER, battle__model_b__name="chatglm-6b").update(
        winner="model_b"
    )
    hidden = make_model(provider_a, S.INITIAL_RATING, name="a-secret")
    for n, opponent in enumerate(ArenaModel.objects.filter(name__in=NAMES)):
        battle = Battle.objects.create(question_id=f"live-{n}", model_a=hidden, model_b=opponent, turn=1)
        Vote.objects.create(battle=battle, model_a=hidden, model_b=opponent, winner="model_a", judge="live")
    release = building.build(building.start_release(clock.now()))

    # The consumer: pandas, leaving out anonymous rows and side-by-side votes.
    frame = pd.read_parquet(building.release_path(release) / files.PARQUET_NAME)
    kept = frame[frame.anony & (frame.model_a != "anonymous") & (frame.model_b != "anonymous")]
    theirs = compute_ratings(aggregate(kept), bootstrap_rounds=0).ratings["rating"]

    # The project's engine on exactly the counted votes of those battles.
    votes = Vote.objects.filter(battle__question_id__in=list(kept.question_id), anony=True, excluded_reason="")
    assert votes.count() == len(kept)
    ours_frame = pd.DataFrame(list(votes.values_list("model_a__name", "model_b__name", "winner")))
    ours_frame.columns = ["model_a", "model_b", "winner"]
    ours = compute_ratings(aggregate(ours_frame), bootstrap_rounds=0).ratings["rating"]

    assert set(theirs.index) == set(NAMES)
    assert (theirs.sort_index() - ours.sort_index()).abs().max() < 1e-6
    # A plain Bradley-Terry fit of the consumer's own agrees too.
    assert (plain_bradley_terry(kept).sort_index() - ours.sort_index()).abs().max() < 1e-3
    # Nothing the leaderboard left out is in the release.
    assert not set(kept.question_id) & set(
        Vote.objects.exclude(excluded_reason="").values_list("battle__question_id", flat=True)
    )

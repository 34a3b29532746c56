"""FastChat's clean battle file in every release: one JSON array in the shape its
`elo_analysis.py` reads, the same battles as battles.jsonl, and its checksum and row count
in the manifest."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from battles.models import Battle, Vote
from releases import building, files
from releases.models import Download

from .test_release import build, models, released_rows, voted_battle  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db

ANSWER = """# Plan

Some **bold** words and __more__, then a list:

1. first
2. second

- one
* two

```python
# not a header, and **not bold**: code
- not a list item
```
## Done
"""


def clean_battles(release) -> list:
    with open(building.release_path(release) / files.CLEAN_BATTLE_NAME, encoding="utf-8") as handle:
        return json.load(handle)


def test_the_clean_battle_file_is_one_json_array_of_the_same_battles_with_fastchats_keys(models):  # noqa: F811
    listed, retired = models["listed"], models["retired"]
    voted_battle(listed, retired)
    voted_battle(models["initial"], listed, answer=ANSWER)
    side_by_side = voted_battle(retired, listed)
    Vote.objects.filter(battle=side_by_side).update(anony=False)
    Battle.objects.filter(pk=side_by_side.pk).update(anony=False)

    release = build()

    rows = clean_battles(release)
    jsonl = released_rows(release)
    assert len(rows) == len(jsonl) == release.battle_count == 3
    assert all(tuple(row) == files.CLEAN_BATTLE_KEYS for row in rows)
    shared = ("question_id", "model_a", "model_b", "winner", "judge", "turn", "anony", "language", "tstamp")
    assert [{key: row[key] for key in shared} for row in rows] == [{key: row[key] for key in shared} for row in jsonl]
    assert [row["anony"] for row in rows] == [True, True, False]
    assert rows[1]["model_a"] == "anonymous" and rows[1]["model_b"] == "listed-model"
    assert all(row["dedup_tag"] == {"high_freq": False, "sampled": True} for row in rows)
    assert rows[0]["category_tag"] == {"arenasite_v1": {"multi_turn": False, "long_prompt": False}}

    summary = release.manifest["files"][files.CLEAN_BATTLE_NAME]
    on_disk = files.file_summary(building.release_path(release) / files.CLEAN_BATTLE_NAME)
    assert summary == {**on_disk, "rows": 3}
    assert release.manifest["files"][files.JSONL_NAME]["rows"] == 3
    # What FastChat's elo_analysis.py does with the file: pd.read_json, then its columns.
    frame = pd.read_json(building.release_path(release) / files.CLEAN_BATTLE_NAME)
    assert list(frame.columns) == list(files.CLEAN_BATTLE_KEYS) and frame["anony"].dtype == bool
    assert "clean_battle.json" in (building.release_path(release) / files.CARD_NAME).read_text()


def test_conv_metadata_counts_tokens_and_markdown_as_fastchat_does(models):  # noqa: F811
    voted_battle(models["listed"], models["retired"], prompt="Write a plan, please.", answer=ANSWER)

    release = build()
    (row,) = clean_battles(release)

    meta = row["conv_metadata"]
    # The answers' tokens are the ones counted when the battle was stored, by the same rule.
    (stored,) = released_rows(release)
    assert meta == files.conv_metadata(stored["conversation_a"], stored["conversation_b"], stored["turn"])
    assert meta["sum_user_tokens"] == 6  # Write a plan , please .
    assert meta["context_a_tokens"] == meta["context_b_tokens"] == 6
    assert meta["sum_assistant_b_tokens"] == 3  # "Another answer.": two words and a full stop
    assert meta["sum_assistant_a_tokens"] > 30
    assert meta["turns"] == 1
    # The code block's lines are not counted: add_markdown_info.py removes code blocks first.
    assert meta["header_count_a"] == {"h1": 1, "h2": 1, "h3": 0, "h4": 0, "h5": 0, "h6": 0}
    assert meta["list_count_a"] == {"ordered": 2, "unordered": 2}
    assert meta["bold_count_a"] == {"**": 1, "__": 1}
    assert meta["header_count_b"]["h1"] == 0 and meta["list_count_b"] == {"ordered": 0, "unordered": 0}


def test_the_dedup_tag_marks_a_flooded_prompt_and_the_votes_the_leaderboard_keeps_of_it(models, settings):  # noqa: F811
    settings.ARENA_DEDUP_PERCENTILE = 50  # prompt counts 5, 1, 1, 1: the limit is 1 vote a prompt
    flood = [voted_battle(models["listed"], models["retired"], prompt="What is 2+2?") for _ in range(5)]
    for n in range(3):
        voted_battle(models["listed"], models["retired"], prompt=f"A question of its own, number {n}")

    rows = {row["question_id"]: row for row in clean_battles(build())}

    kept = min(b.question_id for b in flood)  # the first by question id
    for battle in flood:
        assert rows[battle.question_id]["dedup_tag"] == {"high_freq": True, "sampled": battle.question_id == kept}
    others = [row for qid, row in rows.items() if qid not in {b.question_id for b in flood}]
    assert len(others) == 3 and all(row["dedup_tag"] == {"high_freq": False, "sampled": True} for row in others)


def test_a_release_with_no_battles_has_an_empty_array(models):  # noqa: F811
    release = build()
    assert release.battle_count == 0
    assert clean_battles(release) == []
    assert release.manifest["files"][files.CLEAN_BATTLE_NAME]["rows"] == 0


def test_a_multi_turn_battle_counts_every_turn_and_the_context_before_the_last_answer(models):  # noqa: F811
    battle = voted_battle(models["listed"], models["retired"])
    conversation = [
        {"role": "user", "content": "one two"},
        {"role": "assistant", "content": "three"},
        {"role": "user", "content": "four five six"},
        {"role": "assistant", "content": "seven eight"},
    ]
    battle.turn, battle.conversation_a, battle.conversation_b = 2, conversation, conversation
    battle.save()  # and its style row with it

    (row,) = clean_battles(build())

    meta = row["conv_metadata"]
    assert meta["sum_user_tokens"] == 5 and meta["sum_assistant_a_tokens"] == 3
    assert meta["context_a_tokens"] == 6 and meta["turns"] == 2
    assert row["turn"] == 2 and row["category_tag"]["arenasite_v1"]["multi_turn"] is True


def test_a_published_release_serves_the_file_from_the_data_page_and_logs_the_download(client, models):  # noqa: F811
    voted_battle(models["listed"], models["retired"])
    release = building.publish(build())

    assert files.CLEAN_BATTLE_NAME in client.get("/data/").content.decode()
    response = client.get(f"/data/releases/{release.pk}/{files.CLEAN_BATTLE_NAME}")

    assert response.status_code == 200
    assert len(json.loads(b"".join(response.streaming_content))) == 1
    assert Download.objects.get().format == Download.Format.FASTCHAT

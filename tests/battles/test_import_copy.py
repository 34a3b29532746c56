"""The import writes through COPY and staging tables: all or nothing across batches, every
format the same rows, re-imports that add nothing, and judges stored keyed, never as read."""

import json

import pytest
from django.core.management import CommandError
from django.db import connection

from battles.import_writer import imported_judge
from battles.models import Battle, BattleStyle, Vote
from battles.style import conversation_prompt_hash, style_columns

from .test_import import battle, counts, fastchat, run, write_json, write_jsonl, write_parquet

pytestmark = pytest.mark.django_db

FORMATS = [
    pytest.param(write_json, "clean_battle.json", fastchat, id="fastchat"),
    pytest.param(write_jsonl, "train.jsonl", battle, id="hf-jsonl"),
    pytest.param(write_parquet, "train.parquet", battle, id="hf-parquet"),
]


STYLE_FIELDS = ("tokens_a", "tokens_b", "headers_a", "headers_b", "list_items_a", "list_items_b", "bold_a", "bold_b")


def all_counts() -> dict[str, int]:
    return {**counts(), "BattleStyle": BattleStyle.objects.count()}


def stored_rows() -> list[tuple]:
    """Every imported battle with its vote and style, by question_id, without ids."""
    rows = []
    for b in Battle.objects.select_related("vote", "model_a", "model_b").order_by("question_id"):
        style = BattleStyle.objects.filter(battle=b).values(*STYLE_FIELDS).first()
        rows.append(
            (
                b.question_id,
                b.model_a.name,
                b.model_b.name,
                b.anony,
                b.language,
                b.turn,
                b.prompt_chars,
                b.prompt_hash,
                b.conversation_a,
                b.conversation_b,
                b.in_release_pool,
                b.created_at,
                b.vote.winner,
                b.vote.judge,
                b.vote.excluded_reason,
                style,
            )
        )
    return rows


def varied(n: int, make) -> dict:
    """A battle with markdown answers, now and then without answers or with an unnamed model."""
    row = make(n, judge=f"arena_user_10.209.{n % 3}.{n % 5}")
    if n % 4 == 0:
        row["conversation_a"][1]["content"] = "# Title\n\n- one\n- **two**\n1. three"
    if n % 9 == 0:
        row["conversation_b"] = []
    if n % 11 == 0:
        row["model_b"] = "anonymous"
    return row


@pytest.mark.parametrize("writer, name, make", FORMATS)
def test_a_bad_row_in_the_last_batch_leaves_nothing_behind(tmp_path, writer, name, make):
    before = all_counts()
    rows = [varied(n, make) | {"model_a": f"new-model-{n % 3}"} for n in range(25)]
    rows[23]["winner"] = "model_c"  # in the last batch of five

    with pytest.raises(CommandError) as refused:
        run(writer(tmp_path / name, rows), "--batch-size", "5")

    assert "winner must be one of" in str(refused.value)
    assert str(refused.value).endswith("Nothing was imported.")
    assert all_counts() == before
    # The staging tables went with the transaction: the next import of the same connection works.
    rows[23]["winner"] = "model_a"
    assert "25 rows read, 25 added" in run(writer(tmp_path / name, rows), "--batch-size", "5")


@pytest.mark.parametrize("writer, name, make", FORMATS)
def test_importing_again_skips_every_row_across_batches(tmp_path, writer, name, make):
    path = writer(tmp_path / name, [varied(n, make) for n in range(30)])
    first = run(path, "--batch-size", "7")
    assert "30 rows read, 30 added, 0 skipped." in first
    before = all_counts()

    out = run(path, "--batch-size", "4")

    assert "30 rows read, 0 added, 30 skipped." in out
    assert "skipped: already imported: 30" in out
    assert all_counts() == before


def test_the_three_formats_store_the_same_rows(tmp_path):
    rows = [varied(n, battle) for n in range(20)]
    stored = []
    for writer, name in ((write_json, "b.json"), (write_jsonl, "b.jsonl"), (write_parquet, "b.parquet")):
        assert "20 rows read, 20 added" in run(writer(tmp_path / name, rows), "--batch-size", "6")
        stored.append(stored_rows())
        Battle.objects.all().delete()
    assert stored[0] == stored[1] == stored[2]
    assert len(stored[0]) == 20


def test_style_rows_and_prompt_hashes_are_the_ones_a_saved_battle_gets(tmp_path):
    run(write_jsonl(tmp_path / "b.jsonl", [varied(n, battle) for n in range(20)]), "--batch-size", "6")

    for b in Battle.objects.all():
        assert b.prompt_hash == conversation_prompt_hash(b.conversation_a)
        expected = style_columns(b.conversation_a, b.conversation_b)
        style = BattleStyle.objects.filter(battle=b).values(*STYLE_FIELDS).first()
        assert style == expected  # None: no style row for a battle missing an answer
    assert BattleStyle.objects.filter(headers_a=1, list_items_a=3, bold_a=1).exists()
    assert Battle.objects.filter(style__isnull=True).count() == 3  # n = 0, 9 and 18 have no answer b


def text_columns() -> list[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT table_name, column_name FROM information_schema.columns
            WHERE table_schema = current_schema()
                AND data_type IN ('text', 'character varying', 'character', 'json', 'jsonb')
            """
        )
        return cursor.fetchall()


def holding(needle: str) -> list[str]:
    """Every table.column of the database whose text holds `needle`."""
    found = []
    with connection.cursor() as cursor:
        for table, column in text_columns():
            q = connection.ops.quote_name
            cursor.execute(f"SELECT 1 FROM {q(table)} WHERE {q(column)}::text LIKE %s LIMIT 1", [f"%{needle}%"])
            if cursor.fetchone():
                found.append(f"{table}.{column}")
    return found


def test_no_judge_from_the_file_is_stored_anywhere(tmp_path):
    # FastChat's unsanitised dumps name the voter by address; simple mode has no question_id,
    # so the key is a content hash, which is of the keyed judge.
    judges = ["arena_user_10.209.216.199", "arena_user_2001:db8::7", "arena_user_10.209.216.199"]
    rows = [fastchat(n, judge=judge) for n, judge in enumerate(judges)]
    rows.append(fastchat(3, judge="arena_user_192.0.2.55_" + "x" * 80))  # longer than the column
    path = write_json(tmp_path / "clean_battle.json", rows)

    assert "4 rows read, 4 added" in run(path)

    for needle in ("10.209.216.199", "2001:db8::7", "192.0.2.55", "arena_user"):
        assert holding(needle) == [], needle
    assert list(Vote.objects.order_by("created_at").values_list("judge", flat=True))[:3] == [
        imported_judge("arena_user_10.209.216.199"),
        imported_judge("arena_user_2001:db8::7"),
        imported_judge("arena_user_10.209.216.199"),
    ]
    # Two imports of the same file add nothing.
    before = all_counts()
    assert "4 rows read, 0 added, 4 skipped." in run(path)
    assert all_counts() == before


def test_the_same_judge_in_two_files_is_the_same_voter(tmp_path):
    run(write_jsonl(tmp_path / "a.jsonl", [battle(0, judge="arena_user_10.0.0.1")]))
    run(write_json(tmp_path / "b.json", [fastchat(1, judge="arena_user_10.0.0.1")]))
    assert set(Vote.objects.values_list("judge", flat=True)) == {imported_judge("arena_user_10.0.0.1")}


def test_a_vote_already_stored_under_another_key_is_found_by_its_keyed_judge(tmp_path):
    with_ids = [fastchat(n, question_id=f"conv-{n}", judge=f"arena_user_10.1.1.{n}") for n in range(3)]
    run(write_json(tmp_path / "conv.json", with_ids))
    # The same votes without question_id (a content hash is the key), one of them by another judge.
    simple = [{k: v for k, v in row.items() if k != "question_id"} for row in with_ids]
    simple[2]["judge"] = "arena_user_10.1.1.99"

    out = run(write_json(tmp_path / "simple.json", simple))

    assert "3 rows read, 1 added, 2 skipped." in out
    assert "already imported under another key (same models, winner, judge and time): 2" in out


def test_the_summary_says_whether_the_anomalous_voter_test_will_read_the_votes(tmp_path, settings):
    rows = [battle(0), battle(1, anony=False), battle(2, model_b="anonymous"), battle(3)]
    out = run(write_jsonl(tmp_path / "a.jsonl", rows))
    assert "anomalous-voter test: the 2 counted anonymous vote(s) added are tested" in out
    assert "at the next rating run" in out

    settings.ARENA_ANOMALY_TEST_SCOPE = "arena"
    out = run(write_jsonl(tmp_path / "b.jsonl", [battle(n) for n in range(4, 7)]))
    assert 'ARENA_ANOMALY_TEST_SCOPE is "arena", so the 3 counted anonymous vote(s) added are not tested' in out

    settings.ARENA_ANOMALY_TEST_SCOPE = "all"
    settings.ARENA_ANOMALY_DETECTION = False
    out = run(write_jsonl(tmp_path / "c.jsonl", [battle(7)]))
    assert "anomalous-voter test: off (ARENA_ANOMALY_DETECTION)" in out

    # Nothing added, nothing to test: no line.
    assert "anomalous-voter" not in run(write_jsonl(tmp_path / "c.jsonl", [battle(7)]))


def test_text_copy_cannot_spell_is_stored_as_it_was_read(tmp_path):
    # Tabs, newlines, carriage returns and backslashes are COPY's own syntax in its text format.
    tricky = "a\tb\nc\rd\\e \\N \\. end"
    row = battle(
        0,
        model_a="model\\with\ttab",
        language="Eng\\lish",
        conversation_a=[{"role": "user", "content": tricky}, {"role": "assistant", "content": tricky}],
        openai_moderation={"note\t": "\\N"},
    )
    run(write_jsonl(tmp_path / "t.jsonl", [row]))
    stored = Battle.objects.get()
    assert stored.conversation_a == row["conversation_a"]
    assert stored.model_a.name == "model\\with\ttab" and stored.language == "Eng\\lish"
    assert stored.openai_moderation == {"note\t": "\\N"}
    assert json.loads(json.dumps(stored.toxic_chat_tag)) == row["toxic_chat_tag"]


@pytest.mark.parametrize("writer, name, make", FORMATS)
def test_worker_processes_store_the_same_rows_and_refuse_the_same_file(tmp_path, writer, name, make):
    rows = [varied(n, make) | {"model_a": f"new-model-{n % 3}"} for n in range(25)]
    path = writer(tmp_path / name, rows)
    run(path, "--batch-size", "4")
    alone = stored_rows()
    Battle.objects.all().delete()

    assert "25 rows read, 25 added" in run(path, "--batch-size", "4", "--workers", "3")
    assert stored_rows() == alone
    assert "25 rows read, 0 added, 25 skipped." in run(path, "--batch-size", "4", "--workers", "2")

    # A bad row in the last batch: the same refusal, with where, and nothing left behind.
    Battle.objects.all().delete()
    before = all_counts()
    rows[23]["winner"] = "model_c"
    with pytest.raises(CommandError) as refused:
        run(writer(tmp_path / name, rows), "--batch-size", "4", "--workers", "2")
    where = {"clean_battle.json": "item", "train.jsonl": "line", "train.parquet": "row"}[name]
    assert str(refused.value).startswith(f"{name}: {where} 24: winner must be one of")
    assert all_counts() == before


def test_a_reading_error_after_good_batches_is_reported_where_it_is_with_worker_processes(tmp_path):
    head = ",\n".join(json.dumps(fastchat(n)) for n in range(9))
    path = tmp_path / "clean_battle.json"
    path.write_text(f"[{head},\n{{broken")
    with pytest.raises(CommandError, match=r"clean_battle.json: item 10: invalid JSON"):
        run(path, "--batch-size", "4", "--workers", "2")
    assert not Battle.objects.exists()

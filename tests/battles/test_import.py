import hashlib
import json
from datetime import UTC, datetime
from io import StringIO

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.management import CommandError, call_command

from battles import import_writer, importing
from battles.import_writer import imported_judge
from battles.models import Battle, Vote, Winner
from providers import lifecycle
from providers.models import ArenaModel, LifecycleEvent, Provider

from ..conftest import make_model

pytestmark = pytest.mark.django_db

T0 = 1682351591.25  # 2023-04-24 15:53:11.25 UTC


def battle(n: int = 0, **fields) -> dict:
    """One battle in the chatbot_arena_conversations schema."""
    prompt = f"question number {n}?"
    row = {
        "question_id": f"q{n:06d}",
        "model_a": "vicuna-13b",
        "model_b": "koala-13b",
        "winner": "model_a",
        "judge": f"arena_user_{n % 7}",
        "conversation_a": [{"role": "user", "content": prompt}, {"role": "assistant", "content": f"answer a {n}"}],
        "conversation_b": [{"role": "user", "content": prompt}, {"role": "assistant", "content": f"answer b {n}"}],
        "turn": 1,
        "anony": True,
        "language": "English",
        "tstamp": T0 + n,
        "openai_moderation": {"flagged": False, "categories": {"violence": False}},
        "toxic_chat_tag": {"roberta-large": {"flagged": False, "probability": 0.01}},
    }
    row.update(fields)
    return row


def fastchat(n: int = 0, **fields) -> dict:
    """One battle as FastChat's clean battle JSON writes it: no question_id, no moderation tags."""
    row = battle(n, **fields)
    for name in ("question_id", "openai_moderation", "toxic_chat_tag"):
        if name not in fields:
            del row[name]
    return row


def write_json(path, rows):
    path.write_text(json.dumps(rows, indent=1))
    return path


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def write_parquet(path, rows):
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=2)
    return path


def run(path, *args) -> str:
    out = StringIO()
    call_command("import_battles", str(path), *args, stdout=out)
    return out.getvalue()


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in (Battle, Vote, ArenaModel, Provider, LifecycleEvent)}


def test_the_readers_agree_with_the_models():
    assert importing.WINNERS == set(Winner.values)
    assert importing.QUESTION_ID_MAX == Battle._meta.get_field("question_id").max_length
    assert importing.JUDGE_MAX == Vote._meta.get_field("judge").max_length
    assert importing.LANGUAGE_MAX == Battle._meta.get_field("language").max_length
    assert importing.MODEL_NAME_MAX == ArenaModel._meta.get_field("name").max_length


def test_it_imports_a_fastchat_json_array(tmp_path):
    rows = [
        fastchat(0),
        fastchat(1, model_b="alpaca-13b", winner="tie (bothbad)", anony=False, language="German"),
        fastchat(2, conversation_a=None, conversation_b=None, turn=None),
    ]
    out = run(write_json(tmp_path / "clean_battle.json", rows))

    assert "clean_battle.json (fastchat): 3 rows read, 3 added, 0 skipped." in out
    first, second, third = Battle.objects.order_by("created_at")
    assert first.source == Battle.Source.IMPORTED
    assert len(first.question_id) == 64  # a content hash stands in for the missing question_id
    # The hash is of the keyed judge: a hash of fields a release publishes and an address
    # would give the address back to anyone who tries every address.
    assert first.question_id == importing.content_key(
        model_a="vicuna-13b",
        model_b="koala-13b",
        winner="model_a",
        judge=imported_judge("arena_user_0"),
        tstamp=T0,
        conversation_a=rows[0]["conversation_a"],
        conversation_b=rows[0]["conversation_b"],
    )
    assert first.model_a.name == "vicuna-13b" and first.model_b.name == "koala-13b"
    assert first.language == "English" and first.turn == 1 and first.anony
    assert first.prompt_chars == len("question number 0?")
    assert first.conversation_a == rows[0]["conversation_a"]
    assert first.openai_moderation is None and first.toxic_chat_tag is None
    assert first.created_at == datetime(2023, 4, 24, 15, 53, 11, 250000, tzinfo=UTC)

    vote = first.vote
    assert (vote.model_a_id, vote.model_b_id, vote.anony) == (first.model_a_id, first.model_b_id, True)
    assert vote.winner == Winner.MODEL_A and vote.judge == imported_judge("arena_user_0")
    assert vote.excluded_reason == "" and vote.created_at == first.created_at

    assert second.vote.winner == Winner.TIE_BOTHBAD and not second.anony and not second.vote.anony
    assert second.language == "German" and second.model_b.name == "alpaca-13b"
    assert third.conversation_a == [] and third.conversation_b == []
    assert third.turn == 1 and third.prompt_chars == 0


def test_it_imports_the_dataset_schema_as_json_lines(tmp_path):
    rows = [battle(0), battle(1, winner="tie", conversation_a=[], turn=None), battle(2, judge="x" * 80)]
    out = run(write_jsonl(tmp_path / "train.jsonl", rows))

    assert "train.jsonl (hf-jsonl): 3 rows read, 3 added, 0 skipped." in out
    first = Battle.objects.get(question_id="q000000")
    assert first.openai_moderation == rows[0]["openai_moderation"]
    assert first.toxic_chat_tag == rows[0]["toxic_chat_tag"]
    assert first.conversation_b == rows[0]["conversation_b"]
    no_turns = Battle.objects.get(question_id="q000001")
    assert no_turns.turn == 1 and no_turns.prompt_chars == 0 and no_turns.vote.winner == Winner.TIE
    # Cut to its sha256 to fit, as imports always did, then keyed.
    long_judge = Vote.objects.get(battle__question_id="q000002").judge
    assert long_judge == imported_judge(hashlib.sha256(b"x" * 80).hexdigest())


def test_it_imports_the_dataset_schema_as_parquet(tmp_path):
    rows = [battle(n) for n in range(5)]
    rows[3]["conversation_a"].append({"role": "user", "content": "and then?"})
    rows[3]["turn"] = None
    out = run(write_parquet(tmp_path / "train-00000-of-00001.parquet", rows))

    assert "(hf-parquet): 5 rows read, 5 added, 0 skipped." in out
    third = Battle.objects.get(question_id="q000003")
    assert third.turn == 2  # counted from the user messages when not given
    assert third.conversation_a == rows[3]["conversation_a"]
    assert third.toxic_chat_tag == rows[3]["toxic_chat_tag"]
    assert third.created_at == datetime.fromtimestamp(T0 + 3, tz=UTC)
    assert Vote.objects.filter(winner="model_a").count() == 5


@pytest.mark.parametrize(
    "writer, name, make",
    [(write_json, "b.json", fastchat), (write_jsonl, "b.jsonl", battle), (write_parquet, "b.parquet", battle)],
)
def test_importing_the_same_file_again_adds_nothing(tmp_path, writer, name, make):
    path = writer(tmp_path / name, [make(n) for n in range(6)])
    run(path)
    before = counts()

    out = run(path)

    assert "6 rows read, 0 added, 6 skipped." in out
    assert "skipped: already imported: 6" in out
    assert counts() == before


def test_an_overlapping_file_adds_only_the_new_battles(tmp_path):
    run(write_jsonl(tmp_path / "week1.jsonl", [battle(n) for n in range(4)]))
    out = run(write_jsonl(tmp_path / "week2.jsonl", [battle(n) for n in range(2, 7)]))
    assert "5 rows read, 3 added, 2 skipped." in out
    assert Battle.objects.count() == Vote.objects.count() == 7


def test_duplicates_inside_one_file_are_skipped_even_across_batches(tmp_path):
    rows = [fastchat(0), fastchat(1), fastchat(0), fastchat(2), fastchat(1), fastchat(1)]
    out = run(write_json(tmp_path / "dups.json", rows), "--batch-size", "2")

    assert "6 rows read, 3 added, 3 skipped." in out
    assert "skipped: duplicate in file: 3" in out
    assert "already imported" not in out
    assert Battle.objects.count() == Vote.objects.count() == 3


def test_unknown_models_are_listed_under_the_imported_provider_with_an_event(tmp_path):
    rows = [
        battle(5, model_a="guanaco-33b", model_b="mpt-7b-chat"),
        battle(6, model_a="mpt-7b-chat", model_b="guanaco-33b"),
        battle(1, model_a="guanaco-33b", model_b="RWKV-4-Raven-14B"),  # the earliest, in a later batch
    ]
    out = run(write_jsonl(tmp_path / "arena.jsonl", rows), "--batch-size", "2")

    assert 'created 3 listed model(s) under provider "imported": RWKV-4-Raven-14B, guanaco-33b, mpt-7b-chat' in out
    provider = Provider.objects.get(slug="imported")
    assert provider.name == "imported"
    guanaco = ArenaModel.objects.get(name="guanaco-33b")
    assert guanaco.provider == provider
    assert guanaco.status == ArenaModel.Status.LISTED and guanaco.is_public
    assert guanaco.access_kind == ArenaModel.AccessKind.PUBLIC_API
    assert guanaco.listed_at == datetime.fromtimestamp(T0 + 1, tz=UTC)
    assert ArenaModel.objects.get(name="mpt-7b-chat").listed_at == datetime.fromtimestamp(T0 + 5, tz=UTC)

    event = guanaco.events.get()
    assert (event.action, event.kind, event.from_status, event.to_status) == (
        lifecycle.Entry.IMPORT,
        "done",
        "draft",
        "listed",
    )
    assert event.actor is None
    assert event.reason == "Imported with arena data from arena.jsonl"
    assert event.effective_at == event.created_at == guanaco.created_at
    assert LifecycleEvent.objects.count() == 3

    # A second file reuses them: no second provider, model or event.
    run(write_jsonl(tmp_path / "more.jsonl", [battle(9, model_a="guanaco-33b", model_b="mpt-7b-chat")]))
    assert Provider.objects.filter(slug="imported").count() == 1
    assert ArenaModel.objects.count() == 3 and LifecycleEvent.objects.count() == 3


def test_existing_models_are_reused_whatever_their_status(tmp_path, provider_a):
    listed = make_model(provider_a, ArenaModel.Status.LISTED, name="vicuna-13b")
    draft = make_model(provider_a, ArenaModel.Status.DRAFT, name="koala-13b")
    before = counts()

    run(write_jsonl(tmp_path / "b.jsonl", [battle(0), battle(1)]))

    assert Battle.objects.filter(model_a=listed, model_b=draft).count() == 2
    assert Vote.objects.filter(model_a=listed, model_b=draft).count() == 2
    assert not Provider.objects.filter(slug="imported").exists()
    assert counts() == {**before, "Battle": 2, "Vote": 2}
    draft.refresh_from_db()
    assert draft.status == ArenaModel.Status.DRAFT


def test_an_existing_imported_provider_is_used(tmp_path):
    Provider.objects.create(name="imported", slug="imported")
    run(write_jsonl(tmp_path / "b.jsonl", [battle(0)]))
    assert Provider.objects.count() == 1
    assert set(ArenaModel.objects.values_list("provider__slug", flat=True)) == {"imported"}


def test_the_release_pool_flag_is_the_one_a_saved_battle_would_get(tmp_path, settings):
    settings.RELEASE_POOL_FRACTION = 0.5
    run(write_jsonl(tmp_path / "b.jsonl", [battle(n) for n in range(60)]), "--batch-size", "7")
    flags = dict(Battle.objects.values_list("question_id", "in_release_pool"))
    assert flags == {key: Battle.pool_for(key) for key in flags}
    assert 0 < sum(flags.values()) < 60


def _jsonl_with(path, bad: str, at: int):
    """Three good lines (with models nobody has yet) and `bad` as line `at`."""
    lines = [json.dumps(battle(n, model_a=f"new-model-{n}")) for n in range(3)]
    lines.insert(at - 1, bad)
    path.write_text("\n".join(lines) + "\n")
    return path


BAD_ROWS = [
    ('{"model_a": "a", "model_b": ', "invalid JSON"),
    (json.dumps({k: v for k, v in battle(9).items() if k != "judge"}), "missing required field 'judge'"),
    (json.dumps(battle(9, winner="model_c")), "winner must be one of"),
    (json.dumps(battle(9, model_a="koala-13b")), "model_a and model_b are the same model ('koala-13b')"),
    (json.dumps(battle(9, tstamp="2023-04-24")), "tstamp must be unix seconds"),
    (json.dumps(battle(9, anony="yes")), "anony must be true or false"),
    (json.dumps(battle(9, turn=1.5)), "turn must be a whole number"),
    (json.dumps(battle(9, conversation_a="hello")), "conversation_a must be a list of messages"),
    (json.dumps(battle(9, conversation_b=[{"role": "user"}])), "conversation_b[0] must be an object"),
    (json.dumps(battle(9, model_b=7)), "model_b must be a non-empty string"),
    (json.dumps(battle(9, question_id=12)), "question_id must be a string"),
    (json.dumps([battle(9)]), "expected one JSON object per line"),
    ('{"tstamp": NaN}', "NaN is not valid JSON"),
]


@pytest.mark.parametrize("bad, message", BAD_ROWS)
def test_a_malformed_json_lines_file_is_refused_with_its_line_and_nothing_added(tmp_path, bad, message):
    before = counts()
    path = _jsonl_with(tmp_path / "bad.jsonl", bad, at=3)

    with pytest.raises(CommandError) as refused:
        run(path, "--batch-size", "1")  # the first two lines are inserted before the bad one is read

    assert str(refused.value).startswith("bad.jsonl: line 3: ")
    assert message in str(refused.value)
    assert str(refused.value).endswith("Nothing was imported.")
    assert counts() == before


def test_the_line_number_counts_blank_lines(tmp_path):
    path = tmp_path / "gaps.jsonl"
    path.write_text(json.dumps(battle(0)) + "\n\n\n" + json.dumps(battle(1, winner="A")) + "\n")
    with pytest.raises(CommandError, match=r"gaps.jsonl: line 4: winner must be one of"):
        run(path)
    assert Battle.objects.count() == 0


@pytest.mark.parametrize(
    "tail, message",
    [
        ('{"model_a": "x", "model_b": oops}]', r"item 3: invalid JSON"),
        ('{"model_a": "x", "model_b": "y"', r"item 3: invalid JSON"),  # cut off
        ('"just a string"]', r"item 3: expected an object, got a string"),
        (json.dumps(fastchat(9, model_b="vicuna-13b")) + "]", r"item 3: model_a and model_b are the same model"),
        (json.dumps(fastchat(9, tstamp=None)) + "]", r"item 3: missing required field 'tstamp'"),
    ],
)
def test_a_malformed_json_array_is_refused_with_its_item_number(tmp_path, tail, message):
    before = counts()
    head = ",\n".join(json.dumps(fastchat(n, model_a=f"new-model-{n}")) for n in range(2))
    path = tmp_path / "clean_battle.json"
    path.write_text(f"[{head},\n{tail}")

    with pytest.raises(CommandError, match=rf"clean_battle.json: {message}"):
        run(path, "--batch-size", "1")
    assert counts() == before


def test_a_malformed_parquet_file_is_refused_with_its_row_number(tmp_path):
    before = counts()
    rows = [battle(n, model_a=f"new-model-{n}") for n in range(5)]
    rows[3]["winner"] = "model_z"
    path = write_parquet(tmp_path / "bad.parquet", rows)

    with pytest.raises(CommandError, match=r"bad.parquet: row 4: winner must be one of"):
        run(path, "--batch-size", "2")
    assert counts() == before


def test_a_parquet_file_with_a_column_of_the_wrong_type_is_refused(tmp_path):
    rows = [battle(n) for n in range(3)]
    table = pa.Table.from_pylist(rows)
    table = table.set_column(table.schema.get_field_index("tstamp"), "tstamp", pa.array(["soon"] * 3))
    path = tmp_path / "types.parquet"
    pq.write_table(table, path)
    with pytest.raises(CommandError, match=r"row 1: tstamp must be unix seconds"):
        run(path)
    assert Battle.objects.count() == 0


def test_a_file_that_is_not_parquet_is_refused(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 this is not really parquet")
    with pytest.raises(CommandError, match=r"broken.parquet: not a readable Parquet file"):
        run(path)


def test_an_explicit_format_overrides_the_extension(tmp_path):
    path = write_jsonl(tmp_path / "export.txt", [battle(0), battle(1)])
    out = run(path, "--format", "hf")
    assert "export.txt (hf-jsonl): 2 rows read, 2 added" in out

    # The datasets library writes JSON Lines under a .json name; auto reads it as such.
    out = run(write_jsonl(tmp_path / "train.json", [battle(2)]))
    assert "train.json (hf-jsonl): 1 rows read, 1 added" in out

    out = run(write_parquet(tmp_path / "data.bin", [battle(3)]), "--format", "hf")
    assert "data.bin (hf-parquet): 1 rows read, 1 added" in out


def test_the_wrong_explicit_format_is_refused(tmp_path):
    jsonl = write_jsonl(tmp_path / "train.jsonl", [battle(0)])
    with pytest.raises(CommandError, match="--format fastchat expects one JSON array"):
        run(jsonl, "--format", "fastchat")

    parquet = write_parquet(tmp_path / "train.parquet", [battle(0)])
    with pytest.raises(CommandError, match="--format fastchat expects one JSON array"):
        run(parquet, "--format", "fastchat")

    array = write_json(tmp_path / "clean.json", [fastchat(0)])
    with pytest.raises(CommandError, match=r"line 1: invalid JSON"):
        run(array, "--format", "hf")
    assert Battle.objects.count() == 0


def test_an_unknown_format_and_a_missing_file_are_refused(tmp_path):
    csv = tmp_path / "battles.csv"
    csv.write_text("model_a,model_b,winner\n")
    with pytest.raises(CommandError, match="cannot tell the format"):
        run(csv)
    with pytest.raises(CommandError, match="invalid choice: 'csv'"):
        run(write_jsonl(tmp_path / "b.jsonl", [battle(0)]), "--format", "csv")
    with pytest.raises(CommandError, match="no such file"):
        run(tmp_path / "missing.jsonl")


def test_the_readers_stream(tmp_path):
    """The JSON array reader hands out rows before it has parsed the rest of the file."""
    path = tmp_path / "clean.json"
    path.write_text("[" + json.dumps(fastchat(0)) + "," + json.dumps(fastchat(1)) + ", {broken")
    rows = importing.read_fastchat(path)
    assert next(rows).judge == "arena_user_0"
    assert next(rows).judge == "arena_user_1"
    with pytest.raises(importing.ImportFormatError, match="item 3"):
        next(rows)


def test_a_large_file_is_written_in_batches(tmp_path, monkeypatch):
    sizes = []
    write_batch = import_writer._write_batch

    def spy(staging, batch, *args):
        sizes.append(len(batch.rows))
        write_batch(staging, batch, *args)

    monkeypatch.setattr(import_writer, "_write_batch", spy)
    rows = [battle(n, conversation_a=None, conversation_b=None, openai_moderation=None) for n in range(20000)]
    path = write_jsonl(tmp_path / "big.jsonl", rows)

    out = run(path, "--batch-size", "1000")

    assert "20000 rows read, 20000 added, 0 skipped." in out
    assert sizes == [1000] * 20
    assert Battle.objects.count() == Vote.objects.count() == 20000


DEEP = 100_000  # levels of brackets: past Python's recursion limit and PostgreSQL's jsonb stack

UNSTORABLE_ROWS = [
    (battle(9, conversation_a=[{"role": "user", "content": "a\u0000b"}]), "conversation_a[0].content contains a NUL"),
    (battle(9, question_id="q\u0000"), "question_id contains a NUL"),
    (battle(9, model_b="koala\u0000"), "model_b contains a NUL"),
    (battle(9, judge="arena_user\u0000"), "judge contains a NUL"),
    (battle(9, openai_moderation={"flagged\u0000": False}), "openai_moderation contains a NUL"),
    (
        battle(9, conversation_b=[{"role": "user", "content": "x\ud800y"}]),
        r"conversation_b[0].content contains a lone surrogate (\ud800)",
    ),
    (battle(9, question_id="q\udc00"), r"question_id contains a lone surrogate (\udc00)"),
    (battle(9, toxic_chat_tag={"roberta": ["\udfff"]}), "toxic_chat_tag contains a lone surrogate"),
]


def test_message_keys_other_than_role_and_content_are_dropped(tmp_path):
    # FastChat's conversation release writes num_tokens in every message; nothing else reads it,
    # and the public dataset's messages have role and content only.
    deep = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]
    conversation = [
        {"role": "user", "content": "Hi?", "num_tokens": 2, "meta": deep},
        {"role": "assistant", "content": "Hello.", "num_tokens": 2},
    ]
    run(write_jsonl(tmp_path / "tokens.jsonl", [battle(1, conversation_a=conversation)]))

    stored = Battle.objects.get()
    assert stored.conversation_a == [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]


@pytest.mark.parametrize("row, message", UNSTORABLE_ROWS)
def test_a_row_postgresql_cannot_store_is_refused_with_its_line_and_nothing_added(tmp_path, row, message):
    before = counts()
    path = _jsonl_with(tmp_path / "bad.jsonl", json.dumps(row), at=3)  # \u escapes, as JSON spells them

    with pytest.raises(CommandError) as refused:
        run(path, "--batch-size", "1")

    assert str(refused.value).startswith("bad.jsonl: line 3: ")
    assert message in str(refused.value)
    assert str(refused.value).endswith("Nothing was imported.")
    assert counts() == before


def test_deeply_nested_json_lines_are_refused_with_their_line(tmp_path):
    deep = json.dumps(battle(9))[:-1] + ', "openai_moderation": ' + "[" * DEEP + "]" * DEEP + "}"
    path = _jsonl_with(tmp_path / "deep.jsonl", deep, at=2)
    with pytest.raises(CommandError, match=r"deep.jsonl: line 2: nested more than 32 levels deep\. Nothing"):
        run(path, "--batch-size", "1")
    assert Battle.objects.count() == 0

    # Just past the bound (the row is level 1, its tags level 2), well within what the parser takes.
    nested = battle(9, openai_moderation=json.loads("[" * 32 + "]" * 32))
    path = _jsonl_with(tmp_path / "nested.jsonl", json.dumps(nested), at=2)
    with pytest.raises(CommandError, match=r"line 2: openai_moderation is nested more than 32 levels deep"):
        run(path)
    assert Battle.objects.count() == 0


def test_a_deeply_nested_json_array_is_refused_quickly_with_its_item(tmp_path):
    head = json.dumps(fastchat(0, model_a="new-model-0"))
    deep = json.dumps(fastchat(1))[:-1] + ', "extra": ' + "[" * DEEP + "]" * DEEP + "}"
    path = tmp_path / "clean_battle.json"
    path.write_text(f"[{head},\n{deep}]")
    with pytest.raises(CommandError, match=r"clean_battle.json: item 2: nested more than 32 levels deep"):
        run(path, "--batch-size", "1")
    assert counts()["Battle"] == 0

    # An array item as deep as the bound allows is read; its stored tags are checked as in JSON Lines.
    ok = fastchat(2, openai_moderation=json.loads("[" * 31 + "]" * 31))
    out = run(write_json(tmp_path / "ok.json", [ok]))
    assert "1 rows read, 1 added" in out


def test_unstorable_text_in_a_json_array_or_parquet_file_is_refused_with_its_place(tmp_path):
    rows = [fastchat(0), fastchat(1, conversation_a=[{"role": "user", "content": "a\u0000b"}])]
    with pytest.raises(CommandError, match=r"item 2: conversation_a\[0\].content contains a NUL"):
        run(write_json(tmp_path / "nul.json", rows))

    rows = [battle(0), battle(1), battle(2, judge="arena\u0000user")]
    with pytest.raises(CommandError, match=r"row 3: judge contains a NUL"):
        run(write_parquet(tmp_path / "nul.parquet", rows), "--batch-size", "1")
    assert counts()["Battle"] == 0


def test_imported_models_are_listed_by_the_lifecycle_service_which_logs_the_import(tmp_path, monkeypatch, caplog):
    calls = []
    import_listed = lifecycle.import_listed

    def spy(**kwargs):
        calls.append(kwargs["name"])
        return import_listed(**kwargs)

    monkeypatch.setattr(lifecycle, "import_listed", spy)
    with caplog.at_level("INFO", logger="providers.lifecycle"):
        run(write_jsonl(tmp_path / "arena.jsonl", [battle(0), battle(1, model_b="alpaca-13b")]))

    assert calls == ["alpaca-13b", "koala-13b", "vicuna-13b"]  # one batch, in name order
    assert "lifecycle: koala-13b import (done) by scheduler" in caplog.text
    events = LifecycleEvent.objects.filter(arena_model__name="alpaca-13b")
    assert [event.action for event in events] == [lifecycle.Entry.IMPORT]
    # The import is not a move anyone can ask the lifecycle for: a draft cannot be listed that way.
    draft = ArenaModel.objects.create(provider=Provider.objects.get(slug="imported"), name="a-draft")
    with pytest.raises(lifecycle.TransitionRefused) as refused:
        lifecycle.transition(model_id=draft.pk, action="import")
    assert refused.value.rule == "unknown_action"


@pytest.mark.parametrize(
    "name, message",
    [
        ("Anonymous", "'Anonymous' is reserved"),
        ("brisk-otter-42", "looks like a codename"),
        ("VICUNA-13B", "A public model is already named"),
    ],
)
def test_an_imported_model_name_is_checked_like_any_other_and_refuses_the_file(tmp_path, provider_a, name, message):
    make_model(provider_a, ArenaModel.Status.LISTED, name="vicuna-13b")
    before = counts()
    rows = [battle(0), battle(1), battle(2, model_b=name)]

    with pytest.raises(CommandError) as refused:
        run(write_jsonl(tmp_path / "names.jsonl", rows), "--batch-size", "1")

    assert str(refused.value).startswith(f"names.jsonl: line 3: model_b {name!r} cannot be a model's name: ")
    assert message in str(refused.value)
    assert str(refused.value).endswith("Nothing was imported.")
    assert counts() == before


def test_a_live_codename_cannot_be_an_imported_models_name(tmp_path, provider_a):
    hidden = make_model(provider_a, ArenaModel.Status.INITIAL_RATING, name="secret-model")
    with pytest.raises(CommandError, match=r"item 1: model_a .* cannot be a model's name"):
        run(write_json(tmp_path / "codename.json", [fastchat(0, model_a=hidden.codename)]))
    assert not Battle.objects.exists()


def test_a_model_labelled_anonymous_is_kept_and_never_rated(tmp_path):
    # Releases label never-listed models "anonymous", shares every opponent; a row may pair it with itself.
    rows = [battle(0), battle(1, model_a="anonymous", model_b="anonymous"), battle(2, model_b="anonymous")]
    out = run(write_jsonl(tmp_path / "release.jsonl", rows))

    assert "3 added" in out and "kept but never rated: 2 battle(s)" in out
    unnamed = Vote.objects.exclude(battle__question_id="q000000")
    assert set(unnamed.values_list("excluded_reason", flat=True)) == {"unnamed_model"}
    assert not any(vote.counts for vote in unnamed)
    assert Vote.objects.get(battle__question_id="q000000").counts
    stand_ins = ArenaModel.objects.filter(name__startswith="anonymous")
    assert stand_ins.count() == 2
    assert all(m.status == ArenaModel.Status.DRAFT and m.listed_at is None for m in stand_ins)
    assert not ArenaModel.objects.filter(name="anonymous").exists()
    # The stand-ins are reused, and a second import of the same file adds nothing.
    assert "0 added" in run(write_jsonl(tmp_path / "again.jsonl", rows))
    assert ArenaModel.objects.filter(name__startswith="anonymous").count() == 2


def test_a_fastchat_dump_in_both_modes_is_imported_once(tmp_path):
    # conv_release mode has question_id and conversations; simple mode neither, so its key is a content hash.
    conv_release = [fastchat(n, question_id=f"conv-{n}") for n in range(4)]
    simple = [{k: v for k, v in fastchat(n).items() if not k.startswith("conversation")} for n in range(6)]
    assert "4 added" in run(write_json(tmp_path / "clean_battle_conv.json", conv_release))

    out = run(write_json(tmp_path / "clean_battle.json", simple))

    assert "2 added" in out
    assert "already imported under another key (same models, winner, judge and time): 4" in out
    assert Battle.objects.count() == Vote.objects.count() == 6

"""Answer style features and prompt keys, and where battles get them."""

import pytest

from battles.models import Battle, BattleStyle
from battles.style import AnswerStyle, answer_style, first_prompt, prompt_hash

from ..conftest import make_model
from .test_import import battle as dataset_row
from .test_import import run, write_jsonl

MARKDOWN = """# Plan

Some **bold** words and __more__ of them.

- one
- two
* three
1. first
2) second

## Done
"""


def conversation(*answers, prompt="What should I do?"):
    messages = []
    for answer in answers:
        messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
    return messages


def test_it_counts_markdown_elements_of_the_assistant_turns_only():
    style = answer_style(conversation(MARKDOWN, prompt="# not counted\n- nor this **one**"))
    assert style.headers == 2
    assert style.list_items == 5
    assert style.bold == 2


def test_length_is_words_and_punctuation_summed_over_turns():
    assert answer_style(conversation("Hello, world!")).tokens == 4
    assert answer_style(conversation("Hello, world!", "Again.")).tokens == 6


def test_a_side_without_answer_text_has_no_style():
    assert answer_style([]) is None
    assert answer_style([{"role": "user", "content": "hi"}]) is None
    assert answer_style(conversation("   ")) is None
    assert answer_style([{"role": "assistant", "content": None}]) is None


def test_plain_text_has_no_markdown():
    assert answer_style(conversation("a * b = c, and 3 - 2 = 1")) == AnswerStyle(
        tokens=12, headers=0, list_items=0, bold=0
    )


def test_the_prompt_key_ignores_case_and_white_space_only():
    assert prompt_hash("What is  the capital\nof France?") == prompt_hash("  what is the capital of france?")
    assert prompt_hash("What is the capital of France?") != prompt_hash("What is the capital of Spain?")
    assert prompt_hash("  ") == ""
    assert first_prompt(conversation("answer", prompt="Hi there")) == "Hi there"


@pytest.mark.django_db
def test_a_saved_battle_gets_its_prompt_key_and_its_style_row_when_stored(provider_a):
    a, b = make_model(provider_a, name="a"), make_model(provider_a, name="b")
    battle = Battle.objects.create(
        question_id="q1",
        model_a=a,
        model_b=b,
        conversation_a=conversation(MARKDOWN),
        conversation_b=conversation("Short."),
    )
    battle.refresh_from_db()
    assert battle.prompt_hash == prompt_hash("What should I do?")
    assert not BattleStyle.objects.filter(battle=battle).exists()  # saving writes the battle's row only
    BattleStyle.store([battle], inserted=True)
    assert (battle.style.headers_a, battle.style.headers_b, battle.style.tokens_b) == (2, 0, 2)

    # An answer taken away (say, a failed turn replaced by nothing): the style row goes too.
    battle.conversation_b = conversation("")
    battle.save()
    BattleStyle.store([battle])
    assert not BattleStyle.objects.filter(battle=battle).exists()


@pytest.mark.django_db
def test_imported_battles_get_style_rows_when_both_answers_are_there(tmp_path):
    no_answer = dataset_row(2)
    no_answer["conversation_b"] = no_answer["conversation_b"][:1]
    run(
        write_jsonl(
            tmp_path / "b.jsonl", [dataset_row(0), dataset_row(1, conversation_a=conversation(MARKDOWN)), no_answer]
        )
    )
    styles = {s.battle.question_id: s for s in BattleStyle.objects.select_related("battle")}
    assert set(styles) == {"q000000", "q000001"}
    assert styles["q000001"].headers_a == 2
    assert Battle.objects.get(question_id="q000000").prompt_hash == prompt_hash("question number 0?")

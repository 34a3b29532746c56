"""The identity-probe detector (battles/identity.py `identity_probe`) on real-looking prompts."""

from __future__ import annotations

import pytest

from battles.identity import identity_probe

PROBES = [
    "Who are you?",
    "who are you",
    "who r u",
    "Tell me, who are you?",
    "hi! what is your name?",
    "What model are you?",
    "Which LLM am I talking to?",
    "what kind of AI are you?",
    "Are you GPT-4?",
    "are you claude or gemini",
    "Who created you?",
    "who trained you and when",
    "What company made you?",
    "Please identify yourself.",
    "你是谁？",
    "你是什么模型",
    "请问你是哪个模型？",
    "谁开发了你",
    "你是由哪家公司开发的？",
    "介绍一下你自己",
    "¿Quién eres?",
    "¿Qué modelo eres?",
    "¿Cómo te llamas?",
    "¿Quién te creó?",
    "Qui es-tu ?",
    "Quel modèle êtes-vous ?",
    "Comment t'appelles-tu ?",
    "Wer bist du?",
    "Welches Sprachmodell bist du?",
    "Wer hat dich entwickelt?",
    "Кто ты?",
    "Какая ты модель?",
    "Как тебя зовут?",
    "Кто тебя создал?",
    "あなたは誰ですか？",
    "あなたはどのモデルですか",
    "あなたの名前は？",
    "Quem é você?",
    "Qual modelo você é?",
    "Quem te criou?",
    "너는 누구야?",
    "무슨 모델이야?",
    "누가 너를 만들었어?",
]

ORDINARY = [
    "Who are you going to vote for in the election?",
    "Who are your favourite authors?",
    "What model are you using for the regression loss?",
    "Which model of iPhone is best for photos?",
    "Write a poem about the sea",
    "Explain name resolution in Python",
    "What is your opinion on Python vs Rust?",
    'Translate into French: "Who are you?" she asked the stranger.',
    "Rewrite: 'Who are you?' he shouted, and ran.",
    "What's the name of the largest moon of Saturn?",
    "Who made the first telescope?",
    "¿Quién ganó el mundial de 2010?",
    "¿Cuál es la capital de Perú?",
    "Comment faire une tarte aux pommes ?",
    "Wer hat den Kühlschrank erfunden?",
    "Какая погода в Москве?",
    "Кто написал «Войну и мир»?",
    "日本の首都はどこですか",
    "一个大语言模型的参数量通常是多少？",
    "谁发明了电话？",
    "Qual é o seu conselho para estudar?",
    "한국의 수도는 어디야?",
    "Create a character: a detective who asks suspects where they were at midnight.",
]


@pytest.mark.parametrize("prompt", PROBES)
def test_probes_are_detected(prompt):
    assert identity_probe([prompt]) is not None


@pytest.mark.parametrize("prompt", ORDINARY)
def test_ordinary_prompts_are_not_probes(prompt):
    assert identity_probe([prompt]) is None


def test_any_turn_can_probe():
    assert identity_probe(["Write a haiku about rain", "Nice. By the way, what model are you?"])
    assert identity_probe([]) is None


def test_case_and_white_space_do_not_hide_a_probe():
    assert identity_probe(["WHO   ARE\nYOU?"]) == "who are you"

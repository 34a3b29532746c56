"""Hostile input: huge prompts, invalid UTF-8, HTML and script in prompts and model names,
malformed import files. Each gets a clear error and changes nothing; user content is
escaped everywhere it is shown, admin included."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from battles.models import Battle
from providers.models import ArenaModel

from ..conftest import make_model
from ..factories import UserFactory
from ..leaderboard.test_plots import publish_run
from ..releases.test_release import voted_battle

pytestmark = pytest.mark.django_db
SCRIPT = '<script>alert("x")</script><img src=x onerror=alert(1)>'
ESCAPED = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"


@pytest.fixture
def pool(provider_a, provider_b):
    return [
        make_model(provider_a, ArenaModel.Status.LISTED, name="a-listed", is_demo=True),
        make_model(provider_b, ArenaModel.Status.LISTED, name="b-listed", is_demo=True),
    ]


def raw_post(client, url: str, body: bytes, content_type: str = "application/x-www-form-urlencoded"):
    return client.generic("POST", url, body, content_type=content_type)


# --- the arena form and the battle API ----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"prompt=" + b"a" * 8001, "8,001 characters long; the limit is 8,000"),
        (b"prompt=%FF%FEhello", "not valid UTF-8"),  # percent-encoded invalid bytes
        (b"prompt=\xff\xfehello", "not valid UTF-8"),  # raw invalid bytes
        (b"prompt=%00", "Null characters are not allowed"),
        (b"prompt=", "required"),
    ],
)
def test_a_bad_prompt_on_the_arena_page_gets_a_clear_error_and_no_battle(client, pool, body, message):
    response = raw_post(client, "/arena/", body)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Battle.objects.exists()


def test_a_body_over_the_upload_limit_is_refused_without_a_server_error(client, pool, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    assert raw_post(client, "/arena/", b"prompt=" + b"a" * 20_000).status_code == 400
    response = APIClient().post("/api/v1/battles/", {"prompt": "a" * 20_000}, format="json")
    assert response.status_code == 413
    assert "limited to 10000 bytes" in response.json()["detail"]
    assert not Battle.objects.exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"prompt": "\xff\xfe"}', "JSON parse error"),
        (b'{"prompt": "\\ud800 lone surrogate"}', "Surrogate characters are not allowed"),
        (json.dumps({"prompt": "a" * 8001}).encode(), "the limit is 8,000"),
        (b'{"prompt": ["not", "text"]}', "prompt"),
        (b"[" * 10_000, "nested too deeply"),
    ],
)
def test_a_bad_prompt_in_the_api_is_a_400_with_a_sentence(pool, body, message):
    response = APIClient().generic("POST", "/api/v1/battles/", body, content_type="application/json")
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert not Battle.objects.exists()


def test_a_prompt_with_html_is_stored_as_written_and_shown_escaped(client, pool):
    response = client.post("/arena/", {"prompt": SCRIPT})
    battle = Battle.objects.get()
    assert battle.conversation_a[0]["content"] == SCRIPT
    page = client.get(response["Location"]).content.decode()
    assert ESCAPED in page
    assert SCRIPT not in page


# --- model names and prompts in the site and the admin ------------------------------------------


@pytest.fixture
def hostile_model(provider_a, pool):
    model = make_model(provider_a, ArenaModel.Status.LISTED, name=SCRIPT[:100], is_demo=True, description=SCRIPT)
    publish_run([model, *pool], published_at=model.listed_at)
    voted_battle(model, pool[0], prompt=SCRIPT, answer=SCRIPT)
    return model


def test_a_hostile_model_name_is_escaped_on_the_public_pages(client, hostile_model):
    name_escaped = ESCAPED[: ESCAPED.index("&lt;img")]  # the part of the name that fits in 100 characters
    for url in ("/leaderboard/", "/leaderboard/plots/"):
        page = client.get(url).content.decode()
        assert "<script>alert" not in page, url
        if url == "/leaderboard/":
            assert name_escaped in page
    plots = client.get("/leaderboard/plots/").content.decode()
    # The plots' labels are HTML-escaped for plotly, and in the JSON block & < > are \u escapes,
    # so a name can neither end the element nor become markup in a label.
    assert "\\u0026lt;script\\u0026gt;" in plots


def test_hostile_names_and_prompts_are_escaped_in_the_admin(client, hostile_model):
    client.force_login(UserFactory(username="root@arenasite.example", staff=True, is_superuser=True))
    battle = Battle.objects.get(model_a=hostile_model)
    for url in (
        "/admin/providers/arenamodel/",
        f"/admin/providers/arenamodel/{hostile_model.pk}/change/",
        "/admin/battles/battle/",
        f"/admin/battles/battle/{battle.pk}/change/",
        "/admin/leaderboard/ratingrun/",
        "/admin/providers/lifecycleevent/",
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        page = response.content.decode()
        assert '<script>alert("x")' not in page, url
        assert "onerror=alert(1)>" not in page.replace("onerror=alert(1)&gt;", ""), url
    change_page = client.get(f"/admin/battles/battle/{battle.pk}/change/").content.decode()
    assert "&lt;script&gt;" in change_page


def test_a_hostile_model_name_through_the_api_is_stored_as_text_and_returned_as_json(client_a):
    response = client_a.post("/api/v1/models/", {"name": SCRIPT[:100], "access_kind": "open_weights"}, format="json")
    assert response.status_code == 201, response.json()
    assert response["Content-Type"] == "application/json"
    assert response.json()["name"] == SCRIPT[:100]


def test_a_model_name_that_is_not_valid_text_is_refused_by_the_api(client_a):
    response = client_a.generic(
        "POST",
        "/api/v1/models/",
        b'{"name": "bad \\ud800", "access_kind": "open_weights"}',
        content_type="application/json",
    )
    assert response.status_code == 400
    assert not ArenaModel.objects.exists()


# --- the import command --------------------------------------------------------------------------


def _fastchat_battle(model_a="m-a", model_b="m-b", prompt="hi") -> dict:
    return {
        "question_id": "q1",
        "model_a": model_a,
        "model_b": model_b,
        "winner": "model_a",
        "judge": "arena_user_1",
        "turn": 1,
        "anony": True,
        "language": "English",
        "tstamp": 1700000000.0,
        "conversation_a": [{"role": "user", "content": prompt}, {"role": "assistant", "content": "a"}],
        "conversation_b": [{"role": "user", "content": prompt}, {"role": "assistant", "content": "b"}],
    }


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("battles.jsonl", b'{"question_id": "q1", "model_a": "\xff\xfe"}\n'),
        ("battles.json", b'[{"question_id": "q1", "model_a": "\xff"}]'),
        ("battles.json", b"\xef\xbb\xbf\x00\x00garbage"),
        ("battles.jsonl", b"<html><script>alert(1)</script></html>\n"),
        ("battles.parquet", b"PAR1 not really parquet"),
        ("battles.json", b'{"not": "a list"}'),
        ("battles.json", b"[" + json.dumps(_fastchat_battle()).encode()),  # truncated
    ],
)
def test_a_malformed_or_invalid_utf8_import_file_is_refused_and_nothing_is_added(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CommandError) as refused:
        call_command("import_battles", str(path))
    assert str(refused.value)  # a sentence, not a traceback
    assert not Battle.objects.exists()
    assert not ArenaModel.objects.exists()


def test_an_imported_model_name_with_html_is_kept_as_text_and_escaped_in_admin(client, tmp_path):
    path = tmp_path / "battles.json"
    path.write_text(json.dumps([_fastchat_battle(model_a=SCRIPT[:100], prompt=SCRIPT)]), encoding="utf-8")
    call_command("import_battles", str(path))
    assert ArenaModel.objects.filter(name=SCRIPT[:100]).exists()
    client.force_login(UserFactory(username="root@arenasite.example", staff=True, is_superuser=True))
    page = client.get("/admin/providers/arenamodel/").content.decode()
    assert '<script>alert("x")' not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)" in page

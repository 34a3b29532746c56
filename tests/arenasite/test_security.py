"""Security headers, no inline scripts, CSRF on every state-changing form, login throttling."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from ..conftest import make_model
from ..factories import UserFactory
from ..leaderboard.test_plots import publish_run

pytestmark = pytest.mark.django_db
TEMPLATES = Path(settings.BASE_DIR) / "templates"
PASSWORD = "correct horse battery staple"
# A script element that is executed (not a JSON data block) and has no src: inline code.
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.IGNORECASE)
EVENT_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)


def csp(response) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}


def test_pages_send_the_security_headers(client):
    response = client.get("/")
    policy = csp(response)
    assert policy["script-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_the_api_sends_them_too(client):
    response = client.get("/api/v1/models/")
    assert csp(response)["default-src"] == ["'self'"]
    assert response["X-Frame-Options"] == "DENY"


def test_no_template_has_an_inline_script_or_event_handler():
    offenders = []
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        offenders += [f"{path.relative_to(TEMPLATES)}: {m.group(0)}" for m in INLINE_SCRIPT.finditer(text)]
        offenders += [f"{path.relative_to(TEMPLATES)}: {m.group(0)}" for m in EVENT_HANDLER.finditer(text)]
    assert not offenders


@pytest.fixture
def rendered_pages(client, provider_a, provider_b):
    a = make_model(provider_a, "listed", name="a-listed", is_demo=True)
    b = make_model(provider_b, "listed", name="b-listed", is_demo=True)
    publish_run([a, b], published_at=a.listed_at)
    battle_url = client.post("/arena/", {"prompt": "Hello?"})["Location"]
    staff = UserFactory(username="root@arenasite.example", staff=True, is_superuser=True)
    pages = {}
    for url in (
        "/",
        "/arena/",
        "/arena/side-by-side/",
        battle_url,
        "/leaderboard/",
        "/leaderboard/plots/",
        "/data/",
        "/accounts/login/",
        "/api/docs/",
    ):
        pages[url] = client.get(url)
    client.force_login(staff)
    for url in (
        "/admin/",
        "/admin/providers/arenamodel/",
        f"/admin/providers/arenamodel/{a.pk}/change/",
        "/admin/arenasite/auditevent/",
        "/accounts/2fa/",
    ):
        pages[url] = client.get(url)
    return pages


def test_rendered_pages_and_admin_run_no_inline_script(rendered_pages):
    for url, response in rendered_pages.items():
        assert response.status_code == 200, url
        page = response.content.decode()
        assert not INLINE_SCRIPT.findall(page), url
        assert "script-src 'self'" in response["Content-Security-Policy"], url


def test_the_plots_read_their_data_from_a_json_block_and_start_from_a_file(rendered_pages):
    page = rendered_pages["/leaderboard/plots/"].content.decode()
    assert '<script id="leaderboard-figures" type="application/json">' in page
    assert re.search(r'<script src="/static/leaderboard/plots\.[^"]*js" defer></script>', page)


def test_every_post_form_carries_a_csrf_token(rendered_pages):
    for url, response in rendered_pages.items():
        for form in re.findall(r"<form[^>]*method=\"post\"[^>]*>.*?</form>", response.content.decode(), re.S | re.I):
            assert "csrfmiddlewaretoken" in form, url


@pytest.mark.parametrize(
    ("url", "data"),
    [
        ("/arena/", {"prompt": "Hello?"}),
        ("/arena/side-by-side/", {"prompt": "Hello?", "model_a": "x", "model_b": "y"}),
        ("/arena/battles/0123/turns/", {"prompt": "Hello?"}),
        ("/arena/battles/0123/vote/", {"winner": "tie"}),
        ("/accounts/login/", {"login": "someone@example.com", "password": PASSWORD}),
        ("/accounts/signup/", {"email": "x@example.com", "password1": PASSWORD, "password2": PASSWORD}),
        ("/accounts/logout/", {}),
        ("/admin/releases/datasharingagreement/", {"action": "revoke", "_selected_action": "1"}),
    ],
)
def test_a_state_changing_form_without_the_csrf_token_is_refused(url, data):
    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory(username="someone@example.com", staff=True, is_superuser=True))
    assert client.post(url, data).status_code == 403


def test_the_api_with_a_session_needs_the_csrf_token_but_a_bearer_token_does_not(member_a):
    client = Client(enforce_csrf_checks=True)
    client.force_login(member_a)
    response = client.post("/api/v1/models/", {"name": "csrf"}, content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


def test_the_sixth_failed_login_for_an_account_is_refused_even_with_the_right_password(client):
    UserFactory(username="target@example.com")
    for attempt in range(5):
        response = client.post("/accounts/login/", {"login": "target@example.com", "password": f"guess-{attempt}"})
        assert response.status_code == 200
        assert not response.context["user"].is_authenticated
    response = client.post("/accounts/login/", {"login": "target@example.com", "password": PASSWORD})
    assert not response.wsgi_request.user.is_authenticated
    assert "Too many failed login attempts" in response.content.decode()


def test_the_admin_login_is_allauths_so_it_is_throttled_too(client):
    staff = UserFactory(username="root@arenasite.example", staff=True)
    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    # The admin's own form is never processed: a password posted to it is not even checked.
    response = client.post("/admin/login/", {"username": staff.username, "password": PASSWORD})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert "_auth_user_id" not in client.session


def test_a_signed_in_non_staff_user_is_refused_the_admin_login(client):
    client.force_login(UserFactory(username="voter@example.com"))
    assert client.get("/admin/login/").status_code == 403

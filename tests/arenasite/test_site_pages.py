"""Account pages, 403 and 404 are pages of the site: its layout, language, landmarks and styles."""

import re

import pytest
from django.test import override_settings

from ..factories import UserFactory

pytestmark = pytest.mark.django_db

SITE_CSS = "arenasite/site.css"


def assert_site_page(html: str) -> None:
    assert re.search(r'<html lang="en">', html)
    assert html.count("<main>") == 1
    assert 'aria-label="Site"' in html  # the site's navigation
    assert SITE_CSS in html


def assert_fields_labelled(html: str) -> None:
    """Every visible input, select and textarea has a <label for> naming it."""
    labelled = set(re.findall(r'<label for="([^"]+)"', html))
    for tag in re.findall(r"<(?:input|select|textarea)\b[^>]*>", html):
        if re.search(r'type="(hidden|submit|button)"', tag):
            continue
        field_id = re.search(r'id="([^"]+)"', tag)
        assert field_id and field_id.group(1) in labelled, tag


@pytest.mark.parametrize(
    "path", ["/accounts/login/", "/accounts/signup/", "/accounts/password/reset/", "/accounts/password/reset/done/"]
)
def test_signed_out_account_pages_use_the_site_layout(client, path):
    response = client.get(path)
    assert response.status_code == 200
    html = response.content.decode()
    assert_site_page(html)
    assert_fields_labelled(html)
    assert "Menu:" not in html  # allauth's own bare layout


def test_the_main_button_of_sign_in_is_the_sites_primary_button(client):
    html = client.get("/accounts/login/").content.decode()
    assert re.search(r'<button class="primary"\s+type="submit"\s*>\s*Sign In', html)


@pytest.mark.parametrize(
    "path", ["/accounts/email/", "/accounts/password/change/", "/accounts/2fa/", "/accounts/reauthenticate/"]
)
def test_signed_in_account_pages_use_the_site_layout_with_the_account_menu(client, path):
    client.force_login(UserFactory(username="reader@example.com", email="reader@example.com"))
    response = client.get(path)
    assert response.status_code == 200
    html = response.content.decode()
    assert_site_page(html)
    assert_fields_labelled(html)
    if path != "/accounts/reauthenticate/":
        assert 'aria-label="Account"' in html


@override_settings(DEBUG=False)
def test_not_found_is_a_page_of_the_site(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    html = response.content.decode()
    assert_site_page(html)
    assert "Page not found" in html and "/no-such-page/" in html


def test_a_signed_in_non_staff_user_following_staff_administration_gets_an_explanation(client):
    client.force_login(UserFactory(username="voter@example.com", email="voter@example.com"))
    response = client.get("/admin/", follow=True)  # to the admin's login, which refuses
    assert response.status_code == 403
    html = response.content.decode()
    assert_site_page(html)
    assert "Staff administration is for the arena's staff" in html
    assert "voter@example.com" in html and "is not a staff account" in html


def test_a_refused_form_is_a_page_of_the_site(client):
    client.handler.enforce_csrf_checks = True
    response = client.post("/accounts/login/", {"login": "a@example.com", "password": "x"})
    assert response.status_code == 403
    html = response.content.decode()
    assert re.search(r'<html lang="en">', html) and "<main>" in html
    assert "The form could not be sent" in html

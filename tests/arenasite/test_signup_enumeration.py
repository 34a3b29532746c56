"""Sign-up does not tell whether an e-mail address has an account (allauth's enumeration
prevention, which needs addresses confirmed before use: ACCOUNT_EMAIL_VERIFICATION)."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from ..factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-passphrase-9"


def sign_up(email: str):
    client = Client()
    response = client.post("/accounts/signup/", {"email": email, "password1": PASSWORD, "password2": PASSWORD})
    return client, response


def without_tokens(html: str) -> str:
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)
    return html.replace("taken@example.org", "EMAIL").replace("fresh@example.org", "EMAIL")


def test_sign_up_with_an_address_that_has_an_account_looks_the_same_as_with_a_new_one(mailoutbox):
    UserFactory(username="taken@example.org")
    new_client, new = sign_up("fresh@example.org")
    taken_client, taken = sign_up("taken@example.org")

    assert (
        (new.status_code, new["Location"])
        == (taken.status_code, taken["Location"])
        == (302, "/accounts/confirm-email/")
    )
    new_page, taken_page = new_client.get(new["Location"]), taken_client.get(taken["Location"])
    assert new_page.status_code == taken_page.status_code == 200
    assert without_tokens(new_page.content.decode()) == without_tokens(taken_page.content.decode())
    assert new_client.cookies.keys() == taken_client.cookies.keys()
    for client in (new_client, taken_client):
        assert not client.get("/").context["user"].is_authenticated

    # Each address gets one mail, read only by its owner: a link to confirm, or a note that it has an account.
    assert sorted(mail.to[0] for mail in mailoutbox) == ["fresh@example.org", "taken@example.org"]
    assert get_user_model().objects.filter(email="taken@example.org").count() == 1


def test_the_form_never_says_an_address_is_taken(client):
    UserFactory(username="taken@example.org")
    response = client.post(
        "/accounts/signup/", {"email": "Taken@Example.org", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 302
    assert b"already registered" not in client.get(response["Location"]).content


def test_signing_in_before_the_address_is_confirmed_asks_for_the_confirmation(client):
    sign_up("fresh@example.org")
    response = client.post("/accounts/login/", {"login": "fresh@example.org", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/accounts/confirm-email/"
    assert not client.get("/").context["user"].is_authenticated

"""Accounts are allauth's: email login, sign-up, and an optional TOTP second factor."""

import re

import pytest
from django.contrib.auth import get_user_model

from ..factories import UserFactory

pytestmark = pytest.mark.django_db


def test_a_person_signs_up_confirms_the_address_and_logs_in_with_an_email(client, mailoutbox):
    response = client.post(
        "/accounts/signup/",
        {"email": "new@provider.example", "password1": "a-long-passphrase-9", "password2": "a-long-passphrase-9"},
    )
    assert response.status_code == 302 and response["Location"] == "/accounts/confirm-email/"
    assert get_user_model().objects.filter(email="new@provider.example").exists()
    assert not client.get("/").context["user"].is_authenticated, "not signed in before the address is confirmed"
    link = re.search(r"https?://testserver(/accounts/confirm-email/\S+/)", mailoutbox[0].body).group(1)
    response = client.post(link)
    assert response.status_code == 302 and client.get("/").context["user"].email == "new@provider.example"
    client.logout()
    response = client.post("/accounts/login/", {"login": "new@provider.example", "password": "a-long-passphrase-9"})
    assert response.status_code == 302
    assert client.get("/").context["user"].email == "new@provider.example"


def test_a_wrong_password_is_refused(client):
    UserFactory(username="someone@example.com")
    response = client.post("/accounts/login/", {"login": "someone@example.com", "password": "wrong"})
    assert response.status_code == 200
    assert not response.context["user"].is_authenticated


def test_a_logged_in_user_can_set_up_totp(client):
    client.force_login(UserFactory(username="mfa@example.com"))
    assert client.get("/accounts/2fa/totp/activate/").status_code == 302, "MFA changes ask for the password again"
    client.post("/accounts/reauthenticate/", {"password": "correct horse battery staple"})
    response = client.get("/accounts/2fa/totp/activate/")
    assert response.status_code == 200
    assert b"otpauth" in response.content or b"svg" in response.content

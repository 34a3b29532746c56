"""A text field encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256).

Keys come from settings.ENDPOINT_KEY_ENCRYPTION_KEYS; the first encrypts and all decrypt
(MultiFernet), so a deployment rotates keys by putting a new one first and running
`manage.py rotate_encryption_keys`, which re-encrypts every such field of every app.
It lives in the project package because any app may keep a secret with it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.expressions import Expression


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(f"ENDPOINT_KEY_ENCRYPTION_KEYS holds an invalid Fernet key: {exc}") from None


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.ENDPOINT_KEY_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode() if plaintext else ""


def decrypt(ciphertext: str) -> str:
    if not ciphertext:
        return ""
    try:
        return fernet().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured(
            "An encrypted value cannot be decrypted with ENDPOINT_KEY_ENCRYPTION_KEYS; "
            "was the key rotated without keeping the old one?"
        ) from None


class EncryptedTextField(models.TextField):
    """Plaintext in Python, a Fernet token in the database."""

    def from_db_value(self, value: str | None, expression: Expression, connection: BaseDatabaseWrapper) -> str | None:
        return decrypt(value) if value is not None else value

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        return encrypt(value) if value else value

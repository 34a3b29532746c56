"""Secrets at rest and in configuration: endpoint keys rotate, tokens are stored hashed, and the
production settings pass Django's deployment check."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from arenasite.fields import _fernet
from providers.models import ApiToken, ArenaModel

from ..factories import ArenaModelFactory, UserFactory

SECRET = "sk-live-0123456789abcdef"


def stored(model) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT endpoint_api_key FROM providers_arenamodel WHERE id = %s", [model.pk])
        return cursor.fetchone()[0]


@pytest.fixture
def keys(settings):
    def use(*new_keys: str) -> None:
        settings.ENDPOINT_KEY_ENCRYPTION_KEYS = list(new_keys)
        _fernet.cache_clear()

    yield use
    _fernet.cache_clear()


@pytest.mark.django_db
def test_rotation_re_encrypts_every_key_under_the_new_key_so_the_old_one_can_go(keys):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    keys(old)
    models = [ArenaModelFactory(endpoint_api_key=f"{SECRET}-{n}") for n in range(3)]
    empty = ArenaModelFactory(endpoint_api_key="")

    keys(new, old)
    with pytest.raises(CommandError, match="3 value"):
        call_command("rotate_encryption_keys", "--check")
    call_command("rotate_encryption_keys")
    call_command("rotate_encryption_keys", "--check")  # nothing left under the old key
    call_command("rotate_encryption_keys")  # idempotent

    keys(new)  # the old key is gone
    for n, model in enumerate(models):
        assert Fernet(new.encode()).decrypt(stored(model).encode()).decode() == f"{SECRET}-{n}"
        assert ArenaModel.objects.get(pk=model.pk).endpoint_api_key == f"{SECRET}-{n}"
    assert stored(empty) == ""


@pytest.mark.django_db
def test_tokens_are_stored_as_digests_only():
    _, raw = ApiToken.objects.issue(user=UserFactory(), name="ci")
    secret = raw.split("_", 2)[2]
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM providers_apitoken")
        row = " ".join(str(value) for value in cursor.fetchone())
    assert secret not in row
    assert ApiToken.objects.verify(raw) is not None


def test_no_secret_has_a_value_in_the_repository():
    """Keys and salts come from the environment; the only fallback is derived from SECRET_KEY."""
    example = (settings.BASE_DIR / ".env.example").read_text()
    for name in ("SECRET_KEY", "ENDPOINT_KEY_ENCRYPTION_KEYS", "RELEASE_POOL_SALT", "JUDGE_SALT"):
        [line] = [line for line in example.splitlines() if line.startswith(f"{name}=")]
        assert line.split("=", 1)[1].split("#")[0].strip() == "", f"{name} has a value in .env.example"


PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "k9$Vq2!xR7@pL4#nW8^tZ1&yB6*mC3(hF5)jD0_sG-eA+uI=oK",
    "ALLOWED_HOSTS": "arena.example.org",
    "CSRF_TRUSTED_ORIGINS": "https://arena.example.org",
    "ENDPOINT_KEY_ENCRYPTION_KEYS": "Zm9yLXRlc3RzLW9ubHktMzItYnl0ZXMta2V5LXh4eHg=",
    "RELEASE_POOL_SALT": "a-salt-for-this-test",
    "JUDGE_SALT": "another-salt-for-this-test",
}


def deploy_check(**extra: str) -> subprocess.CompletedProcess:
    keep = {name: os.environ[name] for name in ("PATH", "VAR_DIR", "HOME") if name in os.environ}
    env = {**keep, **PRODUCTION, **extra, "DJANGO_SETTINGS_MODULE": "arenasite.settings"}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_production_settings_pass_the_deployment_check_with_no_warning():
    result = deploy_check()
    assert result.returncode == 0, result.stdout + result.stderr
    # The one silenced check is security.W021, HSTS preloading, which a deployment opts into.
    assert "System check identified no issues (1 silenced)." in result.stdout
    assert deploy_check(SECURE_HSTS_PRELOAD="1").stdout.strip().endswith("no issues (0 silenced).")


def test_the_deployment_check_would_catch_plain_http():
    result = deploy_check(HTTPS="0")
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr  # no HSTS, no HTTPS redirect, cookies not Secure-only

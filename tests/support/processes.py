"""Another process on the test database: the environment a child Django process needs."""

from __future__ import annotations

import os
from urllib.parse import quote

from django.conf import settings
from django.db import connection


def database_url() -> str:
    """The URL of the database this test runs on, for a child process to connect to."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    if connection.vendor == "postgresql":
        auth = f"{quote(db['USER'])}:{quote(db['PASSWORD'])}@" if db["USER"] else ""
        return f"postgres://{auth}{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    raise RuntimeError(f"no child-process set-up for {connection.vendor}")


def django_environment(**extra: str) -> dict[str, str]:
    """os.environ plus what makes a child process see this test's database, secrets and files."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "arenasite.settings",
        "SECRET_KEY": settings.SECRET_KEY,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "VAR_DIR": str(settings.VAR_DIR),
        "CELERY_BROKER_DIR": os.environ.get("CELERY_BROKER_DIR", "test-broker"),
        "ENDPOINT_KEY_ENCRYPTION_KEYS": ",".join(settings.ENDPOINT_KEY_ENCRYPTION_KEYS),
        "RELEASE_POOL_SALT": settings.RELEASE_POOL_SALT,
        "JUDGE_SALT": settings.JUDGE_SALT,
        **extra,
    }

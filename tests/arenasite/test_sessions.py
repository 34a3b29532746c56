"""Where sessions live: the database, read through the cache only when every process shares it."""

import os
import subprocess
import sys

from django.conf import settings


def session_engine(**extra: str) -> str:
    keep = {name: os.environ[name] for name in ("PATH", "VAR_DIR", "HOME") if name in os.environ}
    env = {**keep, "DEBUG": "1", "DJANGO_SETTINGS_MODULE": "arenasite.settings", **extra}
    code = "import django; django.setup(); from django.conf import settings; print(settings.SESSION_ENGINE)"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_sessions_are_read_through_a_shared_cache_and_never_one_processs_memory():
    assert session_engine() == "django.contrib.sessions.backends.db"
    assert session_engine(CACHE_URL="redis://127.0.0.1:6379/9") == "django.contrib.sessions.backends.cached_db"

"""Another process on the test database: the environment a child Django process needs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def site_process(log_path: Path, *, asgi: bool = False, **extra: str) -> Iterator[str]:
    """The site under gunicorn on a loopback port, on this test's database; yields its base URL.

    It runs the production settings module (tasks are queued, not run eagerly), so what
    a request needs of the broker is what production needs of it. `asgi`: with uvicorn's
    workers, as production serves it (the answer streams need it), else WSGI threads.
    """
    port = free_port()
    env = django_environment(DEBUG="0", ALLOWED_HOSTS="127.0.0.1", **extra)
    if asgi:
        command = [sys.executable, "-m", "gunicorn", "arenasite.asgi:application", "--bind", f"127.0.0.1:{port}"]
        command += ["--worker-class", "uvicorn_worker.UvicornWorker", "--workers", "1", "--graceful-timeout", "5"]
    else:
        command = [sys.executable, "-m", "gunicorn", "arenasite.wsgi:application", "--bind", f"127.0.0.1:{port}"]
        command += ["--worker-class", "gthread", "--threads", "4", "--workers", "1", "--graceful-timeout", "5"]
    with open(log_path, "w+") as log:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        base_url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while not _answers(base_url + "/healthz"):
                if server.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"the site did not start:\n{log.read()[-3000:]}")
                time.sleep(0.2)
            yield base_url
        finally:
            server.terminate()
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _answers(url: str) -> bool:
    """Whether the server answers at all (the health check may say 503: the broker is down)."""
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False

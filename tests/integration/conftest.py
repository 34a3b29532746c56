"""A real Celery worker process, on the configured broker and the test database."""

import os
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path
from urllib.parse import quote

import pytest
from celery.exceptions import AlwaysEagerIgnored
from django.conf import settings
from django.db import connection

from arenasite.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    if connection.vendor == "postgresql":
        auth = f"{quote(db['USER'])}:{quote(db['PASSWORD'])}@" if db["USER"] else ""
        return f"postgres://{auth}{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    raise RuntimeError(f"no worker set-up for {connection.vendor}")


@pytest.fixture
def celery_worker_process(transactional_db):
    """Start `celery worker` on a queue of its own; yield a function that sends it a task."""
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "arenasite.settings",
        "SECRET_KEY": settings.SECRET_KEY,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "VAR_DIR": str(settings.VAR_DIR),
        "CELERY_BROKER_DIR": os.environ.get("CELERY_BROKER_DIR", "test-broker"),
        "ENDPOINT_KEY_ENCRYPTION_KEYS": ",".join(settings.ENDPOINT_KEY_ENCRYPTION_KEYS),
    }
    log = open(Path(settings.VAR_DIR) / f"worker-{queue}.log", "w+")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "arenasite", "worker", "--pool=solo", "--loglevel=INFO",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-Q", queue, "-n", f"{queue}@%h"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )

    def send(task_name: str, *args):
        # send_task always goes through the broker, whatever the eager setting of this process.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AlwaysEagerIgnored)
            return celery_app.send_task(task_name, args=args, queue=queue)

    try:
        yield send
    finally:
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.seek(0)
        output = log.read()
        log.close()
        if worker.returncode not in (0, -15):
            print(output)


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False

"""A real Celery worker process, on the configured broker and the test database."""

import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path

import pytest
from celery.exceptions import AlwaysEagerIgnored
from django.conf import settings

from arenasite.celery import app as celery_app

from ..support.processes import django_environment

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def celery_worker_process(transactional_db):
    """Start `celery worker` on a queue of its own; yield a function that sends it a task."""
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = django_environment()
    log = open(Path(settings.VAR_DIR) / f"worker-{queue}.log", "w+")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "arenasite",
            "worker",
            "--pool=solo",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-Q",
            queue,
            "-n",
            f"{queue}@%h",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
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

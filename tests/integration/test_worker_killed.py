"""The Celery worker killed (SIGKILL) in the middle of a rating recomputation: the published
leaderboard is unchanged, and the next run completes and is published.

The killed worker is a real `celery worker` process on the real broker; a hook in it holds
the run after its first category is rated, so the kill lands with rows half computed.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
import warnings
from datetime import timedelta
from pathlib import Path

import pytest
from celery.exceptions import AlwaysEagerIgnored
from django.conf import settings

from arenasite import clock
from arenasite.celery import app as celery_app
from battles.models import Winner
from leaderboard import services
from leaderboard.models import ModelRating, RatingRun
from providers.models import ArenaModel

from ..conftest import make_model
from ..leaderboard.test_recompute import vote
from ..support.processes import django_environment
from .conftest import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]

# A worker whose recomputation stops for good once one category has been rated.
HANGING_WORKER = """
import os, sys, time
from pathlib import Path

import django

django.setup()

from arenasite.celery import app
from leaderboard import services

real_rate = services._rate
rated = []


def rate_then_hang(*args, **kwargs):
    result = real_rate(*args, **kwargs)
    rated.append(1)
    if len(rated) == 1:
        Path(os.environ["HALFWAY_MARKER"]).write_text("halfway")
        time.sleep(600)
    return result


services._rate = rate_then_hang
queue = sys.argv[1]
app.worker_main(["worker", "--pool=solo", "--loglevel=INFO", "--without-gossip", "--without-mingle",
                 "--without-heartbeat", "-Q", queue, "-n", f"{queue}@%h"])
"""


def send(task_name: str, queue: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AlwaysEagerIgnored)
        celery_app.send_task(task_name, queue=queue)


def leaderboard_of(run: RatingRun) -> list[tuple]:
    rows = ModelRating.objects.filter(run=run).order_by("category", "arena_model_id")
    return list(rows.values_list("category", "arena_model_id", "rating", "ci_lower", "ci_upper", "rank"))


@pytest.fixture
def rated_arena(provider_a, provider_b, settings):
    settings.ARENA_BOOTSTRAP_ROUNDS = 20
    strong = make_model(provider_a, ArenaModel.Status.LISTED, name="strong")
    middle = make_model(provider_b, ArenaModel.Status.LISTED, name="middle")
    weak = make_model(provider_a, ArenaModel.Status.LISTED, name="weak")
    vote(strong, middle, Winner.MODEL_A, n=30)
    vote(middle, weak, Winner.MODEL_A, n=30)
    vote(strong, weak, Winner.TIE, n=10)
    return services.recompute()


def test_a_worker_killed_mid_recomputation_leaves_the_leaderboard_and_the_next_run_completes(
    rated_arena, tmp_path, celery_worker_process
):
    published = rated_arena
    before = leaderboard_of(published)
    marker, queue = tmp_path / "halfway", f"hang-{uuid.uuid4().hex[:8]}"
    env = django_environment(HALFWAY_MARKER=str(marker), ARENA_BOOTSTRAP_ROUNDS="20")
    with open(Path(settings.VAR_DIR) / f"worker-{queue}.log", "w+") as log:
        worker = subprocess.Popen(
            [sys.executable, "-c", HANGING_WORKER, queue], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            send("leaderboard.tasks.recompute_ratings", queue)
            reached = wait_for(lambda: marker.exists() or worker.poll() is not None, timeout=120)
            log.seek(0)
            assert reached and marker.exists(), f"the run never got halfway:\n{log.read()[-3000:]}"
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait(30)

    killed = RatingRun.objects.exclude(pk=published.pk).get()
    assert killed.state == RatingRun.State.RUNNING and killed.published_at is None
    assert RatingRun.objects.latest_published() == published
    assert leaderboard_of(published) == before
    assert not ModelRating.objects.filter(run=killed).exists()  # rows are written only once all are computed

    # Much later (past any task's time limit) the next run, on a healthy worker, completes.
    RatingRun.objects.filter(pk=killed.pk).update(started_at=clock.now() - timedelta(hours=1))
    celery_worker_process("leaderboard.tasks.recompute_ratings")
    assert wait_for(lambda: RatingRun.objects.latest_published() != published, timeout=120), (
        "the next run was not published"
    )
    latest = RatingRun.objects.latest_published()
    assert latest.pk not in (published.pk, killed.pk)
    assert {row[:2] for row in leaderboard_of(latest)} == {row[:2] for row in before}
    killed.refresh_from_db()
    assert killed.state == RatingRun.State.FAILED and "never finished" in killed.error

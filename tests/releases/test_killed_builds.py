"""A release or share build whose process is killed (SIGKILL) halfway: nothing published,
nothing taken, and the next build succeeds. A release build that is alive but slow: never
taken for dead, whatever its age, and its files never removed.

The build runs in a real child process (`manage.py build_release` / `build_share`) on the
test database. The child is held inside its second batch of rows, after the first batch
was written and recorded, then killed with no chance to clean up, or let go on.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection

from arenasite import clock
from releases import building, files, sharing
from releases.models import DataRelease, ProviderShare, ReleasedBattle

from ..support.processes import django_environment
from .test_release import models, voted_battle  # noqa: F401 (a fixture)
from .test_shares import approve, arena  # noqa: F401 (a fixture)

ROOT = Path(__file__).resolve().parents[2]

# The child: a build whose writer stops, as if the machine hung, once half of it is done.
CHILD = """
import os, sys, time
from pathlib import Path

import django

django.setup()

from django.core.management import call_command

from releases import building, files

building.BATCH = 2
real_write = files.ReleaseWriter.write
batches = []


def write_then_hang(self, rows):
    real_write(self, rows)
    batches.append(len(rows))
    if len(batches) == 2:
        Path(os.environ["HALFWAY_MARKER"]).write_text("halfway")
        resume = Path(os.environ["RESUME_MARKER"])
        deadline = time.monotonic() + 600
        while not resume.exists() and time.monotonic() < deadline:
            time.sleep(0.05)


files.ReleaseWriter.write = write_then_hang
call_command(*sys.argv[1:])
"""


@pytest.fixture(autouse=True)
def releases_in_tmp(settings, tmp_path):
    settings.RELEASES_DIR = tmp_path / "releases"


@contextmanager
def held_halfway(settings, tmp_path, *command: str) -> Iterator[tuple[subprocess.Popen, Path]]:
    """Run a management command in a child process; yield (the child, its resume marker) once
    it is halfway through its build. The child goes on when the marker file is written, and
    is killed (SIGKILL) on the way out if it is still running."""
    marker = tmp_path / "halfway"
    resume = tmp_path / "resume"
    env = django_environment(
        RELEASES_DIR=str(settings.RELEASES_DIR), HALFWAY_MARKER=str(marker), RESUME_MARKER=str(resume)
    )
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, *command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            if child.poll() is not None:
                pytest.fail(
                    f"the build ended before halfway (exit {child.returncode}):\n{child.stdout.read().decode()}"
                )
            if time.monotonic() > deadline:
                pytest.fail("the build did not reach halfway within 120 s")
            time.sleep(0.05)
        yield child, resume
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
        child.wait(30)
        child.stdout.close()


def kill_halfway(settings, tmp_path, *command: str) -> None:
    """Run a management command in a child process and SIGKILL it halfway through its build."""
    with held_halfway(settings, tmp_path, *command) as (child, _):
        pass
    assert child.returncode == -signal.SIGKILL
    # The database ends the dead child's session, and with it the build lock, as soon as it
    # sees the connection closed; wait for that, as a later build would simply come later.
    wait_for(lambda: not build_locks_held(), "the killed build's lock to be released")


def build_locks_held() -> int:
    """How many release build locks are held on the test database (PostgreSQL; 0 elsewhere).
    pg_locks covers the whole server, where other databases may be building releases too."""
    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            [building._BUILD_LOCK],
        )
        return cursor.fetchone()[0]


def wait_for(condition, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {seconds} s for {what}")
        time.sleep(0.05)


def partials(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob(".*partial*")) if directory.exists() else []


@pytest.mark.django_db(transaction=True)
def test_a_release_build_killed_halfway_publishes_nothing_and_the_next_build_succeeds(
    models,  # noqa: F811
    settings,
    tmp_path,
    time_machine,
):
    for _ in range(6):
        voted_battle(models["listed"], models["retired"])

    kill_halfway(settings, tmp_path, "build_release", "--cutoff", clock.now().date().isoformat())

    killed = DataRelease.objects.get()
    # The battles of the first batch were recorded inside the build's transaction: gone with it.
    assert killed.state == DataRelease.State.BUILDING
    assert not ReleasedBattle.objects.exists()
    assert not building.release_path(killed).exists()
    assert partials(settings.RELEASES_DIR), "the killed build left its temporary directory"
    assert not DataRelease.objects.filter(state=DataRelease.State.PUBLISHED).exists()

    # A build started while the killed one still looks alive is refused; once it has been
    # silent past the heartbeat window, it is marked failed and the next build takes everything.
    with pytest.raises(building.ReleaseRefused, match="Another release is being built"):
        building.start_release(clock.now())
    time_machine.move_to(clock.now() + building.STALE_AFTER + timedelta(minutes=1))
    release = building.build(building.start_release(clock.now()))

    killed.refresh_from_db()
    assert killed.state == DataRelease.State.FAILED and "interrupted" in killed.error
    assert release.state == DataRelease.State.BUILT and release.battle_count == 6
    assert ReleasedBattle.objects.filter(release=release).count() == 6
    assert partials(settings.RELEASES_DIR) == []
    assert sorted(p.name for p in settings.RELEASES_DIR.iterdir()) == [release.directory_name]


@pytest.mark.django_db(transaction=True)
def test_a_release_build_alive_past_the_stale_window_is_not_taken_for_dead_and_keeps_its_files(
    models,  # noqa: F811
    settings,
    tmp_path,
    time_machine,
):
    """Its rows are in a transaction no one else sees, so its release row looks as old as when it
    started; its build lock says it is alive, and a second build leaves it and its files alone."""
    if connection.vendor != "postgresql":
        pytest.skip("the build lock is PostgreSQL's; SQLite has one writer at a time")
    for _ in range(6):
        voted_battle(models["listed"], models["retired"])

    with held_halfway(settings, tmp_path, "build_release", "--cutoff", clock.now().date().isoformat()) as (
        child,
        resume,
    ):
        running = DataRelease.objects.get()
        time_machine.move_to(clock.now() + building.STALE_AFTER + timedelta(minutes=5))

        # A second build started now: the first one is not expired, so it is refused ...
        assert building.expire_interrupted() == []
        with pytest.raises(building.ReleaseRefused, match="Another release is being built"):
            building.start_release(clock.now())
        # ... and the same release's task delivered again does not start over on it.
        with pytest.raises(building.ReleaseRefused, match="being built by another process"):
            building.build(running)
        running.refresh_from_db()
        assert running.state == DataRelease.State.BUILDING
        assert partials(settings.RELEASES_DIR), "the running build's temporary directory was removed"

        resume.write_text("go on")
        assert child.wait(120) == 0, child.stdout.read().decode()

    running.refresh_from_db()
    assert running.state == DataRelease.State.BUILT and running.battle_count == 6
    # Nothing that runs later removes a finished release's files: not the next build's
    # sweep, not a late delivery of its task.
    assert building.expire_interrupted() == []
    with pytest.raises(building.ReleaseRefused, match="not building"):
        building.build(running)
    assert building.release_path(running).is_dir()
    assert sorted(p.name for p in building.release_path(running).iterdir()) == sorted(files.FILE_NAMES)
    assert ReleasedBattle.objects.filter(release=running).count() == 6


@pytest.mark.django_db(transaction=True)
def test_a_share_build_killed_halfway_leaves_no_files_and_the_retried_build_succeeds(
    arena,  # noqa: F811
    provider_a,
    member_a,
    staff,
    settings,
    tmp_path,
):
    approve(provider_a, member_a, staff)
    for _ in range(6):
        voted_battle(arena["a_listed"], arena["b_listed"])

    kill_halfway(settings, tmp_path, "build_share", provider_a.slug)

    share = ProviderShare.objects.get()
    assert share.state == ProviderShare.State.BUILDING
    assert not sharing.share_path(share).exists()
    assert partials(settings.RELEASES_DIR), "the killed build left its temporary directory"

    # The task is delivered again (it acknowledges late) and builds the share from the start.
    share = sharing.share_build(share.pk)
    assert share.state == ProviderShare.State.READY and share.battle_count == 6
    assert partials(settings.RELEASES_DIR) == []
    assert sum(1 for _ in sharing.share_file(share, "jsonl").open()) == 6

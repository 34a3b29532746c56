"""A release or share build whose process is killed (SIGKILL) halfway: nothing published,
nothing taken, and the next build succeeds.

The build runs in a real child process (`manage.py build_release` / `build_share`) on the
test database. The child is held inside its second batch of rows, after the first batch
was written and recorded, then killed with no chance to clean up.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from arenasite import clock
from releases import building, sharing
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
        time.sleep(600)


files.ReleaseWriter.write = write_then_hang
call_command(*sys.argv[1:])
"""


@pytest.fixture(autouse=True)
def releases_in_tmp(settings, tmp_path):
    settings.RELEASES_DIR = tmp_path / "releases"


def kill_halfway(settings, tmp_path, *command: str) -> None:
    """Run a management command in a child process and SIGKILL it halfway through its build."""
    marker = tmp_path / "halfway"
    env = django_environment(RELEASES_DIR=str(settings.RELEASES_DIR), HALFWAY_MARKER=str(marker))
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
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL


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

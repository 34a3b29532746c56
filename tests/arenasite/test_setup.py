"""A fresh machine gets what was tested: the locked versions, a `.env` that makes the documented
commands work, and `make run`'s processes that start, serve the main pages and stop cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from arenasite.management.commands import seed_demo
from tests.support.processes import ROOT, free_port

LOCK = tomllib.loads((ROOT / "uv.lock").read_text())
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def locked_versions() -> dict[str, set[str]]:
    versions: dict[str, set[str]] = {}
    for package in LOCK["package"]:
        versions.setdefault(canonicalize_name(package["name"]), set()).add(package["version"])
    return versions


def test_every_installed_package_that_the_lock_names_is_at_a_locked_version():
    locked = locked_versions()
    drifted = {
        name: (dist.version, sorted(locked[name]))
        for dist in metadata.distributions()
        if (name := canonicalize_name(dist.metadata["Name"])) in locked and dist.version not in locked[name]
    }
    assert drifted == {}, "installed versions differ from uv.lock; run `make test` (uv sync --locked)"


def test_every_direct_dependency_is_installed():
    requirements = [*PROJECT["project"]["dependencies"], *PROJECT["dependency-groups"]["dev"]]
    missing = []
    for line in requirements:
        requirement = Requirement(line)
        if requirement.marker and not requirement.marker.evaluate():
            continue
        try:
            metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            missing.append(requirement.name)
    assert missing == []


def test_the_runtime_needs_none_of_the_test_tools():
    """`make run` installs the runtime alone (uv sync --no-dev): what only tests and benchmarks
    use stays out of the runtime's closure in the lock."""
    by_name = {canonicalize_name(package["name"]): package for package in LOCK["package"]}
    closure: set[str] = set()
    todo = list(by_name["arenasite"]["dependencies"])
    while todo:
        dependency = todo.pop()
        name = canonicalize_name(dependency["name"])
        package = by_name[name]
        for extra in dependency.get("extra", []):
            todo += package["optional-dependencies"][extra]
        if name not in closure:
            closure.add(name)
            todo += package.get("dependencies", [])
    assert "django" in closure and "numpy" in closure
    assert closure.isdisjoint({"playwright", "locust", "schemathesis", "datasets", "pytest", "gevent"})


# --- settings from .env ---------------------------------------------------------------------------


def manage(*args: str, env_file: Path | str, **env: str) -> subprocess.CompletedProcess:
    """manage.py in a child process whose environment has no settings but those given."""
    base = {key: value for key, value in os.environ.items() if not key.isupper() or key in ("PATH", "HOME", "LANG")}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, "ENV_FILE": str(env_file), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def dev_env_file(tmp_path) -> Path:
    """The .env that `make run` writes, made by the Makefile's own rule."""
    (tmp_path / "Makefile").write_text((ROOT / "Makefile").read_text())
    subprocess.run(["make", "--no-print-directory", "-C", str(tmp_path), ".env"], check=True, capture_output=True)
    return tmp_path / ".env"


def test_make_writes_a_development_env_file_with_a_generated_secret_key(dev_env_file):
    text = dev_env_file.read_text()
    assert re.search(r"^DEBUG=1$", text, re.M)
    key = re.search(r"^SECRET_KEY=(\S+)$", text, re.M).group(1)
    assert len(key) >= 50


def test_documented_commands_work_with_the_env_file_and_nothing_set_by_hand(dev_env_file, tmp_path):
    var = f"VAR_DIR={tmp_path / 'var'}\n"
    dev_env_file.write_text(dev_env_file.read_text() + var)
    check = manage("check", env_file=dev_env_file)
    assert check.returncode == 0, check.stderr
    help_text = manage("build_release", "--help", env_file=dev_env_file)
    assert help_text.returncode == 0, help_text.stderr
    assert "usage:" in help_text.stdout


def test_the_environment_wins_over_the_env_file_and_production_still_needs_a_real_key(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(f"DEBUG=1\nVAR_DIR={tmp_path / 'var'}\n")
    assert manage("check", env_file=env_file).returncode == 0
    refused = manage("check", env_file=env_file, DEBUG="0")
    assert refused.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in refused.stderr
    no_file = manage("check", env_file="")
    assert "SECRET_KEY must be set when DEBUG is off" in no_file.stderr


# --- make run's processes -------------------------------------------------------------------------


def descendants(pid: int) -> set[int]:
    """Every process below pid, by parent links (they may sit in sessions of their own)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def running(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0


@pytest.mark.worker
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_make_run_serves_the_main_pages_and_stops_within_15_s_of_sigterm_to_its_group(tmp_path):
    port = free_port()
    env = {
        **{key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG")},
        "ENV_FILE": "",
        "DEBUG": "1",
        "SECRET_KEY": "test-only-" + "x" * 50,
        "VAR_DIR": str(tmp_path / "var"),
        "PORT": str(port),
    }
    migrate = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env)
    assert migrate.returncode == 0
    log_path = tmp_path / "run.log"
    with open(log_path, "w+") as log:
        # A group of its own, as a service manager or a terminal gives it.
        run = subprocess.Popen(
            ["bin/run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while status_of(base + "/healthz") != 200:
                assert run.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.3)
            pages = ["/", "/arena/", "/leaderboard/", "/admin/login/", "/api/schema/", "/api/docs/", "/healthz"]
            assert {page: status_of(base + page) for page in pages} == dict.fromkeys(pages, 200)
            banner = log_path.read_text()
            for login in (seed_demo.STAFF_EMAIL, seed_demo.STAFF_PASSWORD, seed_demo.PROVIDER_EMAIL):
                assert login in banner
            processes = descendants(run.pid) | {run.pid}
            assert len(processes) >= 4  # the script, web, worker (and its pool), beat
            # The site runs over ASGI (uvicorn), as in production, not under runserver.
            commands = [(Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0") for pid in processes]
            assert any(b"uvicorn" in command and b"arenasite.asgi:application" in command for command in commands)
            assert not any(b"runserver" in command for command in commands)

            os.killpg(run.pid, signal.SIGTERM)
            started = time.monotonic()
            while any(running(pid) for pid in processes) and time.monotonic() - started < 15:
                time.sleep(0.2)
                run.poll()
            left = [pid for pid in processes if running(pid)]
            assert left == [], f"still running 15 s after SIGTERM: {left}\n{log_path.read_text()[-2000:]}"
        finally:
            for pid in descendants(run.pid) | {run.pid}:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            run.wait(10)

"""Loading admin does not load the rating engine or the anomalous-voter test's arrays: every
process that sets Django up imports every app's admin, and only a flagged voter's page needs
the engine (it imports it when it computes the effect of removing the voter)."""

import json
import subprocess
import sys

from ..support.processes import ROOT, django_environment

SETUP = """
import json, sys
import django

django.setup()  # the admin app's ready() imports every app's admin module
import battles.admin  # noqa: F401

print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("pandas", "ratings_engine", "battles"))))
"""


def test_setting_django_up_with_the_admin_loads_neither_pandas_nor_the_engine():
    done = subprocess.run(
        [sys.executable, "-c", SETUP],
        cwd=ROOT,
        env=django_environment(DJANGO_SETTINGS_MODULE="arenasite.settings_test"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.splitlines()[-1])
    assert "battles.admin" in loaded and "battles.anomaly_review" in loaded
    assert [name for name in loaded if name.split(".")[0] in ("pandas", "ratings_engine")] == []
    assert "battles.anomaly_detection" not in loaded

"""The rating pipeline's shape: the page views load none of it, and its modules stay small and
on Django's public API."""

import ast
import json
import subprocess
import sys

from ..support.processes import ROOT, django_environment

PIPELINE = ["categories", "votes", "postgres_votes", "kept_columns", "counting", "services"]

# What importing the page views asks for, in a fresh process. Django's own set-up may load
# numpy for other apps (their admin), so every import statement is watched instead: none run
# while the views load may ask for numpy or pandas.
PAGE_VIEWS_IMPORT = """
import builtins, json, sys
import django

django.setup()
asked, real = [], builtins.__import__


def watching(name, globals=None, locals=None, fromlist=(), level=0):
    if name.split(".")[0] in ("numpy", "pandas"):
        asked.append((globals or {}).get("__name__", "?"))
    return real(name, globals, locals, fromlist, level)


builtins.__import__ = watching
import leaderboard.views, leaderboard.urls  # noqa: E401

loaded = sorted(m for m in sys.modules if m.startswith(("leaderboard.", "ratings_engine")))
print(json.dumps({"asked": asked, "loaded": loaded}))
"""


def test_the_page_views_load_neither_numpy_nor_pandas_nor_the_pipeline():
    done = subprocess.run(
        [sys.executable, "-c", PAGE_VIEWS_IMPORT],
        cwd=ROOT,
        env=django_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["asked"] == []
    assert "leaderboard.categories" in found["loaded"]  # the labels
    heavy = {f"leaderboard.{name}" for name in PIPELINE} - {"leaderboard.categories"}
    assert heavy.isdisjoint(found["loaded"])
    assert not [name for name in found["loaded"] if name.startswith("ratings_engine")]


def test_the_pipeline_modules_are_short_and_use_no_django_internals():
    for name in PIPELINE:
        source = (ROOT / "leaderboard" / f"{name}.py").read_text()
        assert len(source.splitlines()) <= 600, name
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno - node.lineno + 1 <= 60, f"{name}.{node.name}"
        for internal in (".extra(", "alias_map", "get_compiler", "sql_with_params", ".query.", "SET jit"):
            assert internal not in source, f"{name}: {internal}"

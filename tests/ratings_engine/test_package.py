"""The engine stays a package any app may import: it imports neither Django nor any app of
the project, and its modules stay short."""

import ast

from ..support.processes import ROOT

ENGINE = ROOT / "ratings_engine"


def project_packages() -> set[str]:
    """The top-level packages of the repository: the apps, the project package, the engine."""
    return {path.parent.name for path in ROOT.glob("*/__init__.py")}


def imported_roots(source: str) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_the_engine_imports_neither_django_nor_any_app_of_the_project():
    forbidden = (project_packages() - {"ratings_engine"}) | {"django", "rest_framework", "celery"}
    assert {"leaderboard", "battles", "providers"} <= forbidden
    modules = sorted(ENGINE.glob("*.py"))
    assert len(modules) > 5
    for path in modules:
        taken = imported_roots(path.read_text()) & forbidden
        assert not taken, f"{path.name} imports {sorted(taken)}"


def test_the_engine_modules_are_short():
    for path in ENGINE.glob("*.py"):
        assert len(path.read_text().splitlines()) < 600, path.name

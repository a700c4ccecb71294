"""Who may import whom, read from the source: the CLI (client/) does not reach into the
worker's activities, the worker does not import the CLI, and runtime/ (shared by both)
imports neither; opsflow/ imports none of them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def imported_tops(path: Path) -> set[str]:
    """The top-level packages a module imports (absolute imports, lazy ones included)."""
    tops: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            tops.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            tops.add(node.module.split(".")[0])
    return tops


def sources(*parts: str) -> list[Path]:
    found: list[Path] = []
    for part in parts:
        path = REPO / part
        found.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return found


@pytest.mark.parametrize(
    ("where", "forbidden"),
    [
        # `opsflow worker` imports worker.py inside the command: the one way in.
        ("client", {"activities"}),
        ("worker.py", {"client"}),
        ("runtime", {"client", "activities", "workflows", "worker"}),
        ("opsflow", {"client", "activities", "workflows", "worker", "runtime", "temporalio"}),
    ],
)
def test_nothing_imports_across_its_layer(where: str, forbidden: set[str]) -> None:
    crossings = {
        str(path.relative_to(REPO)): sorted(imported_tops(path) & forbidden)
        for path in sources(where)
    }
    assert {path: tops for path, tops in crossings.items() if tops} == {}

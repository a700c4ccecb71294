"""The wheel carries every package of the source tree (a new subpackage left out of
pyproject's list would install a worker that cannot import it)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOPS = ("opsflow", "workflows", "activities", "client", "runtime")


def test_every_package_of_the_tree_is_listed_for_the_wheel() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    in_tree = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in TOPS
        for init in (ROOT / top).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert in_tree == set(setuptools["packages"])

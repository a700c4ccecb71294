"""docs/architecture.md stays true to the tree: every path it names exists, and its Layout
names every module of the code (a module added, moved or removed shows up here)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "architecture.md"
CODE = ("opsflow", "workflows", "activities", "client", "runtime")

# A Layout line naming an entry: indented two spaces per level, then a file or a folder.
ENTRY = re.compile(
    r"^(?P<indent>(?:  )*)(?P<name>[\w.-]+(?:/[\w.-]+)*(?:/|\.py|\.sh|\.toml))(?:\s|$)"
)


def layout_block(text: str) -> list[str]:
    """The lines of the fenced block under `## Layout`."""
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```", 2)[1].splitlines()[1:]


def layout_paths(lines: list[str]) -> list[str]:
    """Each entry's path, joined with the folders it is nested under. A line indented
    deeper than one level below the last entry continues that entry's description."""
    folders: list[str] = []
    paths: list[str] = []
    for line in lines:
        match = ENTRY.match(line)
        if not match or len(match["indent"]) // 2 > len(folders):
            continue
        del folders[len(match["indent"]) // 2 :]
        path = "".join(folders) + match["name"]
        paths.append(path)
        if path.endswith("/"):
            folders.append(match["name"])
    return paths


def named_paths(text: str) -> set[str]:
    """Backticked repository paths anywhere on the page: `a/b.py`, `dir/`, `a/*.sh`, with
    a leading part that is one of the repository's top-level entries."""
    tops = {entry.name for entry in ROOT.iterdir() if not entry.name.startswith(".")}
    found: set[str] = set()
    for token in re.findall(r"`([^`\s]+)`", text):
        path = token.split(":", 1)[0]
        if "/" in path and path.split("/", 1)[0] in tops:
            found.add(path)
    return found


def test_every_backticked_path_exists() -> None:
    paths = named_paths(PAGE.read_text())
    assert len(paths) > 100  # the "Where is X" table alone names more than that
    assert sorted(p for p in paths if not list(ROOT.glob(p.rstrip("/")))) == []


def test_the_where_is_table_names_code_and_tests_of_each_capability() -> None:
    section = PAGE.read_text().split("\n## Where is X\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")][2:]
    assert len(rows) > 30
    untested = [row.split("|")[1].strip() for row in rows if "`tests/" not in row]
    assert untested == []


def test_the_layout_names_every_module_and_nothing_else() -> None:
    paths = layout_paths(layout_block(PAGE.read_text()))
    assert sorted(p for p in paths if not (ROOT / p).exists()) == []
    modules = {
        str(path.relative_to(ROOT))
        for top in CODE
        for path in (ROOT / top).rglob("*")
        if path.suffix in {".py", ".sh"} and path.name != "__init__.py"
    }
    assert sorted(modules - set(paths)) == []


def test_layout_paths_nest_entries_and_skip_continuations() -> None:
    lines = [
        "opsflow/            pure domain",
        "  spec.py             the stack file",
        "  state.py            StackState (a part per concern: applied, members, commands,",
        "                      loops.py is not an entry here)",
        "workflows/          orchestration",
        "  stack/              one module per concern:",
        "    base.py             shared",
        "  common.py           retry policies",
        "worker.py           the worker",
    ]
    assert layout_paths(lines) == [
        "opsflow/",
        "opsflow/spec.py",
        "opsflow/state.py",
        "workflows/",
        "workflows/stack/",
        "workflows/stack/base.py",
        "workflows/common.py",
        "worker.py",
    ]

"""Reading a cookbooks tree from disk as the recipe inventory takes it."""

from __future__ import annotations

import os
from pathlib import Path

from opsflow.recipes import EntryKind, TreeEntry, inventory
from opsflow.spec import ConfigurationManager
from runtime.cookbook_tree import read_tree

FILE = TreeEntry(EntryKind.FILE)
DIRECTORY = TreeEntry(EntryKind.DIRECTORY)


def link(target: str) -> TreeEntry:
    return TreeEntry(EntryKind.LINK, target)


def _shell(tree: dict[str, TreeEntry]) -> set[str]:
    return inventory(tree)[ConfigurationManager.SHELL]


def test_read_tree_lists_links_as_links_and_never_walks_into_a_linked_directory(
    tmp_path: Path,
) -> None:
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "setup.sh").write_text("true\n")
    (tmp_path / "web").symlink_to("common")
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "setup.sh").symlink_to("/nowhere/at/all")
    os.mkfifo(tmp_path / "pipe")
    assert read_tree(tmp_path) == {
        "common": DIRECTORY,
        "common/setup.sh": FILE,
        "web": link("common"),
        "db": DIRECTORY,
        "db/setup.sh": link("/nowhere/at/all"),
        "pipe": TreeEntry(EntryKind.OTHER),
    }
    assert _shell(read_tree(tmp_path)) == {"common::setup"}, "web/ is not walked into"

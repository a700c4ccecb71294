"""A cookbooks tree as opsflow.recipes.inventory takes it, read from disk (links not
followed): the stack-file loader (CLI) and fetched cookbooks (worker) list trees here."""

from __future__ import annotations

import os
import posixpath
import stat
from pathlib import Path

from opsflow.recipes import EntryKind, TreeEntry


def read_tree(directory: Path) -> dict[str, TreeEntry]:
    """The listing `inventory` takes: every path under `directory`, links not followed.

    Names and links only, never contents; the CLI and the worker both list a tree here,
    so they list it the same way. Raises OSError for what cannot be read.
    """

    def fail(error: OSError) -> None:
        raise error

    tree: dict[str, TreeEntry] = {}
    for top, directories, files in os.walk(directory, onerror=fail):
        relative = Path(top).relative_to(directory)
        for name in (*directories, *files):
            path = Path(top, name)
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                entry = TreeEntry(EntryKind.LINK, os.readlink(path))
            elif stat.S_ISDIR(mode):
                entry = TreeEntry(EntryKind.DIRECTORY)
            elif stat.S_ISREG(mode):
                entry = TreeEntry(EntryKind.FILE)
            else:
                entry = TreeEntry(EntryKind.OTHER)
            tree[posixpath.join(relative.as_posix(), name).removeprefix("./")] = entry
    return tree

"""Where a `cookbook::recipe` lives in a cookbooks tree, for each configuration manager.

One naming scheme for all three managers:

    shell   cookbooks/{cookbook}/{recipe}.sh
    puppet  cookbooks/{module}/manifests/{class}.pp   (class `{module}::{class}`; the
            cookbooks directory is the modulepath)
    chef    cookbooks/{cookbook}/recipes/{recipe}.rb  (the cookbooks directory is the
            cookbook_path)

One inventory of a cookbooks tree, for the stack-file loader and for fetched cookbooks
alike (`inventory`, pure on a listing of the tree; runtime/cookbook_tree.py reads the
listing from disk). The
recipe runner ships the tree to instances with its symbolic links as links, so a recipe
is a regular file reached without following a link, or a link that leads, inside the
tree, to such a file; a link that dangles or leads out of the tree has nothing at its end
on an instance, and a linked directory is not walked into.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from opsflow.names import RECIPE, split_recipe
from opsflow.spec import ConfigurationManager

# As the kernel's own limit (MAXSYMLINKS): a cycle of links ends here.
_MAX_LINKS = 40

# (directory inside the cookbook, file suffix) per manager.
_LAYOUT: dict[ConfigurationManager, tuple[str | None, str]] = {
    ConfigurationManager.SHELL: (None, ".sh"),
    ConfigurationManager.PUPPET: ("manifests", ".pp"),
    ConfigurationManager.CHEF: ("recipes", ".rb"),
}


def recipe_file(manager: ConfigurationManager, recipe: str) -> str:
    """The file, relative to the cookbooks directory, that holds `recipe`."""
    cookbook, name = split_recipe(recipe)
    directory, suffix = _LAYOUT[manager]
    return "/".join(p for p in (cookbook, directory, name + suffix) if p)


def available_recipes(manager: ConfigurationManager, files: Iterable[str]) -> set[str]:
    """Every recipe the given relative file paths (POSIX separators) provide."""
    directory, suffix = _LAYOUT[manager]
    found: set[str] = set()
    for path in files:
        parts = path.split("/")
        if len(parts) < 2:
            continue
        cookbook, *middle, file = parts
        if middle != ([directory] if directory else []) or not file.endswith(suffix):
            continue
        candidate = f"{cookbook}::{file[: -len(suffix)]}"
        if RECIPE.fullmatch(candidate):
            found.add(candidate)
    return found


class EntryKind(StrEnum):
    FILE = "file"
    DIRECTORY = "directory"
    LINK = "link"
    OTHER = "other"  # a fifo, a socket, a device


@dataclass(frozen=True)
class TreeEntry:
    """What lstat says of one path in a cookbooks tree; `target` is a link's, as written."""

    kind: EntryKind
    target: str | None = None


def inventory(tree: Mapping[str, TreeEntry]) -> dict[ConfigurationManager, set[str]]:
    """Every recipe the tree (relative POSIX path -> entry) provides, per manager."""
    files = [path for path in tree if _leads_to_a_file(tree, path)]
    return {manager: available_recipes(manager, files) for manager in ConfigurationManager}


def _leads_to_a_file(tree: Mapping[str, TreeEntry], path: str) -> bool:
    """`path` is a regular file of the tree, or a link that resolves to one inside it."""
    remaining = path.split("/")
    resolved: list[str] = []
    links = 0
    while remaining:
        part = remaining.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not resolved:
                return False  # out of the tree
            resolved.pop()
            continue
        entry = tree.get("/".join([*resolved, part]))
        if entry is None:
            return False
        if entry.kind is EntryKind.LINK:
            links += 1
            target = entry.target or ""
            if links > _MAX_LINKS or target.startswith("/"):
                return False  # a cycle, or a path of the machine it runs on
            remaining = target.split("/") + remaining
            continue
        resolved.append(part)
    return bool(resolved) and tree["/".join(resolved)].kind is EntryKind.FILE

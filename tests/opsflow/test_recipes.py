"""One recipe naming scheme, three file layouts."""

from __future__ import annotations

import pytest

from opsflow.recipes import (
    EntryKind,
    TreeEntry,
    available_recipes,
    inventory,
    recipe_file,
)
from opsflow.spec import ConfigurationManager as M

FILE = TreeEntry(EntryKind.FILE)
DIRECTORY = TreeEntry(EntryKind.DIRECTORY)


def link(target: str) -> TreeEntry:
    return TreeEntry(EntryKind.LINK, target)


@pytest.mark.parametrize(
    ("manager", "path"),
    [
        (M.SHELL, "web/setup.sh"),
        (M.PUPPET, "web/manifests/setup.pp"),
        (M.CHEF, "web/recipes/setup.rb"),
    ],
)
def test_recipe_file_and_inventory_agree(manager: M, path: str) -> None:
    assert recipe_file(manager, "web::setup") == path
    assert available_recipes(manager, [path]) == {"web::setup"}


def test_inventory_ignores_what_is_not_a_recipe_of_that_manager() -> None:
    files = [
        "web/setup.sh",
        "web/files/setup.sh",
        "web/manifests/init.pp",
        "web/templates/x.rb",
        "web/recipes/deploy.rb",
        "we b/setup.sh",
        "README.md",
    ]
    assert available_recipes(M.SHELL, files) == {"web::setup"}
    assert available_recipes(M.PUPPET, files) == {"web::init"}
    assert available_recipes(M.CHEF, files) == {"web::deploy"}


# ---- one inventory of a tree: links as the runner ships them -----------------------------


def _shell(tree: dict[str, TreeEntry]) -> set[str]:
    return inventory(tree)[M.SHELL]


def test_a_regular_file_is_a_recipe_for_its_manager_only() -> None:
    tree = {"web": DIRECTORY, "web/setup.sh": FILE}
    assert inventory(tree) == {M.SHELL: {"web::setup"}, M.PUPPET: set(), M.CHEF: set()}


@pytest.mark.parametrize(
    "target",
    ["../common/setup.sh", "./../common/./setup.sh", "../shared/setup.sh", "../hop.sh"],
)
def test_a_link_that_leads_to_a_file_inside_the_tree_is_a_recipe(target: str) -> None:
    tree = {
        "common": DIRECTORY,
        "common/setup.sh": FILE,
        "shared": link("common"),  # a linked directory on the way is followed
        "hop.sh": link("common/setup.sh"),  # and a chain of links
        "web": DIRECTORY,
        "web/setup.sh": link(target),
    }
    assert _shell(tree) == {"common::setup", "web::setup"}


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("missing.sh", "dangles"),
        ("/etc/profile", "absolute: a path of whatever machine it runs on"),
        ("../../outside.sh", "leads out of the tree"),
        ("../common", "leads to a directory"),
        ("../fifo", "leads to a fifo"),
        ("setup.sh", "leads to itself"),
        ("../loop/a", "a cycle"),
    ],
)
def test_a_link_that_does_not_lead_to_a_file_inside_the_tree_is_not_a_recipe(
    target: str, why: str
) -> None:
    tree = {
        "common": DIRECTORY,
        "common/setup.sh": FILE,
        "fifo": TreeEntry(EntryKind.OTHER),
        "loop": DIRECTORY,
        "loop/a": link("b"),
        "loop/b": link("a"),
        "web": DIRECTORY,
        "web/setup.sh": link(target),
    }
    assert _shell(tree) == {"common::setup"}, why


def test_what_is_not_a_regular_file_is_not_a_recipe() -> None:
    tree = {"web": DIRECTORY, "web/setup.sh": TreeEntry(EntryKind.OTHER), "db/setup.sh": DIRECTORY}
    assert _shell(tree) == set()

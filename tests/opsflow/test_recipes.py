"""One recipe naming scheme, three file layouts."""

from __future__ import annotations

import pytest

from opsflow.recipes import available_recipes, recipe_file
from opsflow.spec import ConfigurationManager as M


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

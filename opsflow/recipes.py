"""Where a `cookbook::recipe` lives in a cookbooks tree, for each configuration manager.

One naming scheme for all three managers:

    shell   cookbooks/{cookbook}/{recipe}.sh
    puppet  cookbooks/{module}/manifests/{class}.pp   (class `{module}::{class}`; the
            cookbooks directory is the modulepath)
    chef    cookbooks/{cookbook}/recipes/{recipe}.rb  (the cookbooks directory is the
            cookbook_path)
"""

from __future__ import annotations

from collections.abc import Iterable

from opsflow.names import RECIPE, split_recipe
from opsflow.spec import ConfigurationManager

_LAYOUT = {
    ConfigurationManager.SHELL: "{cookbook}/{recipe}.sh",
    ConfigurationManager.PUPPET: "{cookbook}/manifests/{recipe}.pp",
    ConfigurationManager.CHEF: "{cookbook}/recipes/{recipe}.rb",
}


def recipe_file(manager: ConfigurationManager, recipe: str) -> str:
    """The file, relative to the cookbooks directory, that holds `recipe`."""
    cookbook, name = split_recipe(recipe)
    return _LAYOUT[manager].format(cookbook=cookbook, recipe=name)


def available_recipes(manager: ConfigurationManager, files: Iterable[str]) -> set[str]:
    """Every recipe the given relative file paths (POSIX separators) provide."""
    found: set[str] = set()
    for path in files:
        parts = path.split("/")
        if manager == ConfigurationManager.SHELL and len(parts) == 2 and parts[1].endswith(".sh"):
            candidate = f"{parts[0]}::{parts[1][: -len('.sh')]}"
        elif (
            manager == ConfigurationManager.PUPPET
            and len(parts) == 3
            and parts[1] == "manifests"
            and parts[2].endswith(".pp")
        ):
            candidate = f"{parts[0]}::{parts[2][: -len('.pp')]}"
        elif (
            manager == ConfigurationManager.CHEF
            and len(parts) == 3
            and parts[1] == "recipes"
            and parts[2].endswith(".rb")
        ):
            candidate = f"{parts[0]}::{parts[2][: -len('.rb')]}"
        else:
            continue
        if RECIPE.match(candidate):
            found.add(candidate)
    return found

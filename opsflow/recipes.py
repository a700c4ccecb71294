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
        if RECIPE.match(candidate):
            found.add(candidate)
    return found

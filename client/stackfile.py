"""Read a stack file into a StackSpec, or fail naming the file, the field and the problem.

Everything that needs the user's disk happens here, before any request leaves the
machine: YAML parsing, schema validation, resolving the cookbooks directory and checking
that every named recipe exists in it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from opsflow.errors import SpecError
from opsflow.recipes import available_recipes
from opsflow.spec import ConfigurationManager, StackSpec, missing_recipes, recipe_references


def load_stack_file(path: str | Path) -> StackSpec:
    file = Path(path)
    name = str(path)
    raw = _read_yaml(file, name)
    try:
        spec = StackSpec.model_validate(raw)
    except ValidationError as err:
        raise SpecError(name, [_describe(e) for e in err.errors()]) from None
    return _resolve_cookbooks(spec, file, name)


def _read_yaml(file: Path, name: str) -> dict[str, Any]:
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(name, ["file does not exist"]) from None
    except OSError as err:
        raise SpecError(name, [f"cannot read: {err.strerror}"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise SpecError(name, [f"{where}not valid YAML: {problem}"]) from None
    if not isinstance(raw, dict):
        raise SpecError(name, ["the file must be a YAML mapping with at least `name:`"])
    return raw


def _describe(error: Any) -> str:
    """One pydantic error as `field.path: problem`."""
    field = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"])
    field = field.lstrip(".")
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "missing":
        message = "required key is missing"
    elif error["type"] == "enum":
        message = f"{error.get('input')!r} is not one of {error['ctx']['expected']}"
    return f"{field}: {message}" if field else message


def _resolve_cookbooks(spec: StackSpec, file: Path, name: str) -> StackSpec:
    refs = recipe_references(spec)
    if spec.cookbooks is None:
        if refs:
            raise SpecError(
                name, [f"{refs[0][0]}: recipe {refs[0][1]!r} is named but `cookbooks` is not set"]
            )
        return spec
    if spec.cookbooks.source is None:
        # git and archive sources are fetched by the worker when the stack is applied;
        # their recipes are checked there, before any instance starts.
        return spec
    directory = (file.parent / spec.cookbooks.source).resolve()
    if not directory.is_dir():
        raise SpecError(
            name, [f"cookbooks.source: {spec.cookbooks.source!r} is not a directory ({directory})"]
        )
    problems = missing_recipes(spec, recipe_inventory(directory))
    if problems:
        raise SpecError(name, problems)
    cookbooks = spec.cookbooks.model_copy(update={"source": str(directory)})
    return spec.model_copy(update={"cookbooks": cookbooks})


def recipe_inventory(directory: Path) -> dict[ConfigurationManager, set[str]]:
    """Every `cookbook::recipe` the directory provides, for each configuration manager."""
    files = [p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()]
    return {manager: available_recipes(manager, files) for manager in ConfigurationManager}

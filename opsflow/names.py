"""Name rules shared by the spec, the CLI, the update validators and workflow ids.

Each rule has one wording: `*_problem` says what is wrong with a value (or None), for
callers that name the field themselves (pydantic's location, click's parameter);
`check_*` raises InvalidInput naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from opsflow.errors import InvalidInput

STACK_NAME = re.compile(r"^[a-z][a-z0-9-]{0,38}$")
LAYER_NAME = re.compile(r"^[a-z][a-z0-9-]{0,38}$")
# RFC 1123 host label: what OpsWorks accepted, and safe in paths, ids and shells.
HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# cookbook::recipe for all managers; no dots or slashes, so a name can never leave the
# cookbook directory nor carry shell syntax.
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
RECIPE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*::[A-Za-z0-9_][A-Za-z0-9_-]*$")


def name_problem(pattern: re.Pattern[str], what: str, value: str) -> str | None:
    """Why `value` is not a valid `what` (a stack name, a hostname...), or None."""
    if pattern.fullmatch(value):
        return None
    return f"{value!r} is not a valid {what} (must match {pattern.pattern})"


def _check(problem: str | None, field: str) -> None:
    if problem is not None:
        raise InvalidInput(f"{field}: {problem}")


def hostname_problem(value: str) -> str | None:
    return name_problem(HOSTNAME, "hostname", value)


def check_hostname(value: str, field: str = "hostname") -> str:
    """`value` if it is a hostname; InvalidInput naming `field` if not."""
    _check(hostname_problem(value), field)
    return value


def stack_workflow_id(stack: str) -> str:
    return f"stack:{stack}"


def instance_workflow_id(stack: str, hostname: str) -> str:
    return f"instance:{stack}:{hostname}"


def deployment_workflow_id(stack: str, number: int) -> str:
    return f"deployment:{stack}:{number}"


_DEPLOYMENT_ID = re.compile(
    rf"^deployment:(?P<stack>{STACK_NAME.pattern[1:-1]}):(?P<number>[1-9][0-9]*)\Z"
)


def parse_deployment_id(text: str) -> tuple[str, int]:
    """`deployment:shop:7` -> ("shop", 7): the inverse of deployment_workflow_id."""
    found = _DEPLOYMENT_ID.fullmatch(text)
    if found is None:
        raise InvalidInput(f"{text!r} is not a deployment id (deployment:STACK:N)")
    return found["stack"], int(found["number"])


def stack_of_workflow_id(workflow_id: str) -> str | None:
    """`stack:shop` -> "shop"; None for another workflow's id."""
    prefix = stack_workflow_id("")
    return workflow_id.removeprefix(prefix) if workflow_id.startswith(prefix) else None


def healing_workflow_id(stack: str, layer: str) -> str:
    return f"healing:{stack}:{layer}"


def recipes_problem(recipes: Sequence[str]) -> str | None:
    """Which of `recipes` are not `cookbook::recipe` names, or None."""
    bad = [recipe for recipe in recipes if not RECIPE.fullmatch(recipe)]
    if not bad:
        return None
    return f"{bad} are not cookbook::recipe names (expected cookbook::recipe[,...])"


def check_recipes(recipes: Sequence[str], field: str = "--recipes") -> list[str]:
    _check(recipes_problem(recipes), field)
    return list(recipes)


def split_recipe_list(text: str) -> list[str]:
    """`a::b, c::d` -> ["a::b", "c::d"], blanks dropped; not yet checked."""
    return [recipe.strip() for recipe in text.split(",") if recipe.strip()]


def split_recipe(recipe: str) -> tuple[str, str]:
    """`web::setup` -> ("web", "setup")."""
    cookbook, _, name = recipe.partition("::")
    return cookbook, name


def scaling_workflow_id(stack: str, layer: str) -> str:
    return f"scaling:{stack}:{layer}"


def schedule_id(stack: str, hostname: str) -> str:
    return f"timescale:{stack}:{hostname}"


SCHEDULE_PREFIX = "timescale:"

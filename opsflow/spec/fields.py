"""The stack file's building blocks: the strict base model, checked names and paths,
durations, and the closed sets of values (provider, manager, lifecycle events...)."""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

from opsflow import names


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


def _valid(problem: Callable[[str], str | None]) -> Callable[[str], str]:
    """A rule of opsflow.names as a pydantic validator (the loader names the field)."""

    def check(value: str) -> str:
        found = problem(value)
        if found is not None:
            raise ValueError(found)
        return value

    return check


def matches_pattern(pattern: re.Pattern[str], what: str) -> Callable[[str], str]:
    return _valid(lambda value: names.name_problem(pattern, what, value))


StackName = Annotated[str, AfterValidator(matches_pattern(names.STACK_NAME, "stack name"))]
LayerName = Annotated[str, AfterValidator(matches_pattern(names.LAYER_NAME, "layer name"))]
Hostname = Annotated[str, AfterValidator(_valid(names.hostname_problem))]
RecipeName = Annotated[str, AfterValidator(matches_pattern(names.RECIPE, "recipe name"))]


def _no_nul(value: str) -> str:
    # No file system takes a NUL in a path; os calls would raise ValueError on it.
    if "\0" in value:
        raise ValueError("must not contain a NUL byte")
    return value


# A path (or a URL naming one) that opsflow hands to the file system or to git.
PathText = Annotated[str, AfterValidator(_no_nul)]


class Provider(StrEnum):
    LOCAL = "local"
    EC2 = "ec2"
    REGISTERED = "registered"


class ConfigurationManager(StrEnum):
    SHELL = "shell"
    PUPPET = "puppet"
    CHEF = "chef"


class SetupFailure(StrEnum):
    """What becomes of an ec2 machine whose setup failed."""

    KEEP = "keep"  # kept to look at, as OpsWorks did
    TERMINATE = "terminate"


class LifecycleEvent(StrEnum):
    SETUP = "setup"
    CONFIGURE = "configure"
    DEPLOY = "deploy"
    UNDEPLOY = "undeploy"
    SHUTDOWN = "shutdown"


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def _seconds(value: Any) -> Any:
    """`5`, `5s`, `500ms`, `2m`, `1h` -> seconds; anything else is left to pydantic."""
    if isinstance(value, str):
        found = _DURATION.fullmatch(value)
        if found is None:
            raise ValueError(f"{value!r} is not a duration (like 5s, 500ms, 2m, 1h)")
        return float(found.group(1)) * _UNIT_SECONDS[found.group(2)]
    return value


# Seconds, written as a number or with a unit.
Duration = Annotated[float, BeforeValidator(_seconds)]

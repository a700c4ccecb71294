"""A CloudFormation template's parameters and the values they give: defaults or
`--parameter` values, typed and checked against their constraints as CloudFormation would;
a NoEcho value kept as a `Secret`, which no repr, message or log line shows."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opsflow.errors import SpecError


class Secret(str):
    """A NoEcho parameter's value, or a string made from one. Its repr hides it, so no
    error message or log line can show it by accident."""

    parameter: str

    def __new__(cls, value: str, parameter: str) -> Secret:
        made = super().__new__(cls, value)
        made.parameter = parameter
        return made

    def __repr__(self) -> str:
        return f"<the value of NoEcho parameter {self.parameter}>"


class Unresolved(Exception):
    """A value that cannot be resolved from what the template and the options give; the
    reader reports `reason` for the property and leaves it out."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Parameter:
    value: Any
    missing: str | None = None  # why it has no value


def read_parameters(
    declared: Mapping[str, Any], where: str, given: Mapping[str, str]
) -> dict[str, Parameter]:
    """The template's `Parameters` section with `given` (`--parameter`) over the
    defaults; SpecError for a given name the template does not declare."""
    unknown = [key for key in given if key not in declared]
    if unknown:
        names = ", ".join(map(str, declared)) or "none"
        raise SpecError(
            where,
            [
                f"--parameter {key}: the template has no parameter {key} (its parameters: {names})"
                for key in unknown
            ],
        )
    found: dict[str, Parameter] = {}
    for name, spec in declared.items():
        if not isinstance(spec, Mapping):
            raise SpecError(where, [f"Parameters.{name}: must be a mapping with a Type"])
        found[str(name)] = parameter(str(name), spec, given, where)
    return found


def parameter(
    name: str, spec: Mapping[str, Any], given: Mapping[str, str], where: str
) -> Parameter:
    type_ = str(spec.get("Type", "String"))
    no_echo = is_true(spec.get("NoEcho"))
    flag = f"--parameter {name}={'@FILE' if no_echo else 'VALUE'}"
    if name in given:
        raw: Any = given[name]
        origin = f"--parameter {name}"
        shown = "the value given" if no_echo else repr(raw)
        problem = constraint_problem(spec, raw)
        if problem is not None:
            raise SpecError(where, [f"{origin}: {shown} {problem}"])
    elif "Default" in spec:
        raw = spec["Default"]
        origin = f"Parameters.{name}.Default"
        if type_.startswith("AWS::SSM::Parameter::Value<"):
            return Parameter(
                None,
                missing=f"parameter {name} is read from SSM Parameter Store when AWS deploys; "
                f"give its value with {flag}",
            )
    else:
        kind = "NoEcho parameter" if no_echo else "parameter"
        return Parameter(
            None, missing=f"{kind} {name} has no default and no value was given ({flag})"
        )
    ssm = "AWS::SSM::Parameter::Value<"
    inner = type_[len(ssm) : -1] if type_.startswith(ssm) else type_
    listed = inner == "CommaDelimitedList" or inner.startswith("List<")
    items = as_items(raw) if listed else [as_text(raw)]
    if no_echo:
        secrets = [Secret(item, name) for item in items]
        return Parameter(secrets if listed else secrets[0])
    if inner in ("Number", "List<Number>"):
        try:
            numbers = [as_number(item) for item in items]
        except ValueError:
            raise SpecError(where, [f"{origin}: {raw!r} is not a {inner}"]) from None
        return Parameter(numbers if listed else numbers[0])
    return Parameter(items if listed else items[0])


def constraint_problem(spec: Mapping[str, Any], raw: Any) -> str | None:
    """Why a given parameter value breaks its declared constraints (AllowedValues,
    AllowedPattern, Min/MaxLength, Min/MaxValue), as CloudFormation would refuse it."""
    text = as_text(raw)
    allowed = spec.get("AllowedValues")
    if isinstance(allowed, list) and text not in map(as_text, allowed):
        return f"is not one of {', '.join(map(as_text, allowed))}"
    pattern = spec.get("AllowedPattern")
    if isinstance(pattern, str):
        try:
            if re.fullmatch(pattern, text) is None:
                return f"does not match AllowedPattern {pattern}"
        except re.error:
            pass  # a pattern Python's re does not read: left to the person
    shortest, longest = _limit(spec.get("MinLength")), _limit(spec.get("MaxLength"))
    if shortest is not None and len(text) < shortest:
        return f"is shorter than MinLength {spec['MinLength']}"
    if longest is not None and len(text) > longest:
        return f"is longer than MaxLength {spec['MaxLength']}"
    value = _limit(text) if str(spec.get("Type")) == "Number" else None
    least, most = _limit(spec.get("MinValue")), _limit(spec.get("MaxValue"))
    if value is not None and least is not None and value < least:
        return f"is below MinValue {spec['MinValue']}"
    if value is not None and most is not None and value > most:
        return f"is above MaxValue {spec['MaxValue']}"
    return None


def _limit(value: Any) -> float | None:
    try:
        return float(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


def as_text(value: Any) -> str:
    """A scalar as CloudFormation writes it in a string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Secret):
        return str.__str__(value)
    if isinstance(value, list | dict):
        raise Unresolved("a list or mapping where a string is expected")
    return str(value)


def leaves(value: Any) -> list[Any]:
    """Every scalar inside a resolved value."""
    if isinstance(value, Mapping):
        return [leaf for item in value.values() for leaf in leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in leaves(item)]
    return [value]


def made_of(parts: list[Any], result: str) -> str:
    """`result`, a secret if any of the parts it was made of is one."""
    for part in parts:
        if isinstance(part, Secret):
            return Secret(result, part.parameter)
    return result


def is_true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def as_items(raw: Any) -> list[str]:
    if isinstance(raw, list):
        return [as_text(item) for item in raw]
    text = as_text(raw)
    return [item.strip() for item in text.split(",")] if text else []


def as_number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)

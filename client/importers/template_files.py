"""Read a CloudFormation template file: JSON, or YAML with CloudFormation's short forms
(`!Ref`, `!Sub`, `!GetAtt A.B`, ...) turned into the long ones (`{"Ref": ...}`,
`{"Fn::Sub": ...}`), so opsflow.importing.cloudformation sees one shape.

The YAML loader is a yaml.SafeLoader (no Python objects), and like CloudFormation it keeps
dates as strings (`AWSTemplateFormatVersion: 2010-09-09` unquoted).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import yaml

from opsflow.errors import SpecError

# Short form -> long form. `!Ref` and `!Condition` are not functions; the rest are `Fn::X`.
SHORT_FORMS: Final = {
    "Ref": "Ref",
    "Condition": "Condition",
    **{
        name: f"Fn::{name}"
        for name in (
            "Sub",
            "Join",
            "GetAtt",
            "If",
            "Select",
            "GetAZs",
            "Equals",
            "And",
            "Or",
            "Not",
            "FindInMap",
            "Base64",
            "Split",
            "ImportValue",
            "Cidr",
            "Length",
            "ToJsonString",
            "Transform",
        )
    },
}


class TemplateLoader(yaml.SafeLoader):
    """SafeLoader that knows CloudFormation's tags and leaves timestamps as strings."""


TemplateLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _short_form(long: str) -> Any:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        value: Any
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if long == "Fn::GetAtt" and isinstance(value, str):
                value = value.split(".", 1)  # `!GetAtt A.B`: [A, B]
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            assert isinstance(node, yaml.MappingNode)
            value = loader.construct_mapping(node, deep=True)
        return {long: value}

    return construct


for _short, _long in SHORT_FORMS.items():
    TemplateLoader.add_constructor(f"!{_short}", _short_form(_long))


def read_template_file(file: Path) -> dict[str, Any]:
    """The template in `file` as a mapping (long forms only). Raises SpecError naming the
    file (and the line and column where the parser says) for a file that cannot be read,
    is neither JSON nor YAML, or is not a mapping."""
    name = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(name, ["file does not exist"]) from None
    except UnicodeDecodeError:
        raise SpecError(name, ["not a text file (UTF-8): neither JSON nor YAML"]) from None
    except OSError as err:
        raise SpecError(name, [f"cannot read: {err.strerror}"]) from None
    return parse_template(text, name)


def parse_template(text: str, name: str) -> dict[str, Any]:
    """`text` (JSON when it starts with `{`, else YAML) as a template mapping."""
    raw: Any
    if text.lstrip().startswith("{"):
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as err:
            raise SpecError(
                name, [f"line {err.lineno}, column {err.colno}: not valid JSON: {err.msg}"]
            ) from None
    else:
        try:
            raw = yaml.load(text, Loader=TemplateLoader)  # a SafeLoader subclass
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            problem = getattr(err, "problem", None) or str(err)
            raise SpecError(name, [f"{where}not valid YAML: {problem}"]) from None
    if not isinstance(raw, dict):
        raise SpecError(
            name, ["not a CloudFormation template: the file must be a JSON or YAML mapping"]
        )
    return raw

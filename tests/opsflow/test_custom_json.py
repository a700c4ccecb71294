"""A command's own custom JSON: what is taken, what is refused (naming the option)."""

from __future__ import annotations

import json

import pytest

from opsflow import custom_json
from opsflow.errors import InvalidInput


def test_an_object_is_taken_as_it_is() -> None:
    assert custom_json.parse('{"x": {"y": 1}, "z": [1, "a"]}') == {"x": {"y": 1}, "z": [1, "a"]}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[1, 2]", "--custom-json: must be a JSON object ({...}), not a list"),
        ('"text"', "--custom-json: must be a JSON object ({...}), not a str"),
        ("3", "--custom-json: must be a JSON object ({...}), not a int"),
        ("null", "--custom-json: must be a JSON object ({...}), not null"),
        ("{x: 1}", "--custom-json: not valid JSON: Expecting property name enclosed in double "
         "quotes (line 1, column 2)"),
        ("", "--custom-json: not valid JSON: Expecting value (line 1, column 1)"),
    ],
)  # fmt: skip
def test_what_is_not_a_json_object_is_refused_naming_the_option(text: str, problem: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        custom_json.parse(text)
    assert str(raised.value) == problem


def test_a_file_is_named_in_the_refusal() -> None:
    with pytest.raises(InvalidInput, match=r"^--custom-json: extra.json: not valid JSON"):
        custom_json.parse("{", source="extra.json")


def test_the_limit_is_64_kib_of_compact_json() -> None:
    # Compact: {"k":"aaa..."} is 8 bytes of syntax and the value.
    at_limit = {"k": "a" * (custom_json.MAX_BYTES - 8)}
    assert len(json.dumps(at_limit, separators=(",", ":"))) == custom_json.MAX_BYTES
    # Indentation does not count against it.
    assert custom_json.parse(json.dumps(at_limit, indent=8)) == at_limit
    over = {"k": "a" * (custom_json.MAX_BYTES - 7)}
    with pytest.raises(InvalidInput, match=r"--custom-json: 65537 bytes is over the limit"):
        custom_json.parse(json.dumps(over))
    with pytest.raises(InvalidInput, match="over the limit"):
        custom_json.check(over)


def test_a_huge_text_is_refused_before_it_is_parsed() -> None:
    with pytest.raises(InvalidInput, match="over the limit of 65536 bytes"):
        custom_json.parse(" " * (4 * custom_json.MAX_BYTES + 1) + "{}")


def test_nesting_too_deep_for_the_parser_is_refused() -> None:
    with pytest.raises(InvalidInput, match="nested too deeply"):
        custom_json.parse('{"a":' * 5000 + "1" + "}" * 5000)

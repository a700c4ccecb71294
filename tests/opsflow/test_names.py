"""The name rules every caller (spec, CLI, update validators) goes through."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsflow import names
from opsflow.errors import InvalidInput

LABEL = st.from_regex(names.HOSTNAME, fullmatch=True)


@given(LABEL)
def test_an_rfc_1123_label_is_a_hostname(hostname: str) -> None:
    assert names.hostname_problem(hostname) is None
    assert names.check_hostname(hostname, "--hostname") == hostname


@pytest.mark.parametrize("bad", ["", "Web1", "web_1", "-web", "web-", "a" * 64, "x;rm", "a.b"])
def test_anything_else_is_refused_naming_the_field(bad: str) -> None:
    problem = names.hostname_problem(bad)
    assert problem == f"{bad!r} is not a valid hostname (must match {names.HOSTNAME.pattern})"
    with pytest.raises(InvalidInput) as raised:
        names.check_hostname(bad, "--hostname")
    assert str(raised.value) == f"--hostname: {problem}"


def test_the_field_defaults_to_hostname() -> None:
    with pytest.raises(InvalidInput, match=r"^hostname: 'X' is not a valid hostname"):
        names.check_hostname("X")


RECIPE_NAME = st.from_regex(names.RECIPE, fullmatch=True)


@given(st.lists(RECIPE_NAME, max_size=5))
def test_a_recipe_list_splits_on_commas_and_keeps_the_order(recipes: list[str]) -> None:
    text = " , ".join(recipes) + ","
    assert names.split_recipe_list(text) == recipes
    assert names.recipes_problem(recipes) is None
    assert names.check_recipes(recipes) == recipes


@pytest.mark.parametrize("bad", ["deploy", "a::b::c", "a::first;touch /tmp/x", "../x::y", "a::"])
def test_a_recipe_that_is_not_cookbook_colon_colon_recipe_is_refused(bad: str) -> None:
    problem = names.recipes_problem(["web::setup", bad])
    assert problem == f"{[bad]} are not cookbook::recipe names (expected cookbook::recipe[,...])"
    with pytest.raises(InvalidInput) as raised:
        names.check_recipes(["web::setup", bad])
    assert str(raised.value) == f"--recipes: {problem}"


STACK = st.from_regex(names.STACK_NAME, fullmatch=True)


@given(STACK, st.integers(min_value=1))
def test_a_deployment_id_parses_back_to_its_stack_and_number(stack: str, number: int) -> None:
    assert names.parse_deployment_id(names.deployment_workflow_id(stack, number)) == (stack, number)


@pytest.mark.parametrize(
    "bad",
    ["", "deployment:shop", "deployment::3", "deployment:shop:x", "deployment:shop:0",
     "deployment:shop:3:4", "stack:shop", "deployment:Shop:3", "deployment:shop:3\n"],
)  # fmt: skip
def test_anything_else_is_not_a_deployment_id(bad: str) -> None:
    with pytest.raises(InvalidInput, match=r"is not a deployment id \(deployment:STACK:N\)$"):
        names.parse_deployment_id(bad)


def test_the_stack_of_a_stack_workflow_id() -> None:
    assert names.stack_of_workflow_id(names.stack_workflow_id("shop")) == "shop"
    assert names.stack_of_workflow_id(names.deployment_workflow_id("shop", 1)) is None


# `$` also matches before a final newline: each rule must refuse "name\n", which would
# otherwise reach paths, run lists and the instance's shell.
@pytest.mark.parametrize(
    "pattern",
    [names.STACK_NAME, names.LAYER_NAME, names.HOSTNAME, names.RECIPE, names.ENV_NAME],
)
def test_a_trailing_newline_is_refused_by_every_name_rule(pattern: re.Pattern[str]) -> None:
    valid = {"RECIPE": "web::setup", "ENV_NAME": "PORT"}.get(_name_of(pattern), "web1")
    assert names.name_problem(pattern, "name", valid) is None
    assert names.name_problem(pattern, "name", valid + "\n") is not None


def test_a_hostname_or_recipe_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(InvalidInput):
        names.check_hostname("web1\n")
    assert names.recipes_problem(["web::setup\n"]) is not None


def _name_of(pattern: re.Pattern[str]) -> str:
    return next(n for n in dir(names) if getattr(names, n) is pattern)

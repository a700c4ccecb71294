"""The stack file schema: what is accepted and what is refused, with the field named."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from opsflow.spec import (
    ConfigurationManager,
    LifecycleEvent,
    StackSpec,
    missing_recipes,
    recipe_references,
)


def spec(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "shop",
        "layers": [
            {
                "name": "web",
                "recipes": {"setup": ["web::setup"], "configure": ["web::configure"]},
                "instances": [{"hostname": "web1"}, {"hostname": "web2"}],
            }
        ],
    }
    base.update(overrides)
    return base


def test_defaults_match_opsworks() -> None:
    parsed = StackSpec.model_validate(spec())
    assert parsed.provider == "local"
    assert parsed.configuration_manager == "shell"
    assert parsed.layers[0].auto_healing is True
    assert parsed.declared_instances() == {"web1": ["web"], "web2": ["web"]}


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"name": "Shop"}, "not a valid stack name"),
        ({"name": "a" * 40}, "not a valid stack name"),
        ({"colour": "blue"}, "Extra inputs are not permitted"),
        ({"provider": "gcp"}, "Input should be 'local', 'ec2' or 'registered'"),
        ({"provider": "registered"}, r"instances\[0\].ssh: provider registered needs"),
        ({"provider": "ec2"}, "provider ec2 needs a region"),
        ({"configuration_manager": "ansible"}, "Input should be 'shell', 'puppet' or 'chef'"),
        ({"cookbooks": {"source": "./c", "git": "https://x/y.git"}}, "exactly one of"),
        ({"cookbooks": {}}, "exactly one of"),
        ({"cookbooks": {"source": "./c", "revision": "v1"}}, "only a `git` source"),
        ({"cookbooks": {"archive": "https://x/c.tgz", "path": "../etc"}}, "must stay inside"),
        ({"layers": [{"name": "web"}, {"name": "web"}]}, "layer name 'web' is used twice"),
        (
            {
                "layers": [
                    {"name": "a", "instances": [{"hostname": "x"}]},
                    {"name": "b", "instances": [{"hostname": "x"}]},
                ]
            },
            "hostname 'x' appears in layer 'a' and in layer 'b'",
        ),
        (
            {"layers": [{"name": "web", "instances": [{"hostname": "Web_1"}]}]},
            "not a valid hostname",
        ),
        (
            {"layers": [{"name": "web", "recipes": {"setup": ["web;rm -rf /"]}}]},
            "not a valid recipe",
        ),
        ({"layers": [{"name": "web", "recipes": {"boot": ["web::setup"]}}]}, "Extra inputs"),
    ],
)
def test_bad_specs_are_refused(overrides: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        StackSpec.model_validate(spec(**overrides))


def test_recipe_references_name_their_field() -> None:
    parsed = StackSpec.model_validate(spec())
    assert recipe_references(parsed) == [
        ("layers[0].recipes.setup[0]", "web::setup"),
        ("layers[0].recipes.configure[0]", "web::configure"),
    ]
    assert missing_recipes(parsed, {ConfigurationManager.SHELL: {"web::setup"}}) == [
        "layers[0].recipes.configure[0]: recipe 'web::configure' does not exist in the "
        "cookbooks (as a shell recipe)"
    ]


def test_a_layer_can_override_the_configuration_manager() -> None:
    parsed = StackSpec.model_validate(
        spec(
            configuration_manager="chef",
            layers=[
                {
                    "name": "web",
                    "configuration_manager": "puppet",
                    "recipes": {"setup": ["web::setup"]},
                },
                {"name": "db", "recipes": {"setup": ["db::setup"]}},
            ],
        )
    )
    assert parsed.manager_for("web") == ConfigurationManager.PUPPET
    assert parsed.manager_for("db") == ConfigurationManager.CHEF
    available = {
        ConfigurationManager.PUPPET: {"web::setup"},
        ConfigurationManager.CHEF: {"web::setup"},
    }
    assert missing_recipes(parsed, available) == [
        "layers[1].recipes.setup[0]: recipe 'db::setup' does not exist in the cookbooks "
        "(as a chef recipe)"
    ]


def test_cookbook_sources_describe_themselves() -> None:
    git = StackSpec.model_validate(spec(cookbooks={"git": "https://e/c.git", "revision": "v2"}))
    assert git.cookbooks is not None and git.cookbooks.kind == "git"
    assert git.cookbooks.describe() == "git https://e/c.git @ v2"


def test_recipes_for_event() -> None:
    layer = StackSpec.model_validate(spec()).layers[0]
    assert layer.recipes.for_event(LifecycleEvent.SETUP) == ["web::setup"]
    assert layer.recipes.for_event(LifecycleEvent.SHUTDOWN) == []

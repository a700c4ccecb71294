"""The stack file schema: what is accepted and what is refused, with the field named."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from opsflow.spec import LifecycleEvent, StackSpec, missing_recipes, recipe_references


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
    assert parsed.declared_instances() == {"web1": "web", "web2": "web"}


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"name": "Shop"}, "not a valid stack name"),
        ({"name": "a" * 40}, "not a valid stack name"),
        ({"colour": "blue"}, "Extra inputs are not permitted"),
        ({"provider": "gcp"}, "Input should be 'local', 'ec2' or 'registered'"),
        ({"provider": "ec2"}, "provider 'ec2' is not available in this version"),
        ({"configuration_manager": "puppet"}, "'puppet' is not available in this version"),
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
    assert missing_recipes(parsed, {"web::setup"}) == [
        "layers[0].recipes.configure[0]: recipe 'web::configure' does not exist in the cookbooks"
    ]


def test_recipes_for_event() -> None:
    layer = StackSpec.model_validate(spec()).layers[0]
    assert layer.recipes.for_event(LifecycleEvent.SETUP) == ["web::setup"]
    assert layer.recipes.for_event(LifecycleEvent.SHUTDOWN) == []

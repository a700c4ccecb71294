"""What `opsflow instance attributes` prints: each format of the documents a recipe sees,
secure values masked; the app of a deploy; refusals."""

from __future__ import annotations

from typing import Any

import pytest

from opsflow import recipe_view
from opsflow.errors import InvalidInput
from opsflow.messages import InstanceView, RunContext
from opsflow.secrets import MASK, SecureValue
from opsflow.spec import ConfigurationManager, StackSpec

SEALED = SecureValue(ciphertext="v2.sealed").model_dump()
SPEC = StackSpec.model_validate(
    {
        "name": "shop",
        "layers": [{"name": "web"}, {"name": "db"}],
        "apps": [
            {
                "name": "store",
                "layers": ["web"],
                "environment": {"MODE": "prod", "TOKEN": SEALED},
                "source": {"git": "https://example.com/store.git", "revision": "v2"},
            },
            {"name": "reports", "layers": ["db"]},
        ],
    }
)
WEB1 = InstanceView(hostname="web1", layers=["web"], root="/srv/m/web1")
CONFIGURATION: dict[str, Any] = {
    "opsflow": {"instance": {"hostname": "web1"}},
    "opsworks": {"instance": {"hostname": "web1"}},
    "deploy": {"store": {"environment": {"TOKEN": SEALED}, "domains": ["store"]}},
}
BAGS: dict[str, dict[str, dict[str, Any]]] = {
    "aws_opsworks_app": {
        "store": {"id": "store", "deploy": False, "environment": {"TOKEN": SEALED}},
        "reports": {"id": "reports", "deploy": True},
    },
    "aws_opsworks_instance": {"web1": {"id": "web1", "self": True}},
}


def context(manager: ConfigurationManager, bags: Any = None) -> RunContext:
    return RunContext(
        configuration=CONFIGURATION,
        recipes=[],
        configuration_manager=manager,
        cookbooks_dir=None,
        data_bags=bags,
    )


@pytest.mark.parametrize(
    ("manager", "bags", "expected"),
    [
        (ConfigurationManager.SHELL, None, "json"),
        (ConfigurationManager.PUPPET, None, "json"),
        (ConfigurationManager.CHEF, None, "chef11"),
        (ConfigurationManager.CHEF, BAGS, "chef12"),
    ],
)
def test_the_default_is_what_the_instances_manager_gets(
    manager: ConfigurationManager, bags: Any, expected: str
) -> None:
    assert recipe_view.default_format(context(manager, bags)) == expected


def test_json_is_the_attributes_document_masked() -> None:
    shown = recipe_view.document(context(ConfigurationManager.SHELL), "json", "shop")
    assert shown["deploy"]["store"]["environment"] == {"TOKEN": MASK}
    assert shown["opsflow"] == CONFIGURATION["opsflow"]
    assert "v2.sealed" not in repr(shown)


def test_chef11_is_the_node_json() -> None:
    shown = recipe_view.document(context(ConfigurationManager.CHEF), "chef11", "shop")
    assert shown["opsworks"]["instance"]["hostname"] == "web1"
    assert shown["deploy"]["store"]["environment"]["TOKEN"] == MASK


def test_chef12_is_the_data_bags_as_staged_masked() -> None:
    shown = recipe_view.document(context(ConfigurationManager.CHEF, BAGS), "chef12", "shop")
    assert shown["aws_opsworks_instance"] == BAGS["aws_opsworks_instance"]
    assert shown["aws_opsworks_app"]["store"]["environment"] == {"TOKEN": MASK}
    assert shown["aws_opsworks_app"]["reports"]["deploy"] is True  # as the stack answered


def test_chef12_on_a_chef_11_stack_is_refused_saying_why() -> None:
    with pytest.raises(InvalidInput, match=r"--format chef12: stack shop is not a Chef 12 stack"):
        recipe_view.document(context(ConfigurationManager.CHEF), "chef12", "shop")


def test_with_an_app_the_documents_are_those_of_its_deploy() -> None:
    app = recipe_view.app_on(SPEC, WEB1, "store")
    shown = recipe_view.document(
        context(ConfigurationManager.SHELL), "json", "shop", app=app, root=WEB1.root
    )
    entry = shown["deploy"]["store"]
    assert entry["domains"] == ["store"]  # the stack's keys stay
    assert entry["action"] == "deploy" and entry["revision"] == "v2"
    assert entry["deploy_to"] == "/srv/m/web1/srv/www/store"
    assert entry["current_path"] == "/srv/m/web1/srv/www/store/current"
    assert entry["release"] == recipe_view.ON_THE_INSTANCE
    assert entry["environment"] == {"MODE": "prod", "TOKEN": MASK}
    bags = recipe_view.document(context(ConfigurationManager.CHEF, BAGS), "chef12", "shop", app=app)
    assert {i: item["deploy"] for i, item in bags["aws_opsworks_app"].items()} == {
        "store": True,
        "reports": False,
    }


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("nope", "--app: stack shop has no app 'nope' (apps: store, reports)"),
        ("reports", "--app: app reports is deployed to layer(s) db, and web1 is in web"),
    ],
)
def test_an_unknown_app_or_one_not_on_the_instance_is_refused(name: str, problem: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        recipe_view.app_on(SPEC, WEB1, name)
    assert str(raised.value) == problem

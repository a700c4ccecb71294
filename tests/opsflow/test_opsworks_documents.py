"""The OpsWorks documents recipes see, against golden files and OpsWorks' own shapes:
the Chef 11 attributes (opsflow.attributes) and the Chef 12 data bags (opsflow.databags)
of the fixture stack in tests/opsflow/opsworks_fixture.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from opsflow import opsworks_ids
from opsflow.attributes import chef_node, stack_configuration
from opsflow.databags import BAGS, data_bags
from opsflow.secrets import conceal
from opsflow.spec import Provider
from opsflow.status import InstanceStatus
from tests.opsflow.opsworks_fixture import (
    APP1,
    APP2,
    DB1,
    INSTANCES,
    RDS,
    REFERENCE,
    SENT_AT,
    SPEC,
    check_golden,
)


def chef11(this: Any = APP1, event: str = "deploy", **extra: Any) -> dict[str, Any]:
    return stack_configuration(
        SPEC, INSTANCES, this, event, command_id="cmd-7", sent_at=SENT_AT, rds=RDS, **extra
    )


def chef12(this: Any = APP1, event: str = "deploy", deploying: tuple[str, ...] = ("shop",)) -> Any:
    return data_bags(
        SPEC,
        INSTANCES,
        this,
        event,
        command_id="cmd-7",
        sent_at=SENT_AT,
        rds=RDS,
        deploying=deploying,
    )


def reference(name: str) -> Any:
    path = REFERENCE / name
    if not path.exists():
        pytest.skip(f"the OpsWorks reference shapes are not here ({path})")
    return json.loads(path.read_text())


# ---- golden documents ----------------------------------------------------------------------


def test_chef11_attributes_of_a_deploy_match_the_golden_document() -> None:
    check_golden("chef11-app1-deploy.json", chef11())


def test_chef11_attributes_of_a_configure_on_the_db_instance_match_the_golden_document() -> None:
    check_golden("chef11-db1-configure.json", chef11(DB1, "configure"))


def test_chef12_data_bags_of_a_deploy_match_the_golden_document() -> None:
    check_golden("chef12-app1-deploy.json", chef12())


# ---- OpsWorks' documented shapes -----------------------------------------------------------


def test_every_documented_chef11_instance_layer_and_deploy_key_is_there() -> None:
    configure = reference("chef11/configure-attributes-example.json")["opsworks"]
    deploy = reference("chef11/deploy-attributes-example.json")["deploy"]
    ours = chef11()
    assert set(configure["instance"]) <= set(ours["opsworks"]["instance"])
    documented_member = configure["layers"]["php-app"]["instances"]["php-app2"]
    member = ours["opsworks"]["layers"]["app"]["instances"]["app1"]
    assert set(documented_member) <= set(member)
    assert set(configure["layers"]["php-app"]) <= set(ours["opsworks"]["layers"]["app"])
    (documented_app,) = deploy.values()
    assert set(documented_app) <= set(ours["deploy"]["shop"])
    assert set(documented_app["scm"]) <= set(ours["deploy"]["shop"]["scm"])
    assert set(documented_app["memcached"]) <= set(ours["deploy"]["shop"]["memcached"])
    # The top level of `opsworks`, but for the built-in Ruby/Rails cookbooks' own settings.
    builtin = {"ruby_version", "ruby_stack", "rails_stack"}
    assert set(configure) - builtin <= set(ours["opsworks"])
    assert set(reference("chef11/deploy-attributes-example.json")["opsworks"]) <= set(
        ours["opsworks"]
    )


def test_every_documented_data_bag_field_is_in_our_items() -> None:
    fields = reference("chef12/data-bag-fields.json")
    assert set(fields) == set(BAGS)
    bags = chef12()
    assert set(bags) == set(BAGS)
    for bag, documented in fields.items():
        items = bags[bag]
        if bag == "aws_opsworks_ecs_cluster":
            assert items == {}  # opsflow has no ECS clusters: the bag is empty
            continue
        assert items, f"{bag} has no items in the fixture"
        for item_id, item in items.items():
            missing = {f["field"] for f in documented} - set(item)
            assert not missing, f"{bag}/{item_id} lacks {sorted(missing)}"
            assert item["id"] == item_id


def test_data_bag_items_have_the_types_of_the_agent_s_get_json() -> None:
    """The instance item's values have the JSON types the OpsWorks agent printed."""
    example = reference("chef12/agent-get-json-example.json")["aws_opsworks_agent"]
    (documented,) = example["resources"]["instances"]
    ours = chef12()["aws_opsworks_instance"]["app1"]
    for key, value in documented.items():
        if value is not None and ours.get(key) is not None:
            assert type(ours[key]) is type(value), key


# ---- behaviour -----------------------------------------------------------------------------


def test_stopped_instances_are_absent_from_opsworks_layers_but_present_in_opsflow_layers() -> None:
    failed = APP2.model_copy(update={"hostname": "app3", "status": InstanceStatus.SETUP_FAILED})
    doc = stack_configuration(SPEC, [*INSTANCES, failed], APP1, "configure")
    assert set(doc["opsworks"]["layers"]["app"]["instances"]) == {"app1"}
    assert set(doc["opsflow"]["layers"]["app"]["instances"]) == {"app1", "app2", "app3"}
    assert doc["opsflow"]["layers"]["app"]["instances"]["app2"]["status"] == "stopped"
    # Chef 12 listed every instance, with its status.
    bags = data_bags(SPEC, [*INSTANCES, failed], APP1, "configure")
    statuses = {h: i["status"] for h, i in bags["aws_opsworks_instance"].items()}
    assert statuses == {
        "app1": "online",
        "app2": "stopped",
        "app3": "setup_failed",
        "db1": "online",
    }


def test_an_instance_in_two_layers_is_listed_under_each_and_gets_both_layers_apps() -> None:
    both = APP1.model_copy(update={"layers": ["app", "db"]})
    doc = stack_configuration(SPEC, INSTANCES, both, "configure")
    assert "app1" in doc["opsworks"]["layers"]["app"]["instances"]
    assert "app1" in doc["opsworks"]["layers"]["db"]["instances"]
    assert doc["opsworks"]["instance"]["layers"] == ["app", "db"]
    assert list(doc["deploy"]) == ["shop", "reports"]
    assert doc["shop"]["greeting"] == "hi from app"  # stack < app layer custom JSON
    item = data_bags(SPEC, INSTANCES, both, "configure")["aws_opsworks_instance"]["app1"]
    assert item["layer_ids"] == [
        opsworks_ids.layer_id("shop", "app"),
        opsworks_ids.layer_id("shop", "db"),
    ]


def test_deploy_holds_only_the_apps_of_the_instance_s_layers() -> None:
    assert list(chef11(APP1)["deploy"]) == ["shop"]
    assert list(chef11(DB1)["deploy"]) == ["reports"]


def test_custom_json_wins_in_order_stack_layer_command_even_over_opsworks_keys() -> None:
    doc = chef11(
        command_json={"shop": {"greeting": "from the command"}, "opsworks": {"agent_version": "x"}}
    )
    assert doc["shop"]["greeting"] == "from the command"
    assert doc["opsworks"]["agent_version"] == "x"
    assert chef_node(doc)["opsworks"]["agent_version"] == "x"
    assert chef_node(doc)["opsworks"]["instance"]["hostname"] == "app1"
    assert chef11()["shop"]["greeting"] == "hi from app"


def test_secure_values_stay_sealed_in_both_documents() -> None:
    shop = chef11()["deploy"]["shop"]
    assert shop["environment"]["API_KEY"] == {"secure": True, "ciphertext": "v2.fixture-api-key"}
    assert shop["ssl_certificate_key"]["ciphertext"] == "v2.fixture-ssl-key"
    assert shop["database"]["password"]["ciphertext"] == "v2.fixture-db-password"
    bags = chef12()
    assert bags["aws_opsworks_app"]["shop"]["ssl_configuration"]["private_key"]["secure"] is True
    assert bags["aws_opsworks_rds_db_instance"]["orders-db"]["db_password"]["secure"] is True
    shown = json.dumps(conceal(bags)) + json.dumps(conceal(chef11()))
    assert "v2.fixture" not in shown


def test_deploy_is_true_for_the_deployed_app_and_for_every_app_on_setup() -> None:
    assert chef12()["aws_opsworks_app"]["shop"]["deploy"] is True
    assert chef12()["aws_opsworks_app"]["reports"]["deploy"] is False  # not on app1's layers
    assert chef12(deploying=())["aws_opsworks_app"]["shop"]["deploy"] is False
    assert chef12(event="setup", deploying=())["aws_opsworks_app"]["shop"]["deploy"] is True
    assert chef12(DB1, "setup", ())["aws_opsworks_app"]["reports"]["deploy"] is True


def test_self_marks_only_the_run_s_own_instance() -> None:
    for this in (APP1, DB1):
        items = chef12(this)["aws_opsworks_instance"]
        assert [h for h, item in items.items() if item["self"]] == [this.hostname]


def test_users_are_those_of_the_instance_s_layers() -> None:
    assert set(chef12(APP1)["aws_opsworks_user"]) == {"alice"}
    users = chef12(DB1)["aws_opsworks_user"]
    assert set(users) == {"alice", "bob"}
    assert users["alice"]["administrator_privileges"] is True
    assert users["alice"]["unix_user_id"] == 2001
    assert users["bob"]["administrator_privileges"] is False


def test_sent_at_is_the_given_time_else_the_instance_s_last_change_never_the_clock() -> None:
    assert chef11()["opsworks"]["sent_at"] == int(SENT_AT.timestamp())
    doc = stack_configuration(SPEC, INSTANCES, APP1, "configure")
    assert APP1.updated_at is not None
    assert doc["opsworks"]["sent_at"] == int(APP1.updated_at.timestamp())
    assert doc == stack_configuration(SPEC, INSTANCES, APP1, "configure")


def test_a_local_machine_shows_nulls_where_ec2_facts_would_be() -> None:
    local = APP1.model_copy(
        update={
            "ec2_instance_id": None,
            "instance_type": None,
            "availability_zone": None,
            "region": None,
            "public_ip": None,
            "public_dns_name": None,
        }
    )
    instance = stack_configuration(SPEC, [], local, "setup")["opsworks"]["instance"]
    for key in ("aws_instance_id", "instance_type", "availability_zone", "region", "ip"):
        assert instance[key] is None
    assert instance["backends"] is None
    assert instance["private_ip"] == "10.0.0.1"
    assert instance["architecture"] == "x86_64"


def test_only_an_ec2_instance_is_of_the_ec2_infrastructure_class() -> None:
    """In both documents: AWS's Chef 11 cookbooks read it (`infrastructure_class?`)."""
    classes = {}
    for provider in Provider:
        this = APP1.model_copy(update={"provider": provider})
        bags = data_bags(SPEC, [], this, "configure")
        chef11 = stack_configuration(SPEC, [], this, "configure")["opsworks"]["instance"]
        classes[provider] = (
            bags["aws_opsworks_instance"][this.hostname]["infrastructure_class"],
            chef11["infrastructure_class"],
        )
    assert classes == {
        Provider.EC2: ("ec2", "ec2"),
        Provider.LOCAL: ("on-premises", "on-premises"),
        Provider.REGISTERED: ("on-premises", "on-premises"),
    }


def test_an_app_s_data_source_names_the_rds_instance_by_the_arn_of_its_item() -> None:
    """Cookbooks (opsworks_ruby) match an app's data source to its RDS item by ARN."""
    bags = data_bags(SPEC, [], APP1, "deploy", rds=RDS)
    apps = [app for app in bags["aws_opsworks_app"].values() if app["data_sources"]]
    assert apps, "the fixture has an app with a data source"
    items = {item["rds_db_instance_arn"] for item in bags["aws_opsworks_rds_db_instance"].values()}
    for app in apps:
        assert app["data_sources"][0]["arn"] in items
        assert app["data_sources"][0]["arn"] is not None

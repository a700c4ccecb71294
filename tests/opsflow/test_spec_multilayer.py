"""Instances in several layers (OpsWorks' app + memcached): the stack-level `instances:`
list, what is refused naming the field, and how each decision reads an instance's layers:
recipes, launch settings, apps, deploy and configure targets, the loops that own it."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from opsflow.app_releases import current_releases
from opsflow.healing import loop_instances
from opsflow.machines import ec2_machine
from opsflow.messages import (
    AddInstanceInput,
    AppAction,
    AppRelease,
    InstanceView,
    RegisterInstanceInput,
    RunCommandInput,
)
from opsflow.spec import ConfigurationManager, StackSpec, VolumeSpec
from opsflow.starts import recipes_for, start_command
from opsflow.status import InstanceStatus
from opsflow.targets import app_targets, command_targets, manager_of
from opsflow.wanted import scaling_of, schedules_of

ARN_A = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/a/0123456789abcdef"
ARN_B = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/b/0123456789abcdef"


def document(*instances: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "name": "shop",
        "layers": [
            {
                "name": "app",
                "recipes": {"setup": ["base::setup", "app::setup"], "deploy": ["app::deploy"]},
                "instances": [{"hostname": "web1"}],
            },
            {
                "name": "memcached",
                "recipes": {"setup": ["base::setup", "mc::setup"], "configure": ["mc::conf"]},
            },
            {"name": "db", "configuration_manager": "puppet"},
        ],
        "instances": list(instances),
        **fields,
    }


def stack(*instances: dict[str, Any], **fields: Any) -> StackSpec:
    return StackSpec.model_validate(document(*instances, **fields))


BOTH = {"hostname": "both1", "layers": ["app", "memcached"]}


def test_a_stack_level_instance_belongs_to_every_layer_it_names_in_order() -> None:
    spec = stack(BOTH, {"hostname": "mc1", "layers": ["memcached"]})
    assert spec.declared_instances() == {
        "web1": ["app"],
        "both1": ["app", "memcached"],
        "mc1": ["memcached"],
    }
    assert [d.where for d in spec.declared()] == [
        "layers[0].instances[0]",
        "instances[0]",
        "instances[1]",
    ]
    both = spec.instance_spec("both1")
    assert both is not None and both.hostname == "both1"
    assert spec.instance_spec("nope") is None


def test_a_stack_level_instance_takes_scaling_and_schedule_like_a_nested_one() -> None:
    hours = {"monday": "9-17"}
    spec = stack(
        BOTH | {"scaling": "time", "schedule": hours},
        {"hostname": "l1", "layers": ["memcached"], "scaling": "load"},
    )
    assert scaling_of(spec) == {"both1": "time", "l1": "load"}
    assert list(schedules_of(spec)) == ["both1"]


@pytest.mark.parametrize(
    ("instance", "message"),
    [
        (
            {"hostname": "x1", "layers": ["app", "nope"]},
            "instances[0].layers: unknown layer 'nope' (layers: app, memcached, db)",
        ),
        ({"hostname": "x1", "layers": ["app", "app"]}, "layer 'app' is named twice"),
        ({"hostname": "x1", "layers": []}, "an instance needs at least one layer"),
        ({"hostname": "x1"}, "instances.0.layers\n  Field required"),
        (
            {"hostname": "web1", "layers": ["memcached"]},
            "instances[0].hostname: 'web1' is also nested under layer 'app'",
        ),
        (
            {"hostname": "x1", "layers": ["app", "db"]},
            "instances[0].layers: layers 'app' (shell), 'db' (puppet) use different "
            "configuration managers",
        ),
        ({"hostname": "x1", "layers": ["app"], "size": "big"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_stack_level_instances_are_refused_naming_the_field(
    instance: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        stack(instance)
    assert message in str(refused.value)


def test_a_field_validator_error_carries_its_field_path() -> None:
    with pytest.raises(ValidationError) as refused:
        stack({"hostname": "x1", "layers": ["app", "app"]})
    [error] = refused.value.errors()
    assert error["loc"] == ("instances", 0, "layers")


def test_the_same_stack_level_hostname_twice_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"instances\[1\].hostname: 'x1' is listed twice"):
        stack({"hostname": "x1", "layers": ["app"]}, {"hostname": "x1", "layers": ["memcached"]})


def ec2_document(*instances: dict[str, Any], **layer_fields: dict[str, Any]) -> dict[str, Any]:
    found = document(
        *instances,
        provider="ec2",
        region="us-east-1",
        ec2={"ami": "ami-0abc1234def567890", "instance_type": "t3.micro"},
    )
    for layer in found["layers"]:
        layer.update(layer_fields.get(layer["name"], {}))
    return found


def test_launch_settings_merge_stack_then_first_layer_then_instance_with_every_layers_extras() -> (
    None
):
    spec = StackSpec.model_validate(
        ec2_document(
            BOTH | {"ec2": {"tags": {"role": "both"}}},
            app={
                "ec2": {"instance_type": "t3.large"},
                "volumes": [{"size": 10, "mount_point": "/data"}],
            },
            memcached={
                "ec2": {"instance_type": "t3.small"},
                "auto_assign_elastic_ip": True,
                "load_balancer": ARN_A,
                "volumes": [
                    {"size": 10, "mount_point": "/data"},
                    {"size": 5, "mount_point": "/mc"},
                ],
            },
        )
    )
    machine = ec2_machine(spec, ["app", "memcached"], "both1", token="t")
    assert machine is not None
    assert machine.layer == "app"
    assert machine.options.instance_type == "t3.large"  # the first layer's, not memcached's
    assert machine.options.tags == {"role": "both"}
    assert machine.elastic_ip is True
    assert machine.target_group == ARN_A
    assert machine.volumes == [
        VolumeSpec(size=10, mount_point="/data"),
        VolumeSpec(size=5, mount_point="/mc"),
    ]


def test_layers_that_disagree_on_a_load_balancer_or_a_volume_are_refused() -> None:
    with pytest.raises(ValidationError, match="its layers name different load balancers"):
        StackSpec.model_validate(
            ec2_document(BOTH, app={"load_balancer": ARN_A}, memcached={"load_balancer": ARN_B})
        )
    with pytest.raises(ValidationError, match="mount different volumes at /data"):
        StackSpec.model_validate(
            ec2_document(
                BOTH,
                app={"volumes": [{"size": 10, "mount_point": "/data"}]},
                memcached={"volumes": [{"size": 20, "mount_point": "/data"}]},
            )
        )


def test_a_stack_level_instance_ec2_is_refused_off_ec2() -> None:
    with pytest.raises(ValidationError, match=r"instances\.both1\.ec2: only for provider ec2"):
        stack(BOTH | {"ec2": {"instance_type": "t3.large"}})


def test_each_event_runs_every_layers_recipes_in_layer_order_each_once() -> None:
    spec = stack(BOTH)
    assert recipes_for(spec, ["app", "memcached"], "setup") == [
        "base::setup",
        "app::setup",
        "mc::setup",
    ]
    assert recipes_for(spec, ["memcached", "app"], "setup") == [
        "base::setup",
        "mc::setup",
        "app::setup",
    ]
    assert recipes_for(spec, ["app", "memcached"], "configure") == ["mc::conf"]


def test_a_start_carries_every_layer_and_every_apps_release_once() -> None:
    spec = stack(BOTH, apps=[{"name": "shop", "layers": ["app", "memcached"]}])
    release = AppRelease(app="shop", action=AppAction.DEPLOY, release="r1")
    releases = current_releases(spec, {"shop": release}, {}, ["app", "memcached"])
    assert [r.app for r in releases] == ["shop"]
    assert current_releases(spec, {"shop": release}, {}, ["db"]) == []
    command = start_command("s1", spec, ["app", "memcached"], "both1", releases, None)
    assert command.layers == ["app", "memcached"]


def view(
    hostname: str, *layers: str, status: InstanceStatus = InstanceStatus.ONLINE
) -> InstanceView:
    return InstanceView(hostname=hostname, layers=list(layers), status=status)


def test_deploy_and_configure_target_an_instance_in_two_layers_once() -> None:
    spec = stack(BOTH, apps=[{"name": "shop", "layers": ["app", "memcached"]}])
    views = {"both1": view("both1", "app", "memcached"), "web1": view("web1", "app")}
    assert app_targets(spec, views, "shop") == ["both1", "web1"]
    assert command_targets(spec, views, RunCommandInput(command="configure")) == ["both1", "web1"]
    memcached = RunCommandInput(command="configure", layer="memcached")
    assert command_targets(spec, views, memcached) == ["both1"]
    assert manager_of(spec, views["both1"]) == ConfigurationManager.SHELL


def test_only_the_first_layers_loops_own_an_instance_and_healing_needs_every_layer() -> None:
    views = [
        view("both1", "app", "memcached"),
        view("mc-first", "memcached", "app"),
        view("web1", "app"),
    ]
    spec = stack()
    assert [v.hostname for v in loop_instances(spec, views, "app", healing=True)] == [
        "both1",
        "web1",
    ]
    assert [v.hostname for v in loop_instances(spec, views, "memcached", healing=True)] == [
        "mc-first"
    ]
    layers = [document()["layers"][0], {"name": "memcached", "auto_healing": False}]
    no_heal = StackSpec.model_validate(document() | {"layers": layers})
    healed = loop_instances(no_heal, views, "app", healing=True)
    assert [v.hostname for v in healed] == ["web1"]  # memcached does not auto-heal
    # Load-based scaling of the first layer still counts it.
    counted = loop_instances(no_heal, views, "app", healing=False)
    assert [v.hostname for v in counted] == ["both1", "web1"]


@pytest.mark.parametrize("kind", [AddInstanceInput, RegisterInstanceInput])
def test_add_and_register_inputs_take_layers_and_still_the_old_single_layer(
    kind: type[AddInstanceInput] | type[RegisterInstanceInput],
) -> None:
    host = {"host": "10.0.0.9", "key_file": "/k"} if kind is RegisterInstanceInput else {}
    old = kind.model_validate({"layer": "app", "hostname": "h1"} | ({"host": host} if host else {}))
    assert old.layers == ["app"]  # what a running stack's history holds replays the same
    new = kind.model_validate(
        {"layers": ["app", "memcached"], "hostname": "h1"} | ({"host": host} if host else {})
    )
    assert new.layer == "app"  # what a worker from before `layers` reads
    assert kind.model_validate(new.model_dump()).layers == ["app", "memcached"]


def test_layers_problem_names_why_an_added_instance_cannot_join() -> None:
    spec = stack()
    assert spec.layers_problem(["app", "memcached"]) is None
    assert spec.layers_problem([]) == "an instance needs at least one layer"
    assert spec.layers_problem(["app", "app"]) == "layer 'app' is named twice"
    problem = spec.layers_problem(["app", "db"])
    assert problem is not None and "different configuration managers" in problem

"""Which loops and schedules a stack file wants, and each instance's scaling kind."""

from __future__ import annotations

from typing import Any

from opsflow.messages import InstanceView
from opsflow.spec import Scaling, StackSpec
from opsflow.status import InstanceStatus
from opsflow.wanted import (
    healing_wanted,
    load_scaling_wanted,
    scaling_after_apply,
    scaling_of,
    schedules_of,
)

HOURS = {"monday": "9-17"}


def spec(region: str | None = None, **web: Any) -> StackSpec:
    layers: list[dict[str, Any]] = [
        {
            "name": "web",
            "instances": [
                {"hostname": "w1"},
                {"hostname": "w2", "scaling": "load"},
                {"hostname": "t1", "scaling": "time", "schedule": HOURS},
            ],
            **web,
        },
        {"name": "db", "auto_healing": False, "instances": [{"hostname": "d1"}]},
    ]
    document: dict[str, Any] = {"name": "shop", "layers": layers}
    if region is not None:
        document |= {
            "provider": "ec2",
            "region": region,
            "ec2": {"ami": "ami-0abc1234def567890", "instance_type": "t3.micro"},
        }
    return StackSpec.model_validate(document)


def test_healing_runs_on_layers_with_auto_healing_and_carries_the_region() -> None:
    wanted = healing_wanted(spec(region="eu-west-1"))
    assert list(wanted) == ["web"]
    assert wanted["web"].region == "eu-west-1"
    assert healing_wanted(spec())["web"].region is None
    assert healing_wanted(spec(auto_healing=False)) == {}


def test_load_scaling_runs_only_where_it_is_enabled() -> None:
    assert load_scaling_wanted(spec()) == {}
    assert list(load_scaling_wanted(spec(load_based_scaling={}))) == ["web"]
    assert load_scaling_wanted(spec(load_based_scaling={"enabled": False})) == {}


def test_always_on_instances_have_no_scaling_kind_and_only_timed_ones_a_schedule() -> None:
    assert scaling_of(spec()) == {"w2": Scaling.LOAD, "t1": Scaling.TIME}
    schedules = schedules_of(spec())
    assert list(schedules) == ["t1"]


def test_apply_keeps_the_load_instances_scaling_added_but_not_ones_the_file_dropped() -> None:
    def view(hostname: str, from_file: bool) -> InstanceView:
        return InstanceView(
            hostname=hostname, layers=["web"], status=InstanceStatus.ONLINE, from_file=from_file
        )

    instances = {"added": view("added", False), "gone": view("gone", True), "w1": view("w1", True)}
    before = {"added": Scaling.LOAD, "gone": Scaling.LOAD}
    after = scaling_after_apply(spec(), instances, before)
    assert after == scaling_of(spec()) | {"added": Scaling.LOAD}

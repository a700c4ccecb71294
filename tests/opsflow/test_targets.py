"""Which instances a command runs on, and the checks of execute_recipes' recipes."""

from __future__ import annotations

import pytest

from opsflow.errors import InvalidInput, NotFound
from opsflow.messages import InstanceView, ResolvedCookbooks, RunCommandInput
from opsflow.spec import ConfigurationManager, StackSpec
from opsflow.status import InstanceStatus
from opsflow.targets import (
    app_targets,
    check_recipes_to_execute,
    command_targets,
    instance_of,
    inventory,
    manager_of,
)

SPEC = StackSpec.model_validate(
    {
        "name": "shop",
        "layers": [
            {"name": "web", "instances": [{"hostname": "w1"}, {"hostname": "w2"}]},
            {
                "name": "db",
                "configuration_manager": "puppet",
                "instances": [{"hostname": "d1"}],
            },
        ],
        "apps": [{"name": "hello", "layers": ["web"]}, {"name": "dbapp", "layers": ["db"]}],
    }
)


def view(hostname: str, layer: str, status: InstanceStatus = InstanceStatus.ONLINE) -> InstanceView:
    return InstanceView(hostname=hostname, layers=[layer], status=status)


INSTANCES = {
    "w2": view("w2", "web"),
    "w1": view("w1", "web"),
    "d1": view("d1", "db", InstanceStatus.STOPPED),
}


def run(**fields: str) -> RunCommandInput:
    return RunCommandInput(command="configure", **fields)


def test_a_command_runs_on_every_online_instance_of_the_layer_asked_for() -> None:
    assert command_targets(SPEC, INSTANCES, run()) == ["w1", "w2"]
    assert command_targets(SPEC, INSTANCES, run(layer="web")) == ["w1", "w2"]
    assert command_targets(SPEC, INSTANCES, run(instance="w2")) == ["w2"]


def test_a_command_with_nowhere_to_run_is_refused_naming_why() -> None:
    with pytest.raises(NotFound, match="no layer 'api'"):
        command_targets(SPEC, INSTANCES, run(layer="api"))
    with pytest.raises(NotFound, match="no instance 'x9'"):
        command_targets(SPEC, INSTANCES, run(instance="x9"))
    with pytest.raises(InvalidInput, match="w1 is not in layer db"):
        command_targets(SPEC, INSTANCES, run(instance="w1", layer="db"))
    with pytest.raises(InvalidInput, match="cannot run configure on d1"):
        command_targets(SPEC, INSTANCES, run(instance="d1"))
    with pytest.raises(InvalidInput, match="no online instance in layer db to run configure"):
        command_targets(SPEC, INSTANCES, run(layer="db"))


def test_an_app_runs_on_the_online_instances_of_its_layers() -> None:
    assert app_targets(SPEC, INSTANCES, "hello") == ["w1", "w2"]
    with pytest.raises(InvalidInput, match=r"no online instance in layer\(s\) db of app dbapp"):
        app_targets(SPEC, INSTANCES, "dbapp")
    with pytest.raises(NotFound, match="no app 'nope'"):
        app_targets(SPEC, INSTANCES, "nope")


def test_an_instance_s_manager_is_its_layer_s() -> None:
    assert manager_of(SPEC, INSTANCES["d1"]) == ConfigurationManager.PUPPET
    assert manager_of(SPEC, INSTANCES["w1"]) == SPEC.configuration_manager
    assert instance_of(SPEC, INSTANCES, "w1") is INSTANCES["w1"]


COOKBOOKS = ResolvedCookbooks(
    directory="/c",
    digest="0" * 64,
    description="test",
    recipes={SPEC.configuration_manager: ["web::deploy"], ConfigurationManager.PUPPET: ["db::x"]},
)


def test_recipes_to_execute_must_be_named_and_found_by_each_target_s_manager() -> None:
    assert inventory(None) == {}
    check_recipes_to_execute(SPEC, INSTANCES, COOKBOOKS, ["web::deploy"], ["w1", "w2"])
    with pytest.raises(InvalidInput, match="needs --recipes"):
        check_recipes_to_execute(SPEC, INSTANCES, COOKBOOKS, [], ["w1"])
    with pytest.raises(InvalidInput, match="are not cookbook::recipe names"):
        check_recipes_to_execute(SPEC, INSTANCES, COOKBOOKS, ["deploy"], ["w1"])
    # db::x exists, but as a puppet recipe: not for w1's manager.
    with pytest.raises(InvalidInput, match=r"db::x not in the stack's cookbooks .*for w1\)"):
        check_recipes_to_execute(SPEC, INSTANCES, COOKBOOKS, ["db::x"], ["w1"])
    with pytest.raises(InvalidInput, match="not in the stack's cookbooks"):
        check_recipes_to_execute(SPEC, INSTANCES, None, ["web::deploy"], ["w1"])

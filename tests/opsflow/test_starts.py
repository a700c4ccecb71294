"""What starting an instance asks of it, and the recipes each run executes."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from opsflow.messages import AppAction, AppRelease, InstanceCommandKind
from opsflow.spec import RegisteredHostSpec, SetupFailure, StackSpec
from opsflow.starts import recipes_for, start_command


def spec(provider: str = "local", **web: Any) -> StackSpec:
    document: dict[str, Any] = {
        "name": "shop",
        "provider": provider,
        "layers": [
            {
                "name": "web",
                "recipes": {"setup": ["web::setup"], "deploy": ["web::deploy"]},
                "instances": [{"hostname": "w1"}],
                **web,
            },
            {"name": "extra", "recipes": {"deploy": ["x::deploy"]}},
        ],
    }
    if provider == "ec2":
        document |= {
            "region": "us-east-1",
            "ec2": {"ami": "ami-0abc1234def567890", "instance_type": "t3.micro"},
        }
    return StackSpec.model_validate(document)


RELEASE = AppRelease(app="hello", action=AppAction.DEPLOY, release="r1")


def test_a_start_carries_the_apps_and_on_ec2_a_machine_launched_once_per_command() -> None:
    command = start_command("start-1", spec("ec2"), ["web"], "w1", [RELEASE], None)
    assert (command.id, command.kind) == ("start-1", InstanceCommandKind.START)
    assert command.deploy_after_setup == [RELEASE]
    assert command.machine is not None and command.machine.token == "start-1"
    assert not command.terminate_on_setup_failure
    assert start_command("s", spec(), ["web"], "w1", [], None).machine is None


def test_a_registered_host_is_reached_as_pinned_and_is_no_ec2_machine() -> None:
    host = RegisteredHostSpec(host="10.0.0.5", key_file="id_ed25519")
    command = start_command("s", spec("ec2"), ["web"], "w1", [], host)
    assert command.registered == host and command.machine is None


def test_a_layer_may_terminate_instances_whose_setup_fails() -> None:
    the_spec = spec(on_setup_failure="terminate")
    assert start_command("s", the_spec, ["web"], "w1", [], None).terminate_on_setup_failure


def test_app_commands_run_the_deploy_recipes_of_each_layer_and_unknown_events_none() -> None:
    the_spec = spec()
    assert recipes_for(the_spec, ["web"], "setup") == ["web::setup"]
    assert recipes_for(the_spec, ["web", "extra"], "restart") == ["web::deploy", "x::deploy"]
    assert recipes_for(the_spec, ["web"], "execute_recipes") == []
    assert recipes_for(the_spec, ["gone"], "deploy") == []


def test_on_setup_failure_is_keep_or_terminate_and_nothing_else() -> None:
    assert spec().layers[0].on_setup_failure == SetupFailure.KEEP
    with pytest.raises(ValidationError, match="on_setup_failure"):
        spec(on_setup_failure="destroy")

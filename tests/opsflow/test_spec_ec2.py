"""EC2 settings in the stack file: shapes checked before any AWS call, and never on a
stack of another provider."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from opsflow.spec import Ec2Options, LayerSpec, StackSpec

ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef"


def stack(**fields: Any) -> dict[str, Any]:
    return {"name": "shop", "layers": [{"name": "web", "instances": [{"hostname": "w1"}]}]} | fields


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ami": "ami-123"}, "ami: 'ami-123' is not an AMI id"),
        ({"ami": "image-0abc1234"}, "is not an AMI id"),
        ({"subnet": "sub-1"}, "subnet: 'sub-1' is not a subnet id"),
        ({"security_groups": ["sg-1234abcd", "default"]}, "security_groups: 'default'"),
        ({"instance_type": "big"}, "instance_type: 'big' is not like t3.micro"),
        ({"tags": {"opsflow:stack": "x"}}, "reserved prefix"),
    ],
)
def test_bad_ec2_option_shapes_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Ec2Options.model_validate(options)


def test_a_target_group_arn_must_look_like_one() -> None:
    assert LayerSpec.model_validate({"name": "web", "load_balancer": ARN}).load_balancer == ARN
    with pytest.raises(ValidationError, match="not an ELBv2 target group ARN"):
        LayerSpec.model_validate({"name": "web", "load_balancer": "web-targets"})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"region": "us-east-1"}, "region: only for provider ec2"),
        ({"ec2": {"ami": "ami-0abc1234"}}, "ec2: only for provider ec2"),
        (
            {"layers": [{"name": "web", "auto_assign_elastic_ip": True}]},
            "layers.web.auto_assign_elastic_ip: only for provider ec2",
        ),
        (
            {"layers": [{"name": "web", "instances": [{"hostname": "w1", "ec2": {}}]}]},
            "layers.web.instances.w1.ec2: only for provider ec2",
        ),
    ],
)
def test_ec2_settings_on_a_local_stack_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        StackSpec.model_validate(stack(**fields))


def test_an_ec2_stack_needs_a_region_of_the_right_shape() -> None:
    with pytest.raises(ValidationError, match="provider ec2 needs a region"):
        StackSpec.model_validate(stack(provider="ec2"))
    with pytest.raises(ValidationError, match="'moon' is not an AWS region name"):
        StackSpec.model_validate(stack(provider="ec2", region="moon"))


def test_layer_and_instance_options_override_the_stacks_key_by_key() -> None:
    base = Ec2Options(ami="ami-0abc1234", instance_type="t3.micro", tags={"team": "a", "env": "p"})
    layer = Ec2Options(instance_type="t3.large", tags={"team": "b"})
    merged = layer.over(base)
    assert (merged.ami, merged.instance_type) == ("ami-0abc1234", "t3.large")
    assert merged.tags == {"team": "b", "env": "p"}

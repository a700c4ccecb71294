"""EC2 settings in the stack file: shapes checked before any AWS call, and never on a
stack of another provider."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from opsflow.spec import CloudWatchMetric, Ec2Options, LayerSpec, LoadBasedScaling, StackSpec

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


# ---- load-based scaling on a CloudWatch metric ---------------------------------------------

MEMORY = {"namespace": "CWAgent", "name": "mem_used_percent"}
CUSTOM = {"up": {"custom": 80}, "down": {"custom": 30}}


def scaling_layer(**scaling: Any) -> dict[str, Any]:
    return {"name": "web", "load_based_scaling": scaling, "instances": [{"hostname": "w1"}]}


def test_a_custom_cloudwatch_metric_drives_custom_thresholds_on_an_ec2_stack() -> None:
    fields = stack(
        provider="ec2",
        region="us-east-1",
        layers=[scaling_layer(custom_cloudwatch_metric=MEMORY | {"stat": "p90"}, **CUSTOM)],
    )
    spec = StackSpec.model_validate(fields)
    scaling = spec.layers[0].load_based_scaling
    assert scaling is not None
    assert scaling.custom_cloudwatch_metric == CloudWatchMetric(
        namespace="CWAgent", name="mem_used_percent", stat="p90"
    )
    assert CloudWatchMetric.model_validate(MEMORY).stat == "Average"


def test_a_custom_cloudwatch_metric_on_a_local_stack_is_refused_naming_it() -> None:
    fields = stack(layers=[scaling_layer(custom_cloudwatch_metric=MEMORY, **CUSTOM)])
    with pytest.raises(
        ValidationError,
        match="layers.web.load_based_scaling.custom_cloudwatch_metric: only for provider ec2 "
        r"\(this stack is local\)",
    ):
        StackSpec.model_validate(fields)


@pytest.mark.parametrize(
    ("scaling", "message"),
    [
        (
            {"custom_metric": "cat m", "custom_cloudwatch_metric": MEMORY, **CUSTOM},
            "give `custom_metric` .a command. or `custom_cloudwatch_metric`, not both",
        ),
        (CUSTOM, "a `custom` threshold needs `custom_metric` or `custom_cloudwatch_metric`"),
        (
            {"custom_cloudwatch_metric": {"namespace": "CWAgent"}, **CUSTOM},
            "custom_cloudwatch_metric.name\n  Field required",
        ),
        (
            {"custom_cloudwatch_metric": MEMORY | {"stat": "avg"}, **CUSTOM},
            "stat: 'avg' is not Average, Sum, Minimum, Maximum, SampleCount or a percentile",
        ),
        (
            {"custom_cloudwatch_metric": MEMORY | {"stat": "p101"}, **CUSTOM},
            "stat: 'p101' is not",
        ),
        (
            {"custom_cloudwatch_metric": MEMORY | {"namespace": " "}, **CUSTOM},
            "namespace: ' ' is not a CloudWatch namespace",
        ),
        (
            {"custom_cloudwatch_metric": MEMORY | {"namespace": ":CWAgent"}, **CUSTOM},
            "namespace: ':CWAgent' is not a CloudWatch namespace",
        ),
        (
            {"custom_cloudwatch_metric": MEMORY | {"name": "x" * 256}, **CUSTOM},
            "is not a CloudWatch metric name",
        ),
        (
            {"custom_cloudwatch_metric": MEMORY | {"dimensions": {"a": "b"}}, **CUSTOM},
            "dimensions\n  Extra inputs are not permitted",
        ),
    ],
)
def test_bad_custom_cloudwatch_metric_settings_are_refused(
    scaling: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        LoadBasedScaling.model_validate(scaling)

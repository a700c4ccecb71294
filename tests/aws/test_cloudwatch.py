"""CloudWatch against a real moto server through the fault proxy: ec2 instances' cpu with one
GetMetricData call (throttling retried), opsflow's layer gauges, and read_metrics taking
an ec2 instance's cpu from CloudWatch without SSH."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import cloudwatch, metrics
from opsflow.messages import (
    InstanceView,
    LayerGaugesInput,
    MetricsReport,
    ReadMetricsInput,
)
from opsflow.spec import Provider
from opsflow.status import InstanceStatus
from tests.aws.conftest import AwsEnv

pytestmark = pytest.mark.integration

REGION = "us-east-1"


def behind(aws: AwsEnv) -> Any:
    """A CloudWatch client straight to moto, past the proxy."""
    return boto3.client("cloudwatch", region_name=REGION, endpoint_url=aws.moto_url)


def put_cpu(aws: AwsEnv, instance_id: str, points: list[tuple[int, float]]) -> None:
    """CPUUtilization datapoints of `instance_id`, (seconds ago, percent) each."""
    now = datetime.now(UTC)
    behind(aws).put_metric_data(
        Namespace="AWS/EC2",
        MetricData=[
            {
                "MetricName": "CPUUtilization",
                "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
                "Timestamp": now - timedelta(seconds=ago),
                "Value": value,
                "Unit": "Percent",
            }
            for ago, value in points
        ],
    )


def test_cpu_is_the_latest_average_of_each_instance_in_one_call(aws_env: AwsEnv) -> None:
    put_cpu(aws_env, "i-0aaa", [(300, 10.0), (150, 20.0), (30, 42.5)])
    put_cpu(aws_env, "i-0bbb", [(400, 90.0), (90, 7.25)])
    put_cpu(aws_env, "i-0old", [(3600, 99.0)])  # long before the window

    found = cloudwatch.cloudwatch_cpu(REGION, ["i-0aaa", "i-0bbb", "i-0none", "i-0old"])

    assert found == {"i-0aaa": 42.5, "i-0bbb": 7.25, "i-0none": None, "i-0old": None}
    assert aws_env.proxy.count("GetMetricData") == 1


def test_no_instances_no_call(aws_env: AwsEnv) -> None:
    assert cloudwatch.cloudwatch_cpu(REGION, []) == {}
    assert aws_env.proxy.count("GetMetricData") == 0


def test_throttled_get_metric_data_is_retried(aws_env: AwsEnv) -> None:
    put_cpu(aws_env, "i-0aaa", [(30, 55.0)])
    aws_env.proxy.throttle("GetMetricData", 2)

    assert cloudwatch.cloudwatch_cpu(REGION, ["i-0aaa"]) == {"i-0aaa": 55.0}
    assert aws_env.proxy.count("GetMetricData") == 3


def test_throttled_past_the_retries_is_retryable(aws_env: AwsEnv) -> None:
    aws_env.proxy.throttle("GetMetricData", 10)

    with pytest.raises(ApplicationError) as raised:
        cloudwatch.cloudwatch_cpu(REGION, ["i-0aaa"])

    assert raised.value.type == cloudwatch.CLOUDWATCH_THROTTLED_TYPE
    assert not raised.value.non_retryable
    assert "Throttling" in raised.value.message
    # botocore's Config(retries={"max_attempts": 5}) means 5 retries after the first call.
    assert aws_env.proxy.count("GetMetricData") == 6


def test_a_refusal_is_not_retried_and_says_aws_s_code(aws_env: AwsEnv) -> None:
    aws_env.proxy.fail("GetMetricData", "AccessDenied", "not allowed to read metrics")

    with pytest.raises(ApplicationError) as raised:
        cloudwatch.cloudwatch_cpu(REGION, ["i-0aaa"])

    assert raised.value.type == cloudwatch.CLOUDWATCH_REFUSED_TYPE
    assert raised.value.non_retryable
    assert "AccessDenied" in raised.value.message
    assert "not allowed to read metrics" in raised.value.message


async def test_publish_layer_gauges_puts_the_three_metrics(aws_env: AwsEnv) -> None:
    gauges = LayerGaugesInput(
        stack="shop", layer="web", region=REGION, online=2, total=3, healing_events=1
    )

    await ActivityEnvironment().run(cloudwatch.publish_layer_gauges, gauges)

    moto = behind(aws_env)
    listed = moto.list_metrics(Namespace="opsflow")["Metrics"]
    assert sorted(m["MetricName"] for m in listed) == [
        "HealingEvents",
        "InstancesOnline",
        "InstancesTotal",
    ]
    for metric in listed:
        dims = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
        assert dims == {"Stack": "shop", "Layer": "web"}
    now = datetime.now(UTC)
    seen = {}
    for name in ("InstancesOnline", "InstancesTotal", "HealingEvents"):
        stats = moto.get_metric_statistics(
            Namespace="opsflow",
            MetricName=name,
            Dimensions=[{"Name": "Stack", "Value": "shop"}, {"Name": "Layer", "Value": "web"}],
            StartTime=now - timedelta(minutes=5),
            EndTime=now + timedelta(minutes=1),
            Period=60,
            Statistics=["Maximum"],
        )["Datapoints"]
        seen[name] = [p["Maximum"] for p in stats]
    assert seen == {"InstancesOnline": [2.0], "InstancesTotal": [3.0], "HealingEvents": [1.0]}
    assert aws_env.proxy.count("PutMetricData") == 1


def ec2_view(hostname: str, instance_id: str | None) -> InstanceView:
    return InstanceView(
        hostname=hostname,
        layers=["web"],
        status=InstanceStatus.ONLINE,
        provider=Provider.EC2,
        ec2_instance_id=instance_id,
    )


async def read(views: list[InstanceView], wanted: list[str], region: str | None) -> MetricsReport:
    request = ReadMetricsInput(
        stack="shop", layer="web", instances=views, metrics=wanted, region=region
    )
    report: MetricsReport = await ActivityEnvironment().run(metrics.read_metrics, request)
    return report


async def test_read_metrics_takes_ec2_cpu_from_cloudwatch_without_ssh(aws_env: AwsEnv) -> None:
    put_cpu(aws_env, "i-0aaa", [(200, 12.0), (40, 63.5)])

    report = await read(
        [ec2_view("web1", "i-0aaa"), ec2_view("web2", "i-0new"), ec2_view("web3", None)],
        ["cpu"],
        REGION,
    )

    web1, web2, web3 = report.instances
    assert (web1.hostname, web1.values, web1.error) == ("web1", {"cpu": 63.5}, None)
    assert (web2.hostname, web2.values) == ("web2", {})
    assert web2.error is not None
    assert metrics.NO_DATAPOINT in web2.error
    assert (web3.hostname, web3.values, web3.error) == ("web3", {}, "no SSH endpoint")
    assert aws_env.proxy.count("GetMetricData") == 1


async def test_read_metrics_keeps_cloudwatch_cpu_when_ssh_metrics_cannot_be_read(
    aws_env: AwsEnv,
) -> None:
    put_cpu(aws_env, "i-0aaa", [(40, 30.0)])

    [web1] = (await read([ec2_view("web1", "i-0aaa")], ["cpu", "load"], REGION)).instances

    assert web1.values == {"cpu": 30.0}
    assert web1.error == "no SSH endpoint"


async def test_read_metrics_without_a_region_does_not_ask_cloudwatch(aws_env: AwsEnv) -> None:
    [web1] = (await read([ec2_view("web1", "i-0aaa")], ["cpu"], None)).instances

    assert (web1.values, web1.error) == ({}, "no SSH endpoint")
    assert aws_env.proxy.count("GetMetricData") == 0


async def test_read_metrics_says_when_cloudwatch_refuses(aws_env: AwsEnv) -> None:
    aws_env.proxy.fail("GetMetricData", "AccessDenied", "no cloudwatch:GetMetricData")

    [web1] = (await read([ec2_view("web1", "i-0aaa")], ["cpu"], REGION)).instances

    assert web1.values == {}
    assert web1.error is not None
    assert web1.error.startswith("cpu: AWS refused GetMetricData: AccessDenied")

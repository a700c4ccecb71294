"""CloudWatch against a real moto server through the fault proxy: ec2 instances' cpu and a
custom CloudWatch metric with one GetMetricData call (throttling retried), opsflow's layer
gauges, and read_metrics taking an ec2 instance's cpu and custom value from CloudWatch
without SSH (and a load-based scaling decision made on them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import cloudwatch, metrics
from opsflow import scaling
from opsflow.errors import ErrorType
from opsflow.messages import (
    InstanceView,
    LayerGaugesInput,
    MetricsReport,
    ReadMetricsInput,
)
from opsflow.scaling import LoadState
from opsflow.spec import CloudWatchMetric, LoadBasedScaling, Provider, Scaling
from opsflow.status import InstanceStatus
from tests.aws.conftest import AwsEnv

pytestmark = pytest.mark.integration

REGION = "us-east-1"


def behind(aws: AwsEnv) -> Any:
    """A CloudWatch client straight to moto, past the proxy."""
    return boto3.client("cloudwatch", region_name=REGION, endpoint_url=aws.moto_url)


def put_cpu(aws: AwsEnv, instance_id: str, points: list[tuple[int, float]]) -> None:
    """CPUUtilization datapoints of `instance_id`, (seconds ago, percent) each."""
    put_metric(aws, "AWS/EC2", "CPUUtilization", instance_id, points)


def put_metric(
    aws: AwsEnv,
    namespace: str,
    name: str,
    instance_id: str,
    points: list[tuple[int, float]],
    **dimensions: str,
) -> None:
    """Datapoints of a metric with dimension InstanceId (and `dimensions`), (seconds ago,
    value) each, as the CloudWatch agent would put them."""
    now = datetime.now(UTC)
    dims = [{"Name": "InstanceId", "Value": instance_id}]
    dims += [{"Name": key, "Value": value} for key, value in dimensions.items()]
    behind(aws).put_metric_data(
        Namespace=namespace,
        MetricData=[
            {
                "MetricName": name,
                "Dimensions": dims,
                "Timestamp": now - timedelta(seconds=ago),
                "Value": value,
                "Unit": "Percent",
            }
            for ago, value in points
        ],
    )


MEMORY = CloudWatchMetric(namespace="CWAgent", name="mem_used_percent")


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

    assert raised.value.type == ErrorType.CLOUDWATCH_THROTTLED
    assert not raised.value.non_retryable
    assert "Throttling" in raised.value.message
    # botocore's Config(retries={"max_attempts": 5}) means 5 retries after the first call.
    assert aws_env.proxy.count("GetMetricData") == 6


def test_a_refusal_is_not_retried_and_says_aws_s_code(aws_env: AwsEnv) -> None:
    aws_env.proxy.fail("GetMetricData", "AccessDenied", "not allowed to read metrics")

    with pytest.raises(ApplicationError) as raised:
        cloudwatch.cloudwatch_cpu(REGION, ["i-0aaa"])

    assert raised.value.type == ErrorType.CLOUDWATCH_REFUSED
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


async def read(
    views: list[InstanceView],
    wanted: list[str],
    region: str | None,
    custom: CloudWatchMetric | None = None,
) -> MetricsReport:
    request = ReadMetricsInput(
        stack="shop",
        layer="web",
        instances=views,
        metrics=wanted,
        region=region,
        custom_cloudwatch_metric=custom,
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


# ---- several metrics per instance: cpu and a custom CloudWatch metric --------------------


def test_several_metrics_of_each_instance_are_read_in_one_call(aws_env: AwsEnv) -> None:
    put_cpu(aws_env, "i-0aaa", [(60, 33.0)])
    put_metric(aws_env, "CWAgent", "mem_used_percent", "i-0aaa", [(200, 50.0), (20, 71.25)])
    put_metric(aws_env, "CWAgent", "mem_used_percent", "i-0bbb", [(30, 12.0)])
    # The same metric under more dimensions is another metric: not this instance's.
    put_metric(aws_env, "CWAgent", "mem_used_percent", "i-0ccc", [(30, 99.0)], ImageId="ami-1")

    found = cloudwatch.latest_values(
        REGION, ["i-0aaa", "i-0bbb", "i-0ccc"], {"cpu": cloudwatch.CPU, "custom": MEMORY}
    )

    assert found == {
        "i-0aaa": {"cpu": 33.0, "custom": 71.25},
        "i-0bbb": {"cpu": None, "custom": 12.0},
        "i-0ccc": {"cpu": None, "custom": None},
    }
    assert aws_env.proxy.count("GetMetricData") == 1


def test_the_stat_asked_for_is_the_one_read(aws_env: AwsEnv) -> None:
    now = datetime.now(UTC).replace(second=30, microsecond=0) - timedelta(minutes=2)
    behind(aws_env).put_metric_data(
        Namespace="CWAgent",
        MetricData=[
            {
                "MetricName": "mem_used_percent",
                "Dimensions": [{"Name": "InstanceId", "Value": "i-0aaa"}],
                "Timestamp": now,
                "Value": value,
            }
            # One timestamp: moto cuts periods from the query's start time, which is not
            # minute-aligned, so points seconds apart could fall into two periods.
            for value in (10.0, 30.0, 80.0)
        ],
    )
    metrics_by_stat = {
        stat: MEMORY.model_copy(update={"stat": stat}) for stat in ("Average", "Maximum")
    }

    found = cloudwatch.latest_values(REGION, ["i-0aaa"], metrics_by_stat)

    assert found == {"i-0aaa": {"Average": 40.0, "Maximum": 80.0}}


def test_queries_go_500_to_a_call(aws_env: AwsEnv) -> None:
    wanted = {"cpu": cloudwatch.CPU, "custom": MEMORY}
    ids = [f"i-{n:017x}" for n in range(251)]  # 502 queries
    put_metric(aws_env, "CWAgent", "mem_used_percent", ids[-1], [(30, 64.0)])

    found = cloudwatch.latest_values(REGION, ids[:250], wanted)  # exactly 500
    assert aws_env.proxy.count("GetMetricData") == 1
    assert len(found) == 250

    found = cloudwatch.latest_values(REGION, ids, wanted)
    assert aws_env.proxy.count("GetMetricData") == 3
    assert found[ids[-1]] == {"cpu": None, "custom": 64.0}  # read by the second call


async def test_read_metrics_takes_the_custom_value_from_cloudwatch_without_ssh(
    aws_env: AwsEnv,
) -> None:
    put_cpu(aws_env, "i-0aaa", [(40, 20.0)])
    put_cpu(aws_env, "i-0bbb", [(40, 30.0)])
    put_metric(aws_env, "CWAgent", "mem_used_percent", "i-0aaa", [(40, 85.5)])

    report = await read(
        [ec2_view("web1", "i-0aaa"), ec2_view("web2", "i-0bbb"), ec2_view("web3", None)],
        ["cpu", "custom"],
        REGION,
        MEMORY,
    )

    web1, web2, web3 = report.instances
    assert (web1.values, web1.error) == ({"cpu": 20.0, "custom": 85.5}, None)
    assert web2.values == {"cpu": 30.0}
    assert web2.error == "custom: " + metrics.no_datapoint(MEMORY)
    assert "CWAgent mem_used_percent (Average)" in web2.error
    # Not an EC2 instance: its cpu goes over SSH (none here), no CloudWatch custom value.
    assert web3.values == {}
    assert web3.error == (
        "custom: web3 is not an EC2 instance (no CloudWatch metrics); no SSH endpoint"
    )
    assert aws_env.proxy.count("GetMetricData") == 1


async def test_a_custom_cloudwatch_metric_drives_a_load_based_scale_up(aws_env: AwsEnv) -> None:
    put_metric(aws_env, "CWAgent", "mem_used_percent", "i-0aaa", [(300, 20.0), (30, 85.0)])
    put_metric(aws_env, "CWAgent", "mem_used_percent", "i-0bbb", [(30, 91.0)])
    config = LoadBasedScaling.model_validate(
        {
            "custom_cloudwatch_metric": MEMORY.model_dump(),
            "up": {"custom": 80, "thresholds_wait_time": 0},
            "down": {"custom": 30, "thresholds_wait_time": 0},
        }
    )
    online = [ec2_view("web1", "i-0aaa"), ec2_view("web2", "i-0bbb")]
    spare = InstanceView(
        hostname="web3", layers=["web"], status=InstanceStatus.STOPPED, scaling=Scaling.LOAD
    )

    report = await read(online, ["custom"], REGION, config.custom_cloudwatch_metric)
    means = scaling.averages(report)
    decision = scaling.decide_load(
        LoadState(), config, "web", [*online, spare], means, datetime.now(UTC)
    )

    assert means == {"custom": 88.0}
    assert decision is not None
    assert (decision.direction, decision.start) == ("up", ["web3"])
    assert "custom 88.0 > 80" in decision.message
    assert aws_env.proxy.count("GetMetricData") == 1


@pytest.mark.parametrize(
    ("custom_metric", "region", "message"),
    [
        (None, None, "`custom_cloudwatch_metric` needs the stack's region"),
        ("cat m", REGION, "give `custom_metric` or `custom_cloudwatch_metric`, not both"),
    ],
)
async def test_a_custom_cloudwatch_metric_that_cannot_be_read_is_invalid_input(
    aws_env: AwsEnv, custom_metric: str | None, region: str | None, message: str
) -> None:
    request = ReadMetricsInput(
        stack="shop",
        layer="web",
        instances=[ec2_view("web1", "i-0aaa")],
        metrics=["custom"],
        custom_metric=custom_metric,
        custom_cloudwatch_metric=MEMORY,
        region=region,
    )

    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(metrics.read_metrics, request)

    assert raised.value.type == ErrorType.INVALID_INPUT
    assert raised.value.message.startswith(message)
    assert aws_env.proxy.count("GetMetricData") == 0

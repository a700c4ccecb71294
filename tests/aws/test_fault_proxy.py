"""The fault proxy, with real boto3 clients against a real moto server process."""

from __future__ import annotations

import datetime as dt
import http.client
import time
from collections.abc import Callable
from typing import Any

import boto3  # type: ignore[import-untyped, unused-ignore]
import pytest
from botocore.config import Config  # type: ignore[import-untyped, unused-ignore]
from botocore.exceptions import ClientError  # type: ignore[import-untyped, unused-ignore]
from botocore.parsers import create_parser  # type: ignore[import-untyped, unused-ignore]

from tests.aws.conftest import AwsEnv, moto_api
from tests.aws.fault_proxy import LOOPBACK, FaultProxy, Protocol, error_response, identify

AMI = "ami-12c6146b"  # one of moto's default images


def client(service: str, attempts: int = 5) -> Any:
    """A plain boto3 client (endpoint and credentials from the environment aws_env sets),
    making at most `attempts` attempts of each call (botocore's `max_attempts` counts the
    retries only: `total_max_attempts` counts the first attempt too)."""
    retries = {"mode": "standard", "total_max_attempts": attempts}
    return boto3.client(service, config=Config(retries=retries))


def direct(aws_env: AwsEnv, service: str) -> Any:
    """A client for moto itself, behind the proxy's back."""
    return boto3.client(service, endpoint_url=aws_env.moto_url)


def instance_state(ec2: Any, instance_id: str) -> str:
    reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return str(reservations[0]["Instances"][0]["State"]["Name"])


def all_instance_ids(ec2: Any) -> list[str]:
    reservations = ec2.describe_instances()["Reservations"]
    return [i["InstanceId"] for r in reservations for i in r["Instances"]]


# -- with moto ---------------------------------------------------------------------------


@pytest.mark.integration
def test_run_instances_through_the_proxy_reaches_moto(aws_env: AwsEnv) -> None:
    launched = client("ec2").run_instances(ImageId=AMI, MinCount=1, MaxCount=1)
    instance_id = launched["Instances"][0]["InstanceId"]

    assert all_instance_ids(direct(aws_env, "ec2")) == [instance_id]
    assert aws_env.proxy.calls == ["RunInstances"]
    assert aws_env.proxy.seen[0].service == "ec2"
    assert aws_env.proxy.seen[0].protocol == "ec2"


@pytest.mark.integration
def test_a_throttled_call_is_retried_by_botocore(aws_env: AwsEnv) -> None:
    aws_env.proxy.throttle("RunInstances", 2, "RequestLimitExceeded")

    launched = client("ec2", attempts=5).run_instances(ImageId=AMI, MinCount=1, MaxCount=1)

    assert launched["ResponseMetadata"]["RetryAttempts"] == 2
    assert aws_env.proxy.calls == ["RunInstances"] * 3
    assert [call.faulted for call in aws_env.proxy.seen] == [True, True, False]
    assert all_instance_ids(direct(aws_env, "ec2")) == [launched["Instances"][0]["InstanceId"]]


@pytest.mark.integration
def test_without_retries_the_throttle_is_the_error(aws_env: AwsEnv) -> None:
    aws_env.proxy.throttle("RunInstances", 1)  # ec2's own throttling code by default

    with pytest.raises(ClientError) as raised:
        client("ec2", attempts=1).run_instances(ImageId=AMI, MinCount=1, MaxCount=1)

    error = raised.value.response
    assert error["Error"]["Code"] == "RequestLimitExceeded"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert aws_env.proxy.count("RunInstances") == 1
    assert all_instance_ids(direct(aws_env, "ec2")) == []
    # the throttle is used up: the next call goes through
    client("ec2", attempts=1).run_instances(ImageId=AMI, MinCount=1, MaxCount=1)
    assert len(all_instance_ids(direct(aws_env, "ec2"))) == 1


@pytest.mark.integration
def test_fail_answers_every_call_with_the_error(aws_env: AwsEnv) -> None:
    message = "The maximum number of addresses has been reached."
    aws_env.proxy.fail("AllocateAddress", "AddressLimitExceeded", message)
    ec2 = client("ec2")

    for _ in range(2):
        with pytest.raises(ClientError) as raised:
            ec2.allocate_address(Domain="vpc")
        assert raised.value.response["Error"]["Code"] == "AddressLimitExceeded"
        assert raised.value.response["Error"]["Message"] == message
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400

    assert aws_env.proxy.calls == ["AllocateAddress"] * 2  # not retryable: no retries
    assert direct(aws_env, "ec2").describe_addresses()["Addresses"] == []

    aws_env.proxy.reset()
    assert aws_env.proxy.calls == []
    ec2.allocate_address(Domain="vpc")
    assert len(direct(aws_env, "ec2").describe_addresses()["Addresses"]) == 1


@pytest.mark.integration
def test_fail_the_next_n_calls_only(aws_env: AwsEnv) -> None:
    aws_env.proxy.fail(
        "RunInstances", "InvalidAMIID.NotFound", "The image id '[ami-x]' does not exist", times=1
    )
    ec2 = client("ec2")

    with pytest.raises(ClientError) as raised:
        ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1)
    assert raised.value.response["Error"]["Code"] == "InvalidAMIID.NotFound"

    ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1)
    assert aws_env.proxy.calls == ["RunInstances", "RunInstances"]
    assert len(all_instance_ids(direct(aws_env, "ec2"))) == 1


@pytest.mark.integration
def test_cloudwatch_through_the_proxy_and_throttled(aws_env: AwsEnv) -> None:
    cloudwatch = client("cloudwatch")
    now = dt.datetime.now(dt.UTC)
    cloudwatch.put_metric_data(
        Namespace="opsflow/test",
        MetricData=[{"MetricName": "load", "Value": 3.0, "Timestamp": now}],
    )
    query = {
        "MetricDataQueries": [
            {
                "Id": "load",
                "MetricStat": {
                    "Metric": {"Namespace": "opsflow/test", "MetricName": "load"},
                    "Period": 60,
                    "Stat": "Sum",
                },
            }
        ],
        "StartTime": now - dt.timedelta(minutes=10),
        "EndTime": now + dt.timedelta(minutes=10),
    }
    assert cloudwatch.get_metric_data(**query)["MetricDataResults"][0]["Values"] == [3.0]
    assert aws_env.proxy.calls == ["PutMetricData", "GetMetricData"]
    assert aws_env.proxy.seen[-1].service == "monitoring"

    aws_env.proxy.throttle("GetMetricData", 1)
    with pytest.raises(ClientError) as raised:
        client("cloudwatch", attempts=1).get_metric_data(**query)
    assert raised.value.response["Error"]["Code"] == "Throttling"

    aws_env.proxy.throttle("GetMetricData", 1)
    result = cloudwatch.get_metric_data(**query)
    assert result["MetricDataResults"][0]["Values"] == [3.0]
    assert result["ResponseMetadata"]["RetryAttempts"] == 1
    assert aws_env.proxy.count("GetMetricData") == 4


@pytest.mark.integration
def test_elbv2_through_the_proxy_and_throttled(aws_env: AwsEnv) -> None:
    vpc_id = client("ec2").create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    elbv2 = client("elbv2")
    elbv2.create_target_group(Name="web", Protocol="HTTP", Port=80, VpcId=vpc_id)

    groups = elbv2.describe_target_groups()["TargetGroups"]
    assert [group["TargetGroupName"] for group in groups] == ["web"]
    assert aws_env.proxy.seen[-1].service == "elasticloadbalancing"
    assert aws_env.proxy.seen[-1].protocol == "query"

    aws_env.proxy.throttle("DescribeTargetGroups", 1)
    with pytest.raises(ClientError) as raised:
        client("elbv2", attempts=1).describe_target_groups()
    assert raised.value.response["Error"]["Code"] == "Throttling"
    assert raised.value.response["Error"]["Type"] == "Sender"

    aws_env.proxy.throttle("DescribeTargetGroups", 2)
    assert len(elbv2.describe_target_groups()["TargetGroups"]) == 1
    assert aws_env.proxy.calls[-3:] == ["DescribeTargetGroups"] * 3


@pytest.mark.integration
def test_a_rule_can_be_narrowed_to_one_service(aws_env: AwsEnv) -> None:
    aws_env.proxy.fail("DescribeTags", "Boom", "ec2 only", service="ec2")

    client("elbv2").describe_tags(
        ResourceArns=["arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/x/1"]
    )  # moto answers (with no tags): not the rule
    with pytest.raises(ClientError) as raised:
        client("ec2").describe_tags()
    assert raised.value.response["Error"]["Code"] == "Boom"


@pytest.mark.integration
def test_instances_stay_pending_for_a_while(
    aws_env: AwsEnv, instances_pending_for: Callable[[float], None]
) -> None:
    instances_pending_for(2)
    ec2 = client("ec2")
    started = time.monotonic()
    launched = ec2.run_instances(ImageId=AMI, MinCount=2, MaxCount=2)
    ids = [instance["InstanceId"] for instance in launched["Instances"]]

    assert [instance_state(ec2, i) for i in ids] == ["pending", "pending"]
    statuses = ec2.describe_instance_status(InstanceIds=ids, IncludeAllInstances=True)
    assert {s["InstanceState"]["Name"] for s in statuses["InstanceStatuses"]} == {"pending"}
    assert instance_state(direct(aws_env, "ec2"), ids[0]) == "running"  # moto's own view

    while instance_state(ec2, ids[0]) == "pending":
        assert time.monotonic() - started < 10, "still pending after 10s"
        time.sleep(0.2)
    assert time.monotonic() - started >= 1.9
    assert [instance_state(ec2, i) for i in ids] == ["running", "running"]

    # a stopped instance started again is pending for a while too
    ec2.stop_instances(InstanceIds=ids[:1])
    assert instance_state(ec2, ids[0]) == "stopped"
    ec2.start_instances(InstanceIds=ids[:1])
    assert instance_state(ec2, ids[0]) == "pending"


@pytest.mark.integration
def test_moto_has_no_state_transitions_for_ec2_instances(aws_env: AwsEnv) -> None:
    """Why instances_pending_for is done by the proxy: should moto ever support an
    `ec2::instance` model, this fails, and instances_pending_for can use moto instead."""
    transition = {
        "model_name": "ec2::instance",
        "transition": {"progression": "time", "seconds": 60},
    }
    status, _ = moto_api(
        aws_env.moto_url, "POST", "/moto-api/state-manager/set-transition", transition
    )
    assert status == 201
    try:
        ec2 = direct(aws_env, "ec2")
        launched = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1)
        assert instance_state(ec2, launched["Instances"][0]["InstanceId"]) == "running"
    finally:
        moto_api(
            aws_env.moto_url,
            "POST",
            "/moto-api/state-manager/unset-transition",
            {"model_name": "ec2::instance"},
        )


@pytest.mark.integration
def test_state_does_not_leak_between_tests_1(aws_env: AwsEnv) -> None:
    assert all_instance_ids(direct(aws_env, "ec2")) == []
    client("ec2").run_instances(ImageId=AMI, MinCount=1, MaxCount=1)


@pytest.mark.integration
def test_state_does_not_leak_between_tests_2(aws_env: AwsEnv) -> None:
    assert all_instance_ids(direct(aws_env, "ec2")) == []
    client("ec2").run_instances(ImageId=AMI, MinCount=1, MaxCount=1)


@pytest.mark.integration
def test_a_stopped_proxy_serves_nothing(moto_reset: str) -> None:
    proxy = FaultProxy(moto_reset).start()
    ec2 = boto3.client(
        "ec2",
        endpoint_url=proxy.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )
    ec2.describe_instances()  # leaves a kept-alive connection in botocore's pool
    proxy.stop()

    conn = http.client.HTTPConnection(LOOPBACK, proxy.port, timeout=5)
    with pytest.raises(OSError):
        conn.request("GET", "/")
        conn.getresponse()
    conn.close()
    with pytest.raises(Exception, match=r"(?i)connect|closed|aborted|reset"):
        ec2.describe_instances()


# -- without moto: request identification and error bodies, checked with botocore's parsers --


def test_identify_reads_the_action_of_each_protocol() -> None:
    def auth(service: str) -> dict[str, str]:
        scope = f"testing/20260101/us-east-1/{service}/aws4_request"
        return {"authorization": f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders=host"}

    form = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}
    body = b"Action=RunInstances&Version=2016-11-15&ImageId=ami-1"
    assert identify("POST", "/", auth("ec2") | form, body) == ("ec2", "RunInstances", "ec2")
    assert identify(
        "GET", "/?Action=DescribeTargetGroups&Version=2015-12-01", auth("elasticloadbalancing"), b""
    ) == (
        "elasticloadbalancing",
        "DescribeTargetGroups",
        "query",
    )
    target = {"x-amz-target": "GraniteServiceVersion20100801.GetMetricData"}
    assert identify("POST", "/", auth("monitoring") | target, b"{}") == (
        "monitoring",
        "GetMetricData",
        "json",
    )
    path = "/service/GraniteServiceVersion20100801/operation/PutMetricData"
    assert identify("POST", path, auth("monitoring"), b"\xa0") == (
        "monitoring",
        "PutMetricData",
        "cbor",
    )
    assert identify("GET", "/moto-api/", {}, b"") == ("", "", "query")


@pytest.mark.parametrize(
    ("protocol", "botocore_protocol", "code", "status"),
    [
        ("ec2", "ec2", "RequestLimitExceeded", 503),
        ("query", "query", "Throttling", 400),
        ("json", "json", "ThrottlingException", 400),
        ("cbor", "smithy-rpc-v2-cbor", "Throttling", 400),
    ],
)
def test_error_bodies_parse_as_botocore_expects(
    protocol: Protocol, botocore_protocol: str, code: str, status: int
) -> None:
    status_out, headers, body = error_response(protocol, code, "Rate <exceeded> & more", status)
    parsed = create_parser(botocore_protocol).parse(
        {
            "status_code": status_out,
            "headers": {k.lower(): v for k, v in headers.items()},
            "body": body,
        },
        None,
    )
    assert status_out == status
    assert parsed["Error"]["Code"] == code
    assert parsed["Error"]["Message"] == "Rate <exceeded> & more"


def test_query_compatible_json_errors_carry_the_query_code() -> None:
    _, headers, body = error_response("json", "Throttling", "slow down", 400, query_mode=True)
    assert headers["x-amzn-query-error"] == "Throttling;Sender"
    parsed = create_parser("json").parse(
        {"status_code": 400, "headers": {k.lower(): v for k, v in headers.items()}, "body": body},
        None,
    )
    assert parsed["Error"]["Code"] == "Throttling"
    assert parsed["Error"]["Type"] == "Sender"


def test_the_proxy_only_fronts_loopback() -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        FaultProxy("http://localhost:5000")
    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        FaultProxy("http://10.0.0.1:5000")


def test_controls_validate_their_arguments() -> None:
    with FaultProxy("http://127.0.0.1:9") as proxy:
        with pytest.raises(ValueError):
            proxy.throttle("RunInstances", 0)
        with pytest.raises(ValueError):
            proxy.fail("RunInstances", "X", "y", times=0)

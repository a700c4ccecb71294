"""AWS's errors as every AWS activity reports them (activities/aws.py): the mapping itself,
and ELBv2's activities through a real moto server and the fault proxy."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, WaiterError
from temporalio.exceptions import ApplicationError

from activities import aws, elb
from opsflow.messages import TargetInput
from tests.aws.conftest import AwsEnv

REGION = "us-east-1"
MISSING_GROUP = (
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/none/0123456789abcdef"
)


def _client_error(code: str, message: str = "no") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "DescribeThings")


@pytest.mark.parametrize("code", sorted(aws.THROTTLING_CODES))
@pytest.mark.parametrize("types", [aws.EC2_ERRORS, aws.RDS_ERRORS, aws.CLOUDWATCH_ERRORS])
def test_throttling_is_the_services_retryable_type(code: str, types: aws.ErrorTypes) -> None:
    error = aws.refusal(_client_error(code, "slow down"), types)
    assert error.type == types.throttled and not error.non_retryable
    assert error.message == f"AWS refused DescribeThings: {code}: slow down"


def test_a_refusal_is_the_services_non_retryable_type_with_aws_s_words() -> None:
    error = aws.refusal(
        _client_error("InvalidAMIID.NotFound", "no such image"),
        aws.EC2_ERRORS,
        prefix="shop/web1: ",
        suffix=" (not undone: x)",
    )
    assert error.type == "Ec2Refused" and error.non_retryable
    assert error.message == (
        "shop/web1: AWS refused DescribeThings: InvalidAMIID.NotFound: no such image"
        " (not undone: x)"
    )


def test_a_waiter_that_gave_up_is_retryable() -> None:
    waited = WaiterError("instance_running", "Max attempts exceeded", {})
    error = aws.wait_failure(waited, aws.EC2_ERRORS, prefix="shop/web1: ")
    assert error.type == "Ec2Refused" and not error.non_retryable
    assert (
        error.message
        == "shop/web1: EC2 wait failed: Waiter instance_running failed: Max attempts exceeded"
    )


def _target() -> TargetInput:
    return TargetInput(region=REGION, target_group=MISSING_GROUP, instance_id="i-0123456789abcdef0")


def test_elb_register_into_a_missing_target_group_is_refused_with_aws_s_code(
    aws_env: AwsEnv,
) -> None:
    with pytest.raises(ApplicationError) as raised:
        elb.register(_target())
    assert raised.value.type == aws.EC2_ERRORS.refused and raised.value.non_retryable
    assert "TargetGroupNotFound" in raised.value.message


def test_elb_deregister_from_a_missing_target_group_is_fine(aws_env: AwsEnv) -> None:
    elb.deregister(_target())


def test_elb_throttled_past_the_retries_is_retryable(aws_env: AwsEnv) -> None:
    aws_env.proxy.throttle("RegisterTargets", 10)
    with pytest.raises(ApplicationError) as raised:
        elb.register(_target())
    assert raised.value.type == aws.EC2_ERRORS.throttled and not raised.value.non_retryable
    assert aws_env.proxy.count("RegisterTargets") == aws.MAX_ATTEMPTS + 1

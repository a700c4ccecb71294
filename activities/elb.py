"""ELBv2 target groups: an instance is registered when it goes online and deregistered,
with connection draining waited for, before its shutdown recipes run (OpsWorks' order).

Errors as activities.aws maps them, with the EC2 types (activities.aws.EC2_ERRORS):
throttling retryable, refusals (a target group that does not exist: TargetGroupNotFound)
non-retryable with AWS's code and message.
"""

from __future__ import annotations

import asyncio
from typing import Any

from botocore.exceptions import ClientError, WaiterError
from temporalio import activity

from activities import aws, names
from activities.heartbeat import heartbeating
from opsflow.messages import TargetInput


def client(region: str) -> Any:
    return aws.client("elbv2", region)


def register(request: TargetInput) -> None:
    try:
        client(request.region).register_targets(
            TargetGroupArn=request.target_group, Targets=[{"Id": request.instance_id}]
        )
    except ClientError as err:
        raise aws.refusal(err, aws.EC2_ERRORS) from err


def deregister(request: TargetInput) -> None:
    """Deregister and wait until the target group has drained it (its deregistration
    delay); a target group or target already gone is fine."""
    elbv2 = client(request.region)
    targets = [{"Id": request.instance_id}]
    try:
        elbv2.deregister_targets(TargetGroupArn=request.target_group, Targets=targets)
        elbv2.get_waiter("target_deregistered").wait(
            TargetGroupArn=request.target_group,
            Targets=targets,
            WaiterConfig={"Delay": 2, "MaxAttempts": 450},
        )
    except ClientError as err:
        if "NotFound" not in aws.error_code(err):
            raise aws.refusal(err, aws.EC2_ERRORS) from err
    except WaiterError as err:
        raise aws.wait_failure(err, aws.EC2_ERRORS) from err


@activity.defn(name=names.REGISTER_TARGET)
async def register_target(request: TargetInput) -> None:
    await heartbeating(asyncio.to_thread(register, request))


@activity.defn(name=names.DEREGISTER_TARGET)
async def deregister_target(request: TargetInput) -> None:
    await heartbeating(asyncio.to_thread(deregister, request))


ACTIVITIES = (register_target, deregister_target)

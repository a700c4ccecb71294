"""The `describe_rds` activity: what AWS says of the RDS DB instances a stack registers.

`stack apply` runs it (before anything changes) for the stack file's `rds:` entries, and
keeps each instance's endpoint address, port, engine and database name in the stack's
state; apps that name an entry in `data_source` get them in `deploy.{app}.database`.

boto3 is configured the standard way (AWS_PROFILE, the stack's region, AWS_ENDPOINT_URL,
instance roles); nothing here reads credentials itself.

Errors: throttling is retried by botocore's standard retry mode and, past it, is a
retryable RdsThrottled; an instance that does not exist (DBInstanceNotFound) or any other
refusal is a non-retryable RdsRefused carrying AWS's code and message; an instance with
no endpoint yet (being created) is a retryable RdsNotReady.
"""

from __future__ import annotations

import asyncio
from typing import Any

from botocore.exceptions import ClientError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import aws, names
from opsflow.errors import ErrorType
from opsflow.messages import DescribeRdsInput, RdsInfo, RdsInstances


def client(region: str) -> Any:
    return aws.client("rds", region)


def describe(request: DescribeRdsInput) -> RdsInstances:
    rds = client(request.region)
    found: dict[str, RdsInfo] = {}
    for identifier in request.identifiers:
        try:
            answer = rds.describe_db_instances(DBInstanceIdentifier=identifier)
        except ClientError as err:
            prefix = f"{request.stack}: RDS {identifier}: "
            raise aws.refusal(err, aws.RDS_ERRORS, prefix=prefix) from None
        instance = answer["DBInstances"][0]
        endpoint = instance.get("Endpoint") or {}
        if not endpoint.get("Address"):
            raise ApplicationError(
                f"{request.stack}: RDS instance {identifier} has no endpoint yet (status "
                f"{instance.get('DBInstanceStatus', 'unknown')})",
                type=ErrorType.RDS_NOT_READY,
            )
        found[identifier] = RdsInfo(
            identifier=identifier,
            address=endpoint["Address"],
            port=int(endpoint.get("Port") or instance.get("DbInstancePort") or 0),
            engine=instance["Engine"],
            database_name=instance.get("DBName") or None,
            arn=instance.get("DBInstanceArn") or None,
        )
    return RdsInstances(instances=found)


@activity.defn(name=names.DESCRIBE_RDS)
async def describe_rds(request: DescribeRdsInput) -> RdsInstances:
    return await asyncio.to_thread(describe, request)

"""The describe_rds activity against a real moto server, through the fault proxy: an
instance's endpoint, port, engine and database name; an unknown identifier refused (not
retried) naming it; throttling retried."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import rds
from opsflow.errors import ErrorType
from opsflow.messages import DescribeRdsInput
from tests.aws.conftest import AwsEnv

pytestmark = pytest.mark.integration


def create_db(aws: AwsEnv, identifier: str, engine: str = "postgres", **extra: Any) -> None:
    """A DB instance in moto, made past the proxy (so no fault rule sees it)."""
    client = boto3.client("rds", region_name=aws.region, endpoint_url=aws.moto_url)
    client.create_db_instance(
        DBInstanceIdentifier=identifier,
        DBInstanceClass="db.t3.micro",
        Engine=engine,
        MasterUsername="admin",
        MasterUserPassword="not-used-here-1",
        AllocatedStorage=20,
        **extra,
    )


def request(*identifiers: str) -> DescribeRdsInput:
    return DescribeRdsInput(stack="shop", region="us-east-1", identifiers=list(identifiers))


async def test_describe_rds_gives_endpoint_port_engine_and_database(aws_env: AwsEnv) -> None:
    create_db(aws_env, "shop-db-1", DBName="shop", Port=5432)
    create_db(aws_env, "shop-db-2", engine="mysql")
    found = await ActivityEnvironment().run(rds.describe_rds, request("shop-db-1", "shop-db-2"))
    first, second = found.instances["shop-db-1"], found.instances["shop-db-2"]
    assert (first.engine, first.port, first.database_name) == ("postgres", 5432, "shop")
    assert first.address.startswith("shop-db-1.") and first.address != second.address
    assert (second.engine, second.port) == ("mysql", 3306)
    # what moto itself says, past the proxy
    behind = boto3.client("rds", region_name="us-east-1", endpoint_url=aws_env.moto_url)
    [instance] = behind.describe_db_instances(DBInstanceIdentifier="shop-db-1")["DBInstances"]
    assert first.address == instance["Endpoint"]["Address"]
    assert first.arn == instance["DBInstanceArn"]  # what Chef 12 data bags name it by
    assert first.arn is not None and ":db:shop-db-1" in first.arn


async def test_an_unknown_identifier_is_refused_and_not_retried(aws_env: AwsEnv) -> None:
    create_db(aws_env, "shop-db-1")
    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(rds.describe_rds, request("shop-db-1", "nope-db"))
    error = raised.value
    assert error.non_retryable and error.type == ErrorType.RDS_REFUSED
    assert "nope-db" in error.message and "DBInstanceNotFound" in error.message
    calls = [c.action for c in aws_env.proxy.seen if c.service == "rds"]
    assert calls == ["DescribeDBInstances", "DescribeDBInstances"]  # once each, no retry


async def test_throttled_describes_are_retried(aws_env: AwsEnv) -> None:
    create_db(aws_env, "shop-db-1", engine="mysql")
    aws_env.proxy.throttle("DescribeDBInstances", 2)
    found = await ActivityEnvironment().run(rds.describe_rds, request("shop-db-1"))
    assert found.instances["shop-db-1"].engine == "mysql"
    faulted = [c.faulted for c in aws_env.proxy.seen if c.action == "DescribeDBInstances"]
    assert faulted == [True, True, False]


def test_throttling_past_botocore_s_retries_is_a_retryable_error(aws_env: AwsEnv) -> None:
    create_db(aws_env, "shop-db-1")
    aws_env.proxy.throttle("DescribeDBInstances", 10)
    with pytest.raises(ApplicationError) as raised:
        rds.describe(request("shop-db-1"))
    assert not raised.value.non_retryable and raised.value.type == ErrorType.RDS_THROTTLED
    assert "Throttling" in raised.value.message

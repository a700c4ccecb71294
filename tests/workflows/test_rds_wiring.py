"""`rds:` wired through the stack workflow (time-skipping server, activities replaced):
apply describes the registered instances before anything changes, a deploy of an app with
a data_source carries its database (password still encrypted), a new instance gets it
too, and an unknown RDS instance fails the apply with nothing created."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import names
from client.api import OpsflowClient
from opsflow import settings
from opsflow.errors import NotFound, OperationFailed
from opsflow.messages import (
    AddInstanceInput,
    DeployInput,
    DeploymentStatus,
    DescribeRdsInput,
    RdsInfo,
    RdsInstances,
    RecipeRunInput,
    RecipeRunResult,
)
from opsflow.secrets import SecureValue, decrypt, encrypt
from opsflow.spec import StackSpec
from tests.helpers import quiet
from tests.workflows.fakes import FakeCloud
from workflows.deployment import DeploymentWorkflow
from workflows.instance import InstanceWorkflow
from workflows.stack import StackWorkflow

PASSWORD = "wired-pa55"
ENDPOINT = "shop-db-1.abc.us-east-1.rds.amazonaws.com"


def rds_spec(name: str) -> StackSpec:
    return StackSpec.model_validate(
        {
            "name": name,
            "provider": "ec2",
            "region": "us-east-1",
            "ec2": {"ami": "ami-0abc1234def567890", "instance_type": "t3.micro"},
            "cookbooks": {"source": "/cookbooks"},
            "layers": [
                {
                    "name": "web",
                    "auto_healing": False,
                    "recipes": {"setup": ["web::setup"], "deploy": ["app::hello"]},
                    "instances": [{"hostname": "web01"}],
                }
            ],
            "rds": [
                {
                    "name": "main",
                    "identifier": "shop-db-1",
                    "username": "admin",
                    "password": encrypt(settings.secret_key(), PASSWORD).model_dump(),
                }
            ],
            "apps": [{"name": "hello", "layers": ["web"], "data_source": "main"}],
        }
    )


class Fakes:
    def __init__(self, cloud: FakeCloud, known: dict[str, RdsInfo]) -> None:
        self.cloud = cloud
        self.known = known
        self.described: list[DescribeRdsInput] = []
        self.app_runs: list[RecipeRunInput] = []

    def activities(self) -> list[Callable[..., Any]]:
        acts = self.cloud.activities()
        original = next(a for a in acts if a.__name__ == "run_recipes")

        @activity.defn(name=names.RUN_RECIPES)
        async def run_recipes(request: RecipeRunInput) -> RecipeRunResult:
            if request.app is not None:
                self.app_runs.append(request)
            result: RecipeRunResult = await original(request)
            return result

        @activity.defn(name=names.DESCRIBE_RDS)
        async def describe_rds(request: DescribeRdsInput) -> RdsInstances:
            self.described.append(request)
            unknown = [i for i in request.identifiers if i not in self.known]
            if unknown:
                raise ApplicationError(
                    f"{request.stack}: RDS {unknown[0]}: AWS refused DescribeDBInstances: "
                    f"DBInstanceNotFound: DBInstance {unknown[0]} not found.",
                    type="RdsRefused",
                    non_retryable=True,
                )
            return RdsInstances(instances={i: self.known[i] for i in request.identifiers})

        return [run_recipes if a is original else a for a in acts] + [describe_rds]


@asynccontextmanager
async def running(env: WorkflowEnvironment, fakes: Fakes) -> AsyncIterator[OpsflowClient]:
    queue = f"test-{uuid.uuid4().hex[:8]}"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[StackWorkflow, InstanceWorkflow, DeploymentWorkflow],
        activities=fakes.activities(),
    ):
        yield OpsflowClient(env.client, task_queue=queue, tag_runs=False)


KNOWN = {
    "shop-db-1": RdsInfo(
        identifier="shop-db-1", address=ENDPOINT, port=5432, engine="postgres", database_name="shop"
    )
}


async def test_a_deploy_carries_the_app_s_database_with_the_password_encrypted(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = Fakes(FakeCloud(), KNOWN)
    async with running(time_skipping_env, fakes) as client:
        name = f"r{uuid.uuid4().hex[:8]}"
        await client.apply(rds_spec(name))
        await quiet(client, name)
        assert [d.identifiers for d in fakes.described] == [["shop-db-1"]]
        assert fakes.described[0].region == "us-east-1"

        started = await client.deploy(name, DeployInput(app="hello"))
        result = await client.wait_deployment(started.deployment_id)
        assert result.status == DeploymentStatus.SUCCESSFUL
        [run] = fakes.app_runs
        assert run.app is not None and run.app.database is not None
        database = run.app.database
        assert (database.type, database.engine, database.host) == ("rds", "postgres", ENDPOINT)
        assert (database.port, database.database, database.username) == (5432, "shop", "admin")
        assert isinstance(database.password, SecureValue)
        assert decrypt(settings.secret_key(), database.password) == PASSWORD
        assert PASSWORD not in run.model_dump_json()  # what workflow history holds

        # a new instance gets the current release with its database after setup
        await client.add_instance(name, AddInstanceInput(layer="web", hostname="late", start=True))
        await quiet(client, name)
        late = [r for r in fakes.app_runs if r.hostname == "late"]
        assert late and late[0].app is not None and late[0].app.database == database


async def test_an_unknown_rds_instance_fails_the_apply_and_creates_nothing(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = Fakes(FakeCloud(), {})
    async with running(time_skipping_env, fakes) as client:
        name = f"r{uuid.uuid4().hex[:8]}"
        with pytest.raises(OperationFailed) as raised:
            await client.apply(rds_spec(name))
        assert "DBInstanceNotFound" in str(raised.value) and "shop-db-1" in str(raised.value)
        assert raised.value.exit_code == 1
        assert len(fakes.described) == 1  # not retried
        assert fakes.cloud.machines == {}
        with pytest.raises(NotFound):
            await client.describe(name)

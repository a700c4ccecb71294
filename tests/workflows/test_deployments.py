"""App deployments on the time-skipping server with activities replaced: strategies,
health gates, max-failures with compensation, canary gates, history, new instances."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from client.api import OpsflowClient
from opsflow.errors import InvalidInput, NotFound, OperationFailed
from opsflow.messages import (
    AddInstanceInput,
    AppAction,
    AppCommandInput,
    DeployInput,
    DeploymentStatus,
    InstanceDeployStatus,
)
from opsflow.spec import StackSpec
from tests.helpers import quiet
from tests.workflows.fakes import FakeCloud
from tests.workflows.test_stack_workflow import running


def app_spec(name: str, web: int, health: dict[str, Any] | None = None) -> StackSpec:
    app: dict[str, Any] = {"name": "hello", "layers": ["web"], "environment": {"MODE": "prod"}}
    if health:
        app["health_check"] = health
    return StackSpec.model_validate(
        {
            "name": name,
            "cookbooks": {"source": "/cookbooks"},
            "layers": [
                {
                    "name": "web",
                    "auto_healing": False,  # healing loops are tested on their own
                    "recipes": {"setup": ["web::setup"], "deploy": ["app::hello"]},
                    "instances": [{"hostname": f"web{i:02d}"} for i in range(1, web + 1)],
                }
            ],
            "apps": [app],
        }
    )


async def online_stack(client: OpsflowClient, web: int, **kwargs: Any) -> str:
    name = f"d{uuid.uuid4().hex[:8]}"
    await client.apply(app_spec(name, web, **kwargs))
    await quiet(client, name)
    return name


async def test_rolling_deploy_in_batches_records_history_and_current_release(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud()
    async with running(time_skipping_env, cloud) as client:
        name = await online_stack(client, 5)
        started = await client.deploy(
            name, DeployInput(app="hello", strategy="rolling", batch="40%")
        )
        result = await client.wait_deployment(started.deployment_id)
        assert result.status == DeploymentStatus.SUCCESSFUL
        detail = await client.deployment_detail(started.deployment_id)
        assert detail.batches == [["web01", "web02"], ["web03", "web04"], ["web05"]]
        assert all(i.status == InstanceDeployStatus.SUCCESSFUL for i in detail.instances)
        deploys = [host for host, action, _ in cloud.app_runs if action == "deploy"]
        assert deploys[:2] and set(deploys[:2]) == {"web01", "web02"}  # batch 1 went first
        history = await client.deployments(name)
        assert history[0].id == started.deployment_id and history[0].status == "successful"
        assert history[0].app == "hello" and history[0].release is not None

        # a new instance gets the current release after its setup
        await client.add_instance(name, AddInstanceInput(layer="web", hostname="late", start=True))
        await quiet(client, name)
        assert cloud.releases["late"] == [history[0].release]


async def test_the_end_comes_with_the_last_detail_and_a_closed_run_answers_with_its_result(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud()
    async with running(time_skipping_env, cloud) as client:
        name = await online_stack(client, 2)
        cloud.fail_deploy = {"web02"}
        started = await client.deploy(name, DeployInput(app="hello"))
        end = await client.deployment_end(started.deployment_id)  # the `ended` update
        assert end.result.status == DeploymentStatus.ROLLED_BACK  # web01 had changed
        assert end.detail is not None and end.detail.status == DeploymentStatus.ROLLED_BACK
        assert [i.status for i in end.detail.instances] == [InstanceDeployStatus.FAILED] * 2
        assert end.detail.instances == (await client.deployment_detail(end.result.id)).instances
        with pytest.raises(OperationFailed, match="rolled back"):
            await client.wait_deployment(started.deployment_id)
        await client.temporal.get_workflow_handle(started.deployment_id).result()
        closed = await client.deployment_end(started.deployment_id)  # no update: the result
        assert closed.detail is None and closed.result == end.result


async def test_failures_beyond_the_budget_stop_and_roll_back_in_reverse_order(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud()
    async with running(time_skipping_env, cloud) as client:
        name = await online_stack(client, 5)
        first = await client.deploy(name, DeployInput(app="hello"))
        await client.wait_deployment(first.deployment_id)
        cloud.fail_deploy = {"web03"}
        started = await client.deploy(
            name, DeployInput(app="hello", strategy="rolling", batch="2", max_failures="0")
        )
        with pytest.raises(OperationFailed, match="rolled back to their previous release"):
            await client.wait_deployment(started.deployment_id)
        detail = await client.deployment_detail(started.deployment_id)
        statuses = {i.hostname: i.status for i in detail.instances}
        assert statuses == {
            "web01": InstanceDeployStatus.ROLLED_BACK,
            "web02": InstanceDeployStatus.ROLLED_BACK,
            "web03": InstanceDeployStatus.FAILED,
            "web04": InstanceDeployStatus.ROLLED_BACK,  # same batch as web03: it had changed
            "web05": InstanceDeployStatus.PENDING,  # never touched
        }
        rollbacks = [host for host, action, _ in cloud.app_runs if action == "rollback"]
        assert rollbacks == ["web04", "web02", "web01"]  # last changed first
        # every instance is back on the first deployment's release
        release = (await client.deployments(name))[-1].release
        assert {h: r[-1] for h, r in cloud.releases.items()} == dict.fromkeys(
            ["web01", "web02", "web03", "web04", "web05"], release
        )
        assert (await client.deployments(name))[0].status == "rolled_back"


async def test_a_failed_health_check_counts_as_a_failure_and_is_rolled_back(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud()
    async with running(time_skipping_env, cloud) as client:
        name = await online_stack(client, 2, health={"url": "http://{private_ip}:8080/"})
        first = await client.deploy(name, DeployInput(app="hello"))
        await client.wait_deployment(first.deployment_id)
        cloud.unhealthy = {"web02"}
        started = await client.deploy(name, DeployInput(app="hello"))
        with pytest.raises(OperationFailed, match="health check failed after 1 probe"):
            await client.wait_deployment(started.deployment_id)
        assert sorted(h for h, a, _ in cloud.app_runs if a == "rollback") == ["web01", "web02"]
        assert sorted(cloud.health_checks) == ["web01", "web01", "web02", "web02"]


async def test_canary_waits_for_approval_and_abort_rolls_the_canary_back(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud()
    async with running(time_skipping_env, cloud) as client:
        name = await online_stack(client, 3)
        first = await client.deploy(name, DeployInput(app="hello"))
        await client.wait_deployment(first.deployment_id)

        approved = await client.deploy(name, DeployInput(app="hello", strategy="canary"))
        await wait_awaiting(client, approved.deployment_id)
        await client.approve(approved.deployment_id)
        assert (await client.wait_deployment(approved.deployment_id)).status == "successful"
        with pytest.raises(InvalidInput, match="has already finished"):
            await client.approve(approved.deployment_id)

        aborted = await client.deploy(name, DeployInput(app="hello", strategy="canary"))
        await wait_awaiting(client, aborted.deployment_id)
        await client.abort(aborted.deployment_id)
        with pytest.raises(OperationFailed, match="rolled back"):
            await client.wait_deployment(aborted.deployment_id)
        detail = await client.deployment_detail(aborted.deployment_id)
        assert [i.status for i in detail.instances] == [
            InstanceDeployStatus.ROLLED_BACK,
            InstanceDeployStatus.PENDING,
            InstanceDeployStatus.PENDING,
        ]


async def test_canary_with_a_bake_time_goes_on_by_itself(dev_env: WorkflowEnvironment) -> None:
    # A real 2 s bake on the dev server (the time-skipping server's `sleep` was seen to
    # time out late in long runs).
    cloud = FakeCloud()
    async with running(dev_env, cloud) as client:
        name = await online_stack(client, 2)
        started = await client.deploy(
            name, DeployInput(app="hello", strategy="canary", canary_bake_seconds=2)
        )
        await wait_awaiting(client, started.deployment_id)
        result = await client.wait_deployment(started.deployment_id)
        assert result.status == DeploymentStatus.SUCCESSFUL
        assert sorted(cloud.releases) == ["web01", "web02"]


async def test_rollback_and_undeploy_commands_and_bad_requests(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud()
    async with running(time_skipping_env, cloud) as client:
        name = await online_stack(client, 2)
        deployed = []
        for _ in range(2):
            started = await client.deploy(name, DeployInput(app="hello"))
            await client.wait_deployment(started.deployment_id)
            deployed.append((await client.deployments(name))[0].release)
        back = await client.app_command(
            name, AppCommandInput(app="hello", action=AppAction.ROLLBACK)
        )
        await client.wait_deployment(back.deployment_id)
        assert all(len(r) == 1 for r in cloud.releases.values())
        # The stack remembers the rollback: a new instance gets the release rolled back
        # to, not the one rolled away from.
        await client.add_instance(name, AddInstanceInput(layer="web", hostname="late", start=True))
        await quiet(client, name)
        assert cloud.releases["late"] == [deployed[0]] != [deployed[1]]
        gone = await client.app_command(
            name, AppCommandInput(app="hello", action=AppAction.UNDEPLOY)
        )
        await client.wait_deployment(gone.deployment_id)
        assert all(r == [] for r in cloud.releases.values())

        with pytest.raises(NotFound, match="no app 'nope'"):
            await client.deploy(name, DeployInput(app="nope"))
        with pytest.raises(InvalidInput, match="--batch: must be at least 1"):
            await client.deploy(name, DeployInput(app="hello", strategy="rolling", batch="0"))
        with pytest.raises(InvalidInput, match="--max-failures: 150% is more than 100%"):
            await client.deploy(name, DeployInput(app="hello", max_failures="150%"))
        with pytest.raises(InvalidInput, match="--revision: app hello is not deployed from git"):
            await client.deploy(name, DeployInput(app="hello", revision="v2"))
        with pytest.raises(InvalidInput, match="nothing would wait for approval"):
            await client.deploy(name, DeployInput(app="hello", strategy="canary", batch="3"))


async def wait_awaiting(client: OpsflowClient, deployment_id: str) -> None:
    for _ in range(200):
        if (await client.deployment_detail(deployment_id)).awaiting_approval:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{deployment_id} never waited for approval")

"""A command's own custom JSON reaches the run input of every target (run, deploy, app
commands), is kept with the deployment, is not reused by compensation, and a too large
one is refused before anything starts. Time-skipping server, activities faked."""

from __future__ import annotations

import pytest
from temporalio.testing import WorkflowEnvironment

from opsflow import custom_json
from opsflow.errors import InvalidInput, OperationFailed
from opsflow.messages import AppAction, AppCommandInput, DeployInput, RunCommandInput
from tests.workflows.fakes import FakeCloud
from tests.workflows.test_deployments import online_stack
from tests.workflows.test_stack_workflow import running

EXTRA = {"x": {"y": 1}, "shop": {"greeting": "hej"}}


async def test_run_gives_the_custom_json_to_every_target_and_keeps_it(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud()
    async with running(time_skipping_env, cloud) as client:
        name = await online_stack(client, 3)
        before = len(cloud.run_custom_json)
        started = await client.run_command(
            name, RunCommandInput(command="configure", custom_json=EXTRA)
        )
        await client.wait_deployment(started.deployment_id)
        runs = cloud.run_custom_json[before:]
        assert sorted(host for host, _, _ in runs) == ["web01", "web02", "web03"]
        assert all(event == "configure" and extra == EXTRA for _, event, extra in runs)
        assert (await client.deployment_detail(started.deployment_id)).custom_json == EXTRA

        # The next command without it: its runs see none.
        before = len(cloud.run_custom_json)
        plain = await client.run_command(name, RunCommandInput(command="configure"))
        await client.wait_deployment(plain.deployment_id)
        assert {extra is None for _, _, extra in cloud.run_custom_json[before:]} == {True}
        assert (await client.deployment_detail(plain.deployment_id)).custom_json is None


async def test_deploy_and_app_commands_carry_it_but_compensation_does_not(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud()
    async with running(time_skipping_env, cloud) as client:
        name = await online_stack(client, 2)
        first = await client.deploy(name, DeployInput(app="hello"))
        await client.wait_deployment(first.deployment_id)

        before = len(cloud.run_custom_json)
        restart = await client.app_command(
            name, AppCommandInput(app="hello", action=AppAction.RESTART, custom_json=EXTRA)
        )
        await client.wait_deployment(restart.deployment_id)
        assert [extra for _, _, extra in cloud.run_custom_json[before:]] == [EXTRA, EXTRA]

        cloud.fail_deploy = {"web02"}
        before = len(cloud.run_custom_json)
        failing = await client.deploy(name, DeployInput(app="hello", custom_json=EXTRA))
        with pytest.raises(OperationFailed, match="rolled back"):
            await client.wait_deployment(failing.deployment_id)
        runs = cloud.run_custom_json[before:]
        assert sorted((h, e) for h, e, x in runs if x == EXTRA) == [
            ("web01", "deploy"),
            ("web02", "deploy"),
        ]
        assert [(h, e, x) for h, e, x in runs if e == "rollback"] == [("web01", "rollback", None)]
        assert (await client.deployment_detail(failing.deployment_id)).custom_json == EXTRA


async def test_a_custom_json_over_the_limit_is_refused_before_anything_starts(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud()
    async with running(time_skipping_env, cloud) as client:
        name = await online_stack(client, 1)
        before = len(cloud.runs)
        huge = {"k": "a" * custom_json.MAX_BYTES}
        with pytest.raises(InvalidInput, match=r"--custom-json: .* over the limit"):
            await client.run_command(name, RunCommandInput(command="configure", custom_json=huge))
        with pytest.raises(InvalidInput, match=r"--custom-json: .* over the limit"):
            await client.deploy(name, DeployInput(app="hello", custom_json=huge))
        assert len(cloud.runs) == before
        assert await client.deployments(name) == []

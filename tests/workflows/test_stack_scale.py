"""What large stacks need of the stack workflow: an instance whose workflow has already
ended (deleted, its report of that not yet read; or ended by hand) no longer fails a
delete or a configure round (a signal to it failed the delete update, or the whole stack
workflow, before); runs read configuration snapshots, published once per burst."""

from __future__ import annotations

from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from opsflow import names
from opsflow.messages import InstanceActionKind, RunCommandInput
from opsflow.status import InstanceStatus
from tests.helpers import quiet
from tests.workflows.fakes import FakeCloud
from tests.workflows.test_stack_workflow import make_spec, running, stack_name


async def test_delete_stack_with_an_instance_workflow_that_has_ended(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud()
    async with running(time_skipping_env, cloud) as client:
        name = stack_name()
        await client.apply(make_spec(name, web=2, db=0))
        await quiet(client, name)
        ended = client.temporal.get_workflow_handle(names.instance_workflow_id(name, "web2"))
        await ended.terminate("gone behind the stack's back")
        result = await client.delete_stack(name)
        assert result.instances == ["web1", "web2"]
        await client.wait_stack_deleted(name, timeout=60)
        stack = client.temporal.get_workflow_handle(names.stack_workflow_id(name))
        assert (await stack.describe()).status == WorkflowExecutionStatus.COMPLETED
        assert cloud.machines["web1"] == "gone"
        # The shutdown run read a snapshot, not a query.
        shutdowns = [d for _, event, d in cloud.run_snapshots if event == "shutdown"]
        assert shutdowns and None not in shutdowns


async def test_configure_round_skips_an_instance_workflow_that_has_ended(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud()
    async with running(time_skipping_env, cloud) as client:
        name = stack_name()
        await client.apply(make_spec(name, web=3, db=0))
        await quiet(client, name)
        ended = client.temporal.get_workflow_handle(names.instance_workflow_id(name, "web3"))
        await ended.terminate("gone behind the stack's back")
        before = len(cloud.events_for("configure"))
        # web1 leaves online: a configure round goes to web2 and to web3, which has ended.
        await client.instance_action(name, "web1", InstanceActionKind.STOP)
        found = await quiet(client, name)
        assert {v.hostname: v.status for v in found.instances} == {
            "web1": InstanceStatus.STOPPED,
            "web2": InstanceStatus.ONLINE,
        }
        # web2 is told (twice: web1 left, then web3 was found gone); nothing reaches web3.
        assert set(cloud.events_for("configure")[before:]) == {"web2"}
        assert any("web3" in e.message and "ended" in e.message for e in found.events)
        stack = client.temporal.get_workflow_handle(names.stack_workflow_id(name))
        assert (await stack.describe()).status == WorkflowExecutionStatus.RUNNING


async def test_runs_read_the_snapshot_of_their_generation_published_once_per_burst(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud()
    async with running(time_skipping_env, cloud) as client:
        name = stack_name()
        await client.apply(make_spec(name, web=3, db=0))
        found = await quiet(client, name)
        # One publish for the apply's starts, one per configure round after them (three
        # instances coming online together are one round), nothing per run.
        assert found.configure_rounds >= 1
        assert len(cloud.snapshots) == 1 + found.configure_rounds, cloud.snapshots
        assert cloud.snapshots == sorted(set(cloud.snapshots))  # each a newer generation
        setups = {d for _, event, d in cloud.run_snapshots if event == "setup"}
        configures = [d for _, event, d in cloud.run_snapshots if event == "configure"]
        assert setups == {f"snap{cloud.snapshots[0]}"}
        assert set(configures) <= {f"snap{g}" for g in cloud.snapshots[1:]}
        assert configures[-1] == f"snap{cloud.snapshots[-1]}"


async def test_a_deployment_and_its_runs_carry_a_snapshot_of_now(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud()
    async with running(time_skipping_env, cloud) as client:
        name = stack_name()
        await client.apply(make_spec(name, web=2, db=0))
        await quiet(client, name)
        published = len(cloud.snapshots)
        started = await client.run_command(
            name, RunCommandInput(command="update_custom_cookbooks", layer="web")
        )
        await client.wait_deployment(started.deployment_id)
        # The cookbooks were fetched again: a new generation, published for these runs.
        assert len(cloud.snapshots) == published + 1
        runs = [d for _, event, d in cloud.run_snapshots[-2:]]
        assert runs == [f"snap{cloud.snapshots[-1]}"] * 2

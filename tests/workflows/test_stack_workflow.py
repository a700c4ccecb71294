"""Stack, instance and deployment orchestration on the time-skipping server, activities faked."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from client.api import OpsflowClient, gone
from opsflow import names
from opsflow.errors import InvalidInput, NotFound, OperationFailed
from opsflow.messages import (
    AddInstanceInput,
    ConfigurationQuery,
    InstanceActionKind,
    InstanceView,
    RunCommandInput,
    RunContext,
)
from opsflow.spec import StackInstanceSpec, StackSpec, UserSpec
from opsflow.status import InstanceStatus
from tests.helpers import quiet
from tests.workflows.fakes import FakeCloud
from workflows import handlers
from workflows.deployment import DeploymentWorkflow
from workflows.instance import InstanceWorkflow
from workflows.stack import StackWorkflow


def make_spec(
    name: str, web: int = 2, db: int = 1, provider: str = "local", auto_healing: bool = False
) -> StackSpec:
    """Healing loops are off unless asked for: they are tested on their own."""
    recipes = {"setup": ["web::setup"], "configure": ["web::configure"], "shutdown": ["web::down"]}
    return StackSpec.model_validate(
        {
            "name": name,
            "provider": provider,
            "cookbooks": {"source": "/cookbooks"},
            "layers": [
                {
                    "name": "web",
                    "auto_healing": auto_healing,
                    "recipes": recipes,
                    "instances": [{"hostname": f"web{i}"} for i in range(1, web + 1)],
                },
                {
                    "name": "db",
                    "auto_healing": auto_healing,
                    "recipes": {"setup": ["db::setup"]},
                    "instances": [{"hostname": f"db{i}"} for i in range(1, db + 1)],
                },
            ],
        }
    )


@asynccontextmanager
async def running(env: WorkflowEnvironment, cloud: FakeCloud) -> AsyncIterator[OpsflowClient]:
    queue = f"test-{uuid.uuid4().hex[:8]}"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[StackWorkflow, InstanceWorkflow, DeploymentWorkflow],
        activities=cloud.activities(),
    ):
        yield OpsflowClient(env.client, task_queue=queue, tag_runs=False)


def stack_name() -> str:
    return f"s{uuid.uuid4().hex[:8]}"


async def test_apply_brings_instances_online_with_setup_then_one_configure_round(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud()
    async with running(time_skipping_env, cloud) as client:
        name = stack_name()
        result = await client.apply(make_spec(name))
        assert sorted(result.started) == ["db1", "web1", "web2"]
        found = await quiet(client, name)
        assert {v.hostname: v.status for v in found.instances} == {
            "db1": InstanceStatus.ONLINE,
            "web1": InstanceStatus.ONLINE,
            "web2": InstanceStatus.ONLINE,
        }
        assert sorted(cloud.events_for("setup")) == ["db1", "web1", "web2"]
        # Three instances came online together: configure ran once on each, not three times.
        assert sorted(cloud.events_for("configure")) == ["db1", "web1", "web2"]
        assert found.configure_rounds == 1
        assert all(v.ssh is not None and v.root for v in found.instances)
        # The machine's facts from its launch, for the stack configuration.
        assert all(v.private_dns_name == v.hostname for v in found.instances)
        # The launch's moment, where the provider knows none (OpsWorks' created_at, booted_at).
        assert all(v.created_at and v.booted_at for v in found.instances)
        assert {v.architecture for v in found.instances} == {"x86_64"}


async def test_five_instances_starting_at_once_do_not_run_25_configures(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud(recipe_seconds=0.2)
    async with running(time_skipping_env, cloud) as client:
        name = stack_name()
        await client.apply(make_spec(name, web=5, db=0))
        found = await quiet(client, name)
        assert all(v.status == InstanceStatus.ONLINE for v in found.instances)
        configures = cloud.events_for("configure")
        assert len(configures) <= 10, configures  # at most two rounds over five instances
        assert set(configures) == {f"web{i}" for i in range(1, 6)}


async def test_setup_failure_leaves_setup_failed_with_the_recipe_message(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud(fail_setup={"web2"})
    async with running(time_skipping_env, cloud) as client:
        name = stack_name()
        await client.apply(make_spec(name))
        found = await quiet(client, name)
        views = {v.hostname: v for v in found.instances}
        assert views["web2"].status == InstanceStatus.SETUP_FAILED
        assert "web::setup failed with exit code 3" in (views["web2"].message or "")
        assert views["web1"].status == InstanceStatus.ONLINE
        assert "web2" not in cloud.events_for("configure")
        assert await client.last_log_tail(name, "web2") == "line 1\nboom"


async def test_stop_runs_shutdown_stops_the_machine_and_reconfigures_the_rest(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud()
    async with running(time_skipping_env, cloud) as client:
        name = stack_name()
        await client.apply(make_spec(name))
        await quiet(client, name)
        before = len(cloud.events_for("configure"))
        await client.instance_action(name, "web1", InstanceActionKind.STOP)
        found = await client.wait_instances(
            name, lambda v: v is not None and v.status == InstanceStatus.STOPPED, ["web1"]
        )
        found = await quiet(client, name)
        assert cloud.events_for("shutdown") == ["web1"]
        assert cloud.machines["web1"] == "stopped"
        after = cloud.events_for("configure")[before:]
        assert sorted(after) == ["db1", "web2"]  # web1 left online: the others reconfigure
        assert found.configure_rounds == 2


async def test_run_configure_on_a_layer_reports_each_instance(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud()
    async with running(time_skipping_env, cloud) as client:
        name = stack_name()
        await client.apply(make_spec(name))
        await quiet(client, name)
        started = await client.run_command(name, RunCommandInput(command="configure", layer="web"))
        assert started.targets == ["web1", "web2"]
        result = await client.wait_deployment(started.deployment_id)
        assert [r.hostname for r in result.instances] == ["web1", "web2"]
        assert all(r.ok and not r.skipped for r in result.instances)


async def test_added_instance_then_delete_stack_terminates_everything(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud()
    async with running(time_skipping_env, cloud) as client:
        name = stack_name()
        await client.apply(make_spec(name, web=1, db=0))
        await client.add_instance(name, AddInstanceInput(layer="web", hostname="extra", start=True))
        found = await quiet(client, name)
        assert {v.hostname: v.from_file for v in found.instances} == {"web1": True, "extra": False}
        await client.delete_stack(name)
        await client.wait_stack_deleted(name, timeout=60)
        assert cloud.machines == {"web1": "gone", "extra": "gone"}
        assert sorted(cloud.events_for("shutdown")) == ["extra", "web1"]
        with pytest.raises(NotFound):
            await client.describe(name)


async def test_reapply_without_an_instance_deletes_it_and_keeps_cli_added_ones(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud()
    async with running(time_skipping_env, cloud) as client:
        name = stack_name()
        await client.apply(make_spec(name, web=2, db=0))
        await client.add_instance(name, AddInstanceInput(layer="web", hostname="extra"))
        await quiet(client, name)
        result = await client.apply(make_spec(name, web=1, db=0))
        assert result.stopping == ["web2"]
        found = await client.wait_instances(name, gone, ["web2"])
        assert sorted(v.hostname for v in found.instances) == ["extra", "web1"]
        assert cloud.machines["web2"] == "gone"


async def test_bad_requests_are_refused_by_validators(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud()
    async with running(time_skipping_env, cloud) as client:
        name = stack_name()
        await client.apply(make_spec(name, web=1, db=0))
        await quiet(client, name)
        moved = make_spec(name, web=0, db=0)
        moved.layers[1].instances = make_spec(name, web=1).layers[0].instances
        with pytest.raises(InvalidInput, match="stop web1 first to change its layers"):
            await client.apply(moved)
        with pytest.raises(NotFound, match="no layer 'cache'"):
            await client.add_instance(name, AddInstanceInput(layer="cache", hostname="c1"))
        with pytest.raises(InvalidInput, match="already has an instance 'web1'"):
            await client.add_instance(name, AddInstanceInput(layer="web", hostname="web1"))
        with pytest.raises(NotFound, match="no instance 'nope'"):
            await client.instance_action(name, "nope", InstanceActionKind.STOP)
        with pytest.raises(InvalidInput, match="only a stopped or failed instance"):
            await client.instance_action(name, "web1", InstanceActionKind.START)
        with pytest.raises(InvalidInput, match="no online instance in layer db"):
            await client.run_command(name, RunCommandInput(command="setup", layer="db"))
        with pytest.raises(NotFound, match="no stack named"):
            await client.describe("does-not-exist")
        # Nothing refused above reached an instance.
        assert cloud.events_for("setup") == ["web1"]


async def test_long_histories_continue_as_new_keeping_all_state(
    dev_env: WorkflowEnvironment,
) -> None:
    # On the real dev server: the time-skipping test server intermittently left queries
    # to a workflow that continues as new every few dozen events unanswered.
    time_skipping_env = dev_env
    cloud = FakeCloud()
    async with running(time_skipping_env, cloud) as client:
        name = stack_name()
        stack_id = names.stack_workflow_id(name)
        client.max_history_events = 40
        await client.apply(make_spec(name, web=2, db=0))
        stack = time_skipping_env.client.get_workflow_handle(stack_id)
        first_run = (await stack.describe()).run_id
        # Both instances usually come online within one quiet period (one configure
        # round), but a loaded machine may take two: count what happened before the
        # history grows, and check that none of it is lost by continue-as-new.
        settled = await quiet(client, name)
        runs_before = len((await client.instance_state(name, "web1")).runs)
        for _ in range(3):
            started = await client.run_command(name, RunCommandInput(command="configure"))
            await client.wait_deployment(started.deployment_id)
        found = await quiet(client, name)
        for _ in range(100):
            if (await stack.describe()).run_id != first_run:
                break
            await asyncio.sleep(0.1)
        assert (await stack.describe()).run_id != first_run  # continued as new
        web1 = time_skipping_env.client.get_workflow_handle(
            names.instance_workflow_id(name, "web1")
        )
        # The instance continues as new once its queue is empty: it may be a moment later.
        for _ in range(100):
            history = await web1.fetch_history()
            started_by = history.events[0].workflow_execution_started_event_attributes
            if started_by.continued_execution_run_id:
                break
            await asyncio.sleep(0.1)
        assert started_by.continued_execution_run_id  # the instance continued as new too
        # ...and nothing it knew was lost on the way
        assert [v.status for v in found.instances] == [InstanceStatus.ONLINE] * 2
        assert found.configure_rounds == settled.configure_rounds >= 1
        assert found.spec.name == name
        assert any(e.kind == "applied" for e in found.events)
        # setup and the automatic configure runs, then the 3 configure commands
        assert runs_before >= 2
        assert len((await client.instance_state(name, "web1")).runs) == runs_before + 3


async def test_apply_refuses_recipes_the_fetched_cookbooks_lack_and_starts_nothing(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud(recipes={"web::setup"})
    async with running(time_skipping_env, cloud) as client:
        name = stack_name()
        with pytest.raises(InvalidInput, match="recipe 'web::configure' does not exist"):
            await client.apply(make_spec(name))
        assert cloud.fetches == 1 and cloud.machines == {}
        with pytest.raises(NotFound, match=f"no stack named {name}"):
            await client.describe(name)
        # the refused first apply left no workflow running behind
        handle = time_skipping_env.client.get_workflow_handle(names.stack_workflow_id(name))
        assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED


async def test_execute_recipes_runs_the_named_recipes_in_order_on_the_targets(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud()
    async with running(time_skipping_env, cloud) as client:
        name = stack_name()
        await client.apply(make_spec(name))
        await quiet(client, name)
        request = RunCommandInput(
            command="execute_recipes", instance="web2", recipes=["app::hello", "web::setup"]
        )
        result = await client.wait_deployment(
            (await client.run_command(name, request)).deployment_id
        )
        assert [r.hostname for r in result.instances] == ["web2"]
        assert cloud.explicit == [("web2", ["app::hello", "web::setup"])]
        assert cloud.events_for("execute_recipes") == ["web2"]
        for bad, message in (
            ([], "execute_recipes needs --recipes"),
            (["nope::missing"], "nope::missing not in the stack's cookbooks"),
            (["a;b"], "are not cookbook::recipe names"),
        ):
            with pytest.raises(InvalidInput, match=message):
                await client.run_command(
                    name, RunCommandInput(command="execute_recipes", recipes=bad)
                )
        with pytest.raises(InvalidInput, match="--recipes goes with execute_recipes"):
            await client.run_command(
                name, RunCommandInput(command="configure", recipes=["app::hello"])
            )


async def test_update_custom_cookbooks_refetches_then_stages_everywhere(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud()
    async with running(time_skipping_env, cloud) as client:
        name = stack_name()
        await client.apply(make_spec(name))
        await quiet(client, name)
        assert cloud.fetches == 1
        started = await client.run_command(name, RunCommandInput(command="update_custom_cookbooks"))
        await client.wait_deployment(started.deployment_id)
        assert cloud.fetches == 2
        assert sorted(cloud.stage_only_runs) == ["db1", "web1", "web2"]


async def test_cancelling_a_deployment_cancels_the_runs_and_reports_cancelled(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud()
    async with running(time_skipping_env, cloud) as client:
        name = stack_name()
        await client.apply(make_spec(name, web=2, db=0))
        await quiet(client, name)
        cloud.recipe_seconds = 60
        started = await client.run_command(name, RunCommandInput(command="configure"))
        await asyncio.sleep(1)  # both configure runs are in flight
        await client.cancel_deployment(started.deployment_id)
        with pytest.raises(OperationFailed, match="configure was cancelled") as failed:
            await client.wait_deployment(started.deployment_id)
        assert "web1: cancelled" in str(failed.value) and "web2: cancelled" in str(failed.value)
        cloud.recipe_seconds = 0
        states = [await client.instance_state(name, h) for h in ("web1", "web2")]
        assert all(s.runs[-1].cancelled and s.current is None for s in states)
        found = await client.describe(name)
        assert all(v.status == InstanceStatus.ONLINE for v in found.instances)


async def recipes_of(client: OpsflowClient, name: str, view: InstanceView, event: str) -> list[str]:
    """The recipes a run of `event` on the instance as `view` shows it executes."""
    handle = client.temporal.get_workflow_handle(names.stack_workflow_id(name))
    query = ConfigurationQuery(hostname=view.hostname, event=event, instance=view)
    context: RunContext = await handle.query(handlers.RUN_CONTEXT, query, result_type=RunContext)
    return context.recipes


async def test_an_instance_in_two_layers_runs_both_layers_setup_in_order_and_configures_once(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud()
    async with running(time_skipping_env, cloud) as client:
        name = stack_name()
        spec = make_spec(name, web=1, db=0)
        spec.instances = [StackInstanceSpec(hostname="both1", layers=["web", "db"])]
        spec = StackSpec.model_validate(spec.model_dump())
        await client.apply(spec)
        found = await quiet(client, name)
        both = next(v for v in found.instances if v.hostname == "both1")
        assert both.layers == ["web", "db"] and both.status == InstanceStatus.ONLINE
        # One setup run, as a member of both layers: web's recipes, then db's.
        assert cloud.events_for("setup").count("both1") == 1
        assert ("both1", "setup", ["web", "db"]) in cloud.run_layers
        assert await recipes_of(client, name, both, "setup") == ["web::setup", "db::setup"]
        # Configure fan-out counts it once (one round, one run on it).
        assert found.configure_rounds == 1
        assert cloud.events_for("configure").count("both1") == 1
        # `instance add` with two layers, and a layer named twice refused.
        added = await client.add_instance(
            name, AddInstanceInput(layers=["db", "web"], hostname="added1", start=True)
        )
        assert added.layers == ["db", "web"]
        with pytest.raises(InvalidInput, match="layer 'web' is named twice"):
            await client.add_instance(
                name, AddInstanceInput(layers=["web", "web"], hostname="added2")
            )
        found = await quiet(client, name)
        added = next(v for v in found.instances if v.hostname == "added1")
        assert await recipes_of(client, name, added, "setup") == ["db::setup", "web::setup"]


async def test_a_stopped_instance_changes_layers_on_apply_and_a_running_one_is_refused(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud()
    async with running(time_skipping_env, cloud) as client:
        name = stack_name()
        await client.apply(make_spec(name, web=2, db=0))
        await quiet(client, name)
        # web1 is online: its layers cannot change.
        both = make_spec(name, web=0, db=0)
        both.instances = [
            StackInstanceSpec(hostname="web1", layers=["web", "db"]),
            StackInstanceSpec(hostname="web2", layers=["web"]),
        ]
        both = StackSpec.model_validate(both.model_dump())
        with pytest.raises(InvalidInput, match="stop web1 first to change its layers"):
            await client.apply(both)
        await client.instance_action(name, "web1", InstanceActionKind.STOP)
        await client.wait_instances(
            name, lambda v: v is not None and v.status == InstanceStatus.STOPPED, ["web1"]
        )
        assert "change instance web1 layers web -> web, db" in await client.plan(both)
        result = await client.apply(both)
        assert result.started == ["web1"]
        found = await quiet(client, name)
        web1 = next(v for v in found.instances if v.hostname == "web1")
        assert web1.layers == ["web", "db"] and web1.status == InstanceStatus.ONLINE
        # Its new setup ran as a member of both layers.
        assert [layers for h, e, layers in cloud.run_layers if h == "web1" and e == "setup"] == [
            ["web"],
            ["web", "db"],
        ]
        assert (await client.plan(both)) == []


async def test_an_apply_that_changes_users_runs_a_configure_round_and_one_that_does_not_none(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """Users converge on configure: an apply that changes them converges them now."""
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJfbgLJp1DHYWFqDFSaOZ7zvrxVtSL5tKB0rAJvxgDZ1 a@b"
    cloud = FakeCloud()
    async with running(time_skipping_env, cloud) as client:
        name = stack_name()
        spec = make_spec(name, web=1, db=0)
        await client.apply(spec)
        settled = await quiet(client, name)
        assert settled.configure_rounds == 1
        await client.apply(spec)  # the same file: nothing to converge
        again = await quiet(client, name)
        assert again.configure_rounds == 1
        with_users = spec.model_copy(update={"users": [UserSpec(name="alice", ssh_public_key=key)]})
        result = await client.apply(with_users)
        assert result.changes == ["add user alice"]
        found = await quiet(client, name)
        assert found.configure_rounds == 2
        assert cloud.events_for("configure") == ["web1", "web1"]

"""Record the histories the replay test checks new workflow code against.

Run after a deliberate, compatible change to regenerate (never to silence a failure that
means running workflows would break):

    .venv/bin/python -m tests.workflows.record_histories
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from client.api import OpsflowClient
from opsflow import names
from opsflow.errors import NotFound
from opsflow.messages import DeployInput, InstanceActionKind, RunCommandInput
from opsflow.spec import AppSpec
from tests.conftest import binary, start_time_skipping
from tests.helpers import quiet
from tests.workflows.fakes import FakeCloud
from tests.workflows.test_healing import kinds
from tests.workflows.test_healing import spec as healing_spec
from tests.workflows.test_stack_workflow import make_spec
from workflows.common import SEARCH_ATTRIBUTES
from workflows.deployment import DeploymentWorkflow
from workflows.healing import LayerHealingWorkflow
from workflows.instance import InstanceWorkflow
from workflows.stack import StackWorkflow

HISTORIES = Path(__file__).parent / "histories"
QUEUE = "record"


async def scenario(client: Client) -> list[str]:
    """A stack's whole life: apply, a failed setup, configure rounds, a command, a stop,
    a delete. Returns the workflow ids whose histories are kept."""
    ops = OpsflowClient(client, task_queue=QUEUE, tag_runs=False)
    spec = make_spec("replay", web=2, db=1)
    spec.apps = [AppSpec(name="hello", layers=["web"])]
    await ops.apply(spec)
    await quiet(ops, "replay")
    started = await ops.run_command("replay", RunCommandInput(command="configure", layer="web"))
    await ops.wait_deployment(started.deployment_id)
    deployed = await ops.deploy(
        "replay", DeployInput(app="hello", strategy="rolling", batch="1", max_failures="1")
    )
    await ops.wait_deployment(deployed.deployment_id)
    await ops.instance_action("replay", "web2", InstanceActionKind.STOP)
    await quiet(ops, "replay")
    await ops.delete_stack("replay")
    await ops.wait_stack_deleted("replay", timeout=60)
    return [
        names.stack_workflow_id("replay"),
        names.instance_workflow_id("replay", "web1"),
        names.instance_workflow_id("replay", "web2"),
        names.instance_workflow_id("replay", "db1"),
        started.deployment_id,
        deployed.deployment_id,
    ]


async def healing_scenario(env: WorkflowEnvironment, cloud: FakeCloud) -> list[str]:
    """A layer's healing loop: an instance dies, is replaced, then healing is turned off."""
    ops = OpsflowClient(env.client, task_queue=QUEUE, tag_runs=False)
    await ops.apply(healing_spec("replayheal", web=2, interval="1s"))
    await quiet(ops, "replayheal")
    cloud.dead.add("web2")
    for _ in range(60):
        if "healed" in kinds(await ops.describe("replayheal"), "web2"):
            break
        await env.sleep(1)
    else:
        raise RuntimeError("web2 was not healed")
    await quiet(ops, "replayheal")
    await ops.apply(healing_spec("replayheal", web=2, interval="1s", on=False))
    loop = names.healing_workflow_id("replayheal", "web")
    await env.client.get_workflow_handle(loop).result()
    return [
        names.stack_workflow_id("replayheal"),
        names.instance_workflow_id("replayheal", "web2"),
        loop,
    ]


async def settle(ops: OpsflowClient, stack: str) -> None:
    """`quiet`, across the moment a run has closed and the next not yet begun (a query
    then finds no open run)."""
    for _ in range(20):
        try:
            await quiet(ops, stack)
            return
        except NotFound:
            await asyncio.sleep(0.2)
    raise RuntimeError(f"stack {stack} stayed gone")


async def continued_scenario(env: WorkflowEnvironment) -> list[str]:
    """A stack that continued as new (its input the whole state of the run before), then
    deployed, stopped an instance and was deleted: later code must load that input.

    The committed stack_replaycan.json was recorded before StackState was nested: its input
    is the old flat state, which is what it proves still loads. Keep that file when
    regenerating the others (tests/opsflow/test_state.py checks it is still flat)."""
    ops = OpsflowClient(env.client, task_queue=QUEUE, tag_runs=False, max_history_events=40)
    spec = make_spec("replaycan", web=2, db=0)
    spec.apps = [AppSpec(name="hello", layers=["web"])]
    await ops.apply(spec)
    await settle(ops, "replaycan")
    stack = env.client.get_workflow_handle(names.stack_workflow_id("replaycan"))
    first_run = (await stack.describe()).run_id
    for _ in range(10):
        started = await ops.run_command("replaycan", RunCommandInput(command="configure"))
        await ops.wait_deployment(started.deployment_id)
        await settle(ops, "replaycan")
        if (await stack.describe()).run_id != first_run:
            break
    else:
        raise RuntimeError("the stack did not continue as new")
    deployed = await ops.deploy("replaycan", DeployInput(app="hello"))
    await ops.wait_deployment(deployed.deployment_id)
    await ops.instance_action("replaycan", "web2", InstanceActionKind.STOP)
    await settle(ops, "replaycan")
    await ops.delete_stack("replaycan")
    await ops.wait_stack_deleted("replaycan", timeout=60)
    return [names.stack_workflow_id("replaycan")]


async def main() -> None:
    env = await start_time_skipping()
    try:
        cloud = FakeCloud(fail_setup={"db1"}, client=env.client)
        async with Worker(
            env.client,
            task_queue=QUEUE,
            workflows=[StackWorkflow, InstanceWorkflow, DeploymentWorkflow, LayerHealingWorkflow],
            activities=cloud.activities(),
        ):
            workflow_ids = await scenario(env.client)
            workflow_ids += await healing_scenario(env, cloud)
        await write(env.client, workflow_ids)
    finally:
        await env.shutdown()
    # On the real dev server: the time-skipping one leaves queries to a workflow that
    # continues as new every few dozen events unanswered now and then.
    dev = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=binary("temporal"),
        search_attributes=SEARCH_ATTRIBUTES,
    )
    try:
        async with Worker(
            dev.client,
            task_queue=QUEUE,
            workflows=[StackWorkflow, InstanceWorkflow, DeploymentWorkflow],
            activities=FakeCloud(client=dev.client).activities(),
        ):
            await write(dev.client, await continued_scenario(dev))
    finally:
        await dev.shutdown()


async def write(client: Client, workflow_ids: list[str]) -> None:
    HISTORIES.mkdir(exist_ok=True)
    for workflow_id in workflow_ids:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        target = HISTORIES / f"{workflow_id.replace(':', '_')}.json"
        target.write_text(history.to_json())
        print(f"wrote {target} ({len(history.events)} events)")


if __name__ == "__main__":
    asyncio.run(main())

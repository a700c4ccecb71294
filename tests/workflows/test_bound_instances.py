"""Local instances bound to the worker that launched them, on the time-skipping server with
fake activities: three workers (the shared queue, and two workers' own queues), each
recording where it ran what; a worker that stops polling for good is found gone.

The time-skipping server does not skip time while an activity task waits for a worker, so
the gone tests shorten WORKER_GONE_TIMEOUT (the one constant every such wait uses; the
workflows run unsandboxed here so they see the patched module)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, Worker

from activities import names as activity
from client.api import OpsflowClient
from opsflow import names
from opsflow.errors import OperationFailed
from opsflow.messages import DeployInput, InstanceActionKind
from opsflow.settings import worker_queue
from opsflow.status import InstanceStatus
from tests.helpers import quiet
from tests.workflows.fakes import FakeCloud
from tests.workflows.test_healing import kinds, spec, status, until
from tests.workflows.test_scaling import LOAD
from tests.workflows.test_scaling import spec as scaling_spec
from workflows import common
from workflows.deployment import DeploymentWorkflow
from workflows.healing import LayerHealingWorkflow
from workflows.instance import InstanceWorkflow
from workflows.scaling import LoadScalingWorkflow
from workflows.stack import StackWorkflow

GONE_AFTER = timedelta(seconds=10)
GONE = "is gone: nothing has run its tasks for 10s"


@pytest.fixture
def short_gone_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "WORKER_GONE_TIMEOUT", GONE_AFTER)


@dataclass
class Cluster:
    client: OpsflowClient
    shared: str
    own: dict[str, str]  # worker id -> its own queue
    workers: dict[str, AsyncExitStack]  # worker id -> its own queue's worker, to stop


@asynccontextmanager
async def cluster(env: WorkflowEnvironment, cloud: FakeCloud) -> AsyncIterator[Cluster]:
    """The shared queue's worker (every workflow), and workers `a` and `b` on their own."""
    shared = f"bound-{uuid.uuid4().hex[:8]}"
    cloud.client = env.client
    own = {w: worker_queue(shared, w) for w in ("a", "b")}
    async with AsyncExitStack() as outer:
        await outer.enter_async_context(
            Worker(
                env.client,
                task_queue=shared,
                workflows=[
                    StackWorkflow,
                    InstanceWorkflow,
                    DeploymentWorkflow,
                    LayerHealingWorkflow,
                    LoadScalingWorkflow,
                ],
                activities=cloud.activities(),
                workflow_runner=UnsandboxedWorkflowRunner(),
            )
        )
        workers: dict[str, AsyncExitStack] = {}
        for worker, queue in own.items():
            stack = await outer.enter_async_context(AsyncExitStack())
            await stack.enter_async_context(
                Worker(env.client, task_queue=queue, activities=cloud.activities())
            )
            workers[worker] = stack
        yield Cluster(
            OpsflowClient(env.client, task_queue=shared, tag_runs=False), shared, own, workers
        )


async def test_each_local_instance_runs_everything_on_the_worker_that_launched_it(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env, cloud = time_skipping_env, FakeCloud()
    async with cluster(env, cloud) as c:
        cloud.binding = {"web1": c.own["a"], "web2": c.own["b"]}
        name = f"b{uuid.uuid4().hex[:8]}"
        await c.client.apply(spec(name, web=3))
        found = await quiet(c.client, name)
        bound = {v.hostname: v.task_queue for v in found.instances}
        assert bound == {"web1": c.own["a"], "web2": c.own["b"], "web3": None}
        deployed = await c.client.deploy(name, DeployInput(app="hello"))
        await c.client.wait_deployment(deployed.deployment_id)
        await until(
            env, c.client, name, lambda d: bool(cloud.queues_of(activity.PROBE_LAYER, "web2"))
        )
        await c.client.instance_action(name, "web1", InstanceActionKind.STOP)
        await until(env, c.client, name, lambda d: status(d, "web1") == InstanceStatus.STOPPED)

        # The launch goes to the shared queue (any worker); all else to the instance's own.
        for host in ("web1", "web2", "web3"):
            assert cloud.queues_of(activity.LAUNCH_INSTANCE, host) == {c.shared}
        assert cloud.queues_of(activity.RUN_RECIPES, "web1") == {c.own["a"]}
        assert cloud.queues_of(activity.RUN_RECIPES, "web2") == {c.own["b"]}
        assert cloud.queues_of(activity.RUN_RECIPES, "web3") == {c.shared}
        assert cloud.queues_of(activity.STOP_INSTANCE, "web1") == {c.own["a"]}
        assert cloud.queues_of(activity.PROBE_LAYER, "web2") == {c.own["b"]}
        assert cloud.queues_of(activity.PROBE_LAYER, "web3") == {c.shared}
        events = {e for _, e in [r for r in cloud.runs if r[0] == "web2"]}
        assert {"setup", "deploy", "configure"} <= events

        # Started again, a stopped instance comes back on its worker (its files are there).
        await c.client.instance_action(name, "web1", InstanceActionKind.START)
        await until(env, c.client, name, lambda d: status(d, "web1") == InstanceStatus.ONLINE)
        assert cloud.queues_of(activity.LAUNCH_INSTANCE, "web1") == {c.shared, c.own["a"]}

        # What these runs recorded replays (sandboxed): the routing is deterministic.
        replayer = Replayer(
            workflows=[InstanceWorkflow, LayerHealingWorkflow],
            data_converter=pydantic_data_converter,
        )
        for workflow_id in [
            *(names.instance_workflow_id(name, h) for h in ("web1", "web2")),
            names.healing_workflow_id(name, "web"),
        ]:
            history = await env.client.get_workflow_handle(workflow_id).fetch_history()
            await replayer.replay_workflow(history)


async def test_a_gone_worker_makes_its_instances_lost_and_healing_replaces_them_elsewhere(
    time_skipping_env: WorkflowEnvironment, short_gone_timeout: None
) -> None:
    env, cloud = time_skipping_env, FakeCloud()
    async with cluster(env, cloud) as c:
        cloud.binding = {"web1": c.own["a"], "web2": c.own["b"]}
        name = f"b{uuid.uuid4().hex[:8]}"
        await c.client.apply(spec(name, web=2))
        await quiet(c.client, name)
        await until(
            env, c.client, name, lambda d: bool(cloud.queues_of(activity.PROBE_LAYER, "web2"))
        )
        await c.workers["b"].aclose()  # worker b is gone for good
        cloud.binding["web2"] = c.own["a"]  # whoever launches a new machine, it is a's
        healed = await until(env, c.client, name, lambda d: "healed" in kinds(d, "web2"), 600)

        assert kinds(healed, "web2") == ["health_detected", "heal_started", "healed"]
        detected = next(e for e in healed.events if e.kind == "health_detected")
        assert f"worker {c.own['b']} {GONE}" in detected.message
        transitions = [e.message for e in healed.events if e.kind == "instance_status"]
        assert f"web2: online -> connection_lost ({detected.message})" in transitions
        view = next(v for v in healed.instances if v.hostname == "web2")
        assert view.status == InstanceStatus.ONLINE and view.task_queue == c.own["a"]
        # Its old machine went with its worker: nothing waited to terminate it; the new
        # one was launched on the shared queue and set up on worker a.
        assert cloud.queues_of(activity.TERMINATE_INSTANCE, "web2") == set()
        assert cloud.queues_of(activity.LAUNCH_INSTANCE, "web2") == {c.shared}
        assert cloud.queues_of(activity.RUN_RECIPES, "web2") == {c.own["a"], c.own["b"]}
        assert kinds(healed, "web1") == [] and status(healed, "web1") == InstanceStatus.ONLINE


async def test_without_healing_a_command_on_a_gone_worker_fails_naming_it_and_delete_ends(
    time_skipping_env: WorkflowEnvironment, short_gone_timeout: None
) -> None:
    env, cloud = time_skipping_env, FakeCloud()
    async with cluster(env, cloud) as c:
        cloud.binding = {"web1": c.own["b"]}
        name = f"b{uuid.uuid4().hex[:8]}"
        await c.client.apply(spec(name, web=1, on=False))
        await quiet(c.client, name)
        await c.workers["b"].aclose()
        deployed = await c.client.deploy(name, DeployInput(app="hello"))
        lost = await until(
            env, c.client, name, lambda d: status(d, "web1") == InstanceStatus.CONNECTION_LOST
        )
        gone = f"worker {c.own['b']} {GONE}"
        event = next(e for e in lost.events if e.kind == "health_detected")
        assert event.hostname == "web1" and gone in event.message
        assert event.details == {"worker": c.own["b"]}
        with pytest.raises(OperationFailed, match=gone):
            await c.client.wait_deployment(deployed.deployment_id)

        # Deleting it needs nothing from the gone worker: it ends, saying what stays there.
        await c.client.instance_action(name, "web1", InstanceActionKind.DELETE)
        done = await until(env, c.client, name, lambda d: not d.instances)
        ended = [e.message for e in done.events if e.kind == "instance_status"]
        assert any("-> terminated" in m and "its files stay on that machine" in m for m in ended)


async def test_load_scaling_reads_each_local_instance_on_its_own_worker(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env, cloud = time_skipping_env, FakeCloud()
    async with cluster(env, cloud) as c:
        cloud.binding = {"w1": c.own["a"], "w2": c.own["b"]}
        name = f"b{uuid.uuid4().hex[:8]}"
        await c.client.apply(scaling_spec(name, load=LOAD))
        await quiet(c.client, name)
        cloud.metrics = {"w1": {"custom": 90.0}}
        up = await until(env, c.client, name, lambda d: status(d, "w2") == InstanceStatus.ONLINE)
        assert any(e.kind == "scaled_up" for e in up.events)  # w1's reading reached the loop
        cloud.metrics = {"w1": {"custom": 5.0}, "w2": {"custom": 7.0}}
        await until(env, c.client, name, lambda d: status(d, "w2") == InstanceStatus.STOPPED)
        assert cloud.queues_of(activity.READ_METRICS, "w1") == {c.own["a"]}
        assert cloud.queues_of(activity.READ_METRICS, "w2") == {c.own["b"]}

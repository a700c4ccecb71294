"""LayerHealingWorkflow on the time-skipping server, activities replaced (FakeCloud):
detection, replacement with the same identity, backoff and giving up, instances stopped
on purpose, and the loop's start and stop with the stack file."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from client.api import OpsflowClient
from opsflow import names
from opsflow.messages import DeployInput, InstanceActionKind, StackDescription
from opsflow.spec import StackSpec
from opsflow.status import InstanceStatus
from tests.helpers import quiet
from tests.workflows.fakes import FakeCloud
from workflows.deployment import DeploymentWorkflow
from workflows.healing import LayerHealingWorkflow
from workflows.instance import InstanceWorkflow
from workflows.stack import StackWorkflow


def spec(
    name: str,
    web: int = 3,
    healing: dict[str, Any] | None = None,
    on: bool = True,
    interval: str = "5s",
) -> StackSpec:
    return StackSpec.model_validate(
        {
            "name": name,
            "cookbooks": {"source": "/cookbooks"},
            "layers": [
                {
                    "name": "web",
                    "auto_healing": on,
                    "health_check": {"interval": interval, "unhealthy_threshold": 2,
                                     "grace_period": 0},
                    "healing": healing or {},
                    "recipes": {"setup": ["web::setup"], "configure": ["web::configure"],
                                "deploy": ["app::hello"]},
                    "instances": [{"hostname": f"web{i}"} for i in range(1, web + 1)],
                }
            ],
            "apps": [{"name": "hello", "layers": ["web"]}],
        }
    )  # fmt: skip


@asynccontextmanager
async def running(env: WorkflowEnvironment, cloud: FakeCloud) -> AsyncIterator[OpsflowClient]:
    queue = f"heal-{uuid.uuid4().hex[:8]}"
    cloud.client = env.client
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[StackWorkflow, InstanceWorkflow, DeploymentWorkflow, LayerHealingWorkflow],
        activities=cloud.activities(),
    ):
        yield OpsflowClient(env.client, task_queue=queue, tag_runs=False)


async def until(
    env: WorkflowEnvironment,
    client: OpsflowClient,
    stack: str,
    done: Callable[[StackDescription], bool],
    seconds: int = 300,
) -> StackDescription:
    """Advance the server's clock a second at a time until `done` holds."""
    for _ in range(seconds):
        found = await client.describe(stack)
        if done(found):
            return found
        await env.sleep(1)
    raise AssertionError(f"not reached in {seconds} simulated seconds: {found.events[-5:]}")


async def advance(env: WorkflowEnvironment, seconds: int) -> None:
    for _ in range(seconds):  # in steps: the loop runs its rounds between them
        await env.sleep(1)


def kinds(found: StackDescription, host: str) -> list[str]:
    return [
        e.kind for e in found.events if e.hostname == host and e.kind.startswith(("heal", "health"))
    ]


def status(found: StackDescription, host: str) -> InstanceStatus:
    return next(v.status for v in found.instances if v.hostname == host)


async def test_a_dead_instance_is_detected_replaced_with_its_release_and_configure_runs(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env, cloud = time_skipping_env, FakeCloud()
    async with running(env, cloud) as client:
        name = f"h{uuid.uuid4().hex[:8]}"
        await client.apply(spec(name))
        await quiet(client, name)
        deployed = await client.deploy(name, DeployInput(app="hello"))
        await client.wait_deployment(deployed.deployment_id)
        release = cloud.releases["web2"][-1]
        configures_before = cloud.events_for("configure").count("web1")

        cloud.dead.add("web2")
        healed = await until(env, client, name, lambda d: "healed" in kinds(d, "web2"))
        assert kinds(healed, "web2") == ["health_detected", "heal_started", "healed"]
        detected = next(e for e in healed.events if e.kind == "health_detected")
        assert "2 health check(s) in a row" in detected.message
        assert detected.details["check"] == "SSH failed: connection refused"
        transitions = [e.message for e in healed.events if e.kind == "instance_status"]
        lost_at = transitions.index("web2: online -> connection_lost (" + detected.message + ")")
        assert transitions[lost_at + 1 : lost_at + 4] == [
            "web2: connection_lost -> booting",
            "web2: booting -> running_setup",
            "web2: running_setup -> online",
        ]
        assert status(healed, "web2") == InstanceStatus.ONLINE
        assert {status(healed, h) for h in ("web1", "web3")} == {InstanceStatus.ONLINE}
        # Same identity, a new machine: setup again, then the app's current release.
        assert cloud.events_for("setup").count("web2") == 2
        assert cloud.releases["web2"][-1] == release
        await quiet(client, name)
        # It left online and came back: the others were reconfigured.
        assert cloud.events_for("configure").count("web1") >= configures_before + 1
        assert cloud.probes.count("web1") >= 2  # the healthy ones were checked too


async def test_a_heal_that_fails_backs_off_then_gives_up_leaving_setup_failed(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env, cloud = time_skipping_env, FakeCloud()
    async with running(env, cloud) as client:
        name = f"h{uuid.uuid4().hex[:8]}"
        await client.apply(
            spec(name, web=2, healing={"max_heals": 2, "backoff": "4s"}, interval="1s")
        )
        await quiet(client, name)
        cloud.dead.add("web1")
        cloud.fail_setup.add("web1")  # every new machine fails its setup
        found = await until(env, client, name, lambda d: "heal_gave_up" in kinds(d, "web1"), 600)
        assert kinds(found, "web1") == [
            "health_detected",
            "heal_started",
            "heal_failed",
            "heal_started",
            "heal_failed",
            "heal_gave_up",
        ]
        events = [e for e in found.events if e.hostname == "web1"]
        first_fail = next(e for e in events if e.kind == "heal_failed")
        second_try = [e for e in events if e.kind == "heal_started"][1]
        assert (second_try.at - first_fail.at).total_seconds() >= 4  # backed off
        assert "setup_failed" in first_fail.message and "boom" in first_fail.message
        assert status(found, "web1") == InstanceStatus.SETUP_FAILED
        assert cloud.events_for("setup").count("web1") == 3  # first start + 2 heals, no more
        await advance(env, 10)
        again = await client.describe(name)
        assert kinds(again, "web1") == kinds(found, "web1")
        assert status(again, "web2") == InstanceStatus.ONLINE


async def test_an_instance_stopped_on_purpose_is_never_healed(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env, cloud = time_skipping_env, FakeCloud()
    async with running(env, cloud) as client:
        name = f"h{uuid.uuid4().hex[:8]}"
        await client.apply(spec(name, web=2, interval="1s"))
        await quiet(client, name)
        await client.instance_action(name, "web1", InstanceActionKind.STOP)
        cloud.dead.add("web1")  # its machine is down: stopped
        await until(env, client, name, lambda d: status(d, "web1") == InstanceStatus.STOPPED)
        probes = len(cloud.probes)
        await advance(env, 10)
        found = await client.describe(name)
        assert kinds(found, "web1") == [] and status(found, "web1") == InstanceStatus.STOPPED
        assert len(cloud.probes) > probes and "web1" not in cloud.probes[probes:]


async def test_auto_healing_false_stops_the_loop_and_true_starts_it(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env, cloud = time_skipping_env, FakeCloud()
    async with running(env, cloud) as client:
        name = f"h{uuid.uuid4().hex[:8]}"
        await client.apply(spec(name, web=1))
        loop = env.client.get_workflow_handle(names.healing_workflow_id(name, "web"))
        assert (await loop.describe()).status == WorkflowExecutionStatus.RUNNING
        await client.apply(spec(name, web=1, on=False))
        await loop.result()  # it ends
        assert (await loop.describe()).status == WorkflowExecutionStatus.COMPLETED
        found = await client.describe(name)
        assert [e.kind for e in found.events if e.kind.startswith("healing_")] == [
            "healing_started",
            "healing_stopped",
        ]


async def test_the_loop_continues_as_new_keeping_its_counts(dev_env: WorkflowEnvironment) -> None:
    # On the real dev server (0.5 s rounds in real time): the time-skipping server is
    # unreliable with workflows that continue as new every few dozen events.
    cloud = FakeCloud()
    async with running(dev_env, cloud) as client:
        name = f"h{uuid.uuid4().hex[:8]}"
        client.max_history_events = 40  # the stack, and its healing loop, continue as new
        await client.apply(spec(name, web=1, healing={"max_heals": 1}, interval="500ms"))
        await quiet(client, name)
        loop = dev_env.client.get_workflow_handle(names.healing_workflow_id(name, "web"))
        first_run = (await loop.describe()).run_id
        cloud.dead.add("web1")
        cloud.fail_setup.add("web1")
        deadline = asyncio.get_running_loop().time() + 60
        while kinds(found := await client.describe(name), "web1")[-1:] != ["heal_gave_up"]:
            assert asyncio.get_running_loop().time() < deadline, found.events[-5:]
            await asyncio.sleep(0.2)
        for _ in range(300):  # several rounds later, across continue-as-new
            if (await loop.describe()).run_id != first_run:
                break
            await asyncio.sleep(0.1)
        history = await loop.fetch_history()
        now = await loop.query(LayerHealingWorkflow.status)
        assert (await loop.describe()).run_id != first_run, (
            len(history.events),
            now.max_history_events,
            history.events[-3:],
        )
        await asyncio.sleep(3)
        state = await loop.query(LayerHealingWorkflow.status)
        assert len(state.health["web1"].heals) == 1 and state.health["web1"].told
        found = await client.describe(name)
        assert kinds(found, "web1") == [
            "health_detected",
            "heal_started",
            "heal_failed",
            "heal_gave_up",
        ]
        assert cloud.events_for("setup").count("web1") == 2  # the first start and one heal

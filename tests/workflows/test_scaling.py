"""Scaling workflows on the time-skipping server, activities replaced: the load loop's
steps with metrics replaced, and a time-based instance started or stopped by the workflow
its schedule runs. (The schedules themselves run on the real dev server: see
tests/integration/test_scaling.py.)"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from client.api import OpsflowClient
from opsflow import names
from opsflow.messages import StackDescription, TimeScaleInput
from opsflow.spec import StackSpec, WeeklySchedule
from opsflow.status import InstanceStatus
from tests.helpers import quiet
from tests.workflows.fakes import FakeCloud
from tests.workflows.test_healing import until
from workflows.deployment import DeploymentWorkflow
from workflows.healing import LayerHealingWorkflow
from workflows.instance import InstanceWorkflow
from workflows.scaling import LoadScalingWorkflow, TimeScalingWorkflow
from workflows.stack import StackWorkflow

LOAD = {
    "interval": "5s",
    "custom_metric": "cat metric",
    "up": {"custom": 70, "thresholds_wait_time": "10s", "ignore_metrics_time": "20s"},
    "down": {"custom": 20, "thresholds_wait_time": "10s", "ignore_metrics_time": "20s"},
}


def spec(name: str, load: dict[str, Any] | None = None, hours: Any = None) -> StackSpec:
    instances: list[dict[str, Any]] = [
        {"hostname": "w1"},
        {"hostname": "w2", "scaling": "load"},
        {"hostname": "w3", "scaling": "load"},
    ]
    if hours is not None:
        instances.append({"hostname": "t1", "scaling": "time", "schedule": hours})
    return StackSpec.model_validate(
        {
            "name": name,
            "cookbooks": {"source": "/cookbooks"},
            "layers": [
                {
                    "name": "web",
                    "auto_healing": False,
                    "recipes": {"setup": ["web::setup"]},
                    "load_based_scaling": load,
                    "instances": instances,
                }
            ],
        }
    )


@asynccontextmanager
async def running(env: WorkflowEnvironment, cloud: FakeCloud) -> AsyncIterator[OpsflowClient]:
    queue = f"scale-{uuid.uuid4().hex[:8]}"
    cloud.client = env.client
    workflows = [StackWorkflow, InstanceWorkflow, DeploymentWorkflow, LayerHealingWorkflow]
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[*workflows, LoadScalingWorkflow, TimeScalingWorkflow],
        activities=cloud.activities(),
    ):
        yield OpsflowClient(env.client, task_queue=queue, tag_runs=False)


def status(found: StackDescription, host: str) -> InstanceStatus:
    return next(v.status for v in found.instances if v.hostname == host)


async def test_load_scales_up_after_the_wait_and_down_after_the_cooldown(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env, cloud = time_skipping_env, FakeCloud()
    async with running(env, cloud) as client:
        name = f"l{uuid.uuid4().hex[:8]}"
        applied = await client.apply(spec(name, load=LOAD))
        assert applied.started == ["w1"]  # load-based instances wait for the load
        found = await quiet(client, name)
        assert [status(found, h) for h in ("w1", "w2", "w3")] == [
            InstanceStatus.ONLINE,
            InstanceStatus.STOPPED,
            InstanceStatus.STOPPED,
        ]
        assert {v.hostname: v.scaling.value for v in found.instances} == {
            "w1": "always",
            "w2": "load",
            "w3": "load",
        }
        cloud.metrics = {"w1": {"custom": 90.0}}
        up = await until(env, client, name, lambda d: status(d, "w2") == InstanceStatus.ONLINE)
        scaled = next(e for e in up.events if e.kind == "scaled_up")
        assert scaled.details["averages"] == {"custom": 90.0}
        assert "w2" in scaled.message and "custom 90.0 > 70" in scaled.message
        assert status(up, "w3") == InstanceStatus.STOPPED  # one step: instance_count 1
        cloud.metrics = {"w1": {"custom": 5.0}, "w2": {"custom": 7.0}}
        down = await until(env, client, name, lambda d: status(d, "w2") == InstanceStatus.STOPPED)
        stepped = [e for e in down.events if e.kind.startswith("scaled_")]
        assert [e.kind for e in stepped] == ["scaled_up", "scaled_down"]
        assert stepped[1].details["averages"] == {"custom": 6.0}
        gap = (stepped[1].at - stepped[0].at).total_seconds()
        assert gap >= 20 + 10  # cooldown, then the wait time
        assert status(down, "w1") == InstanceStatus.ONLINE  # always-on ones never stop


async def test_load_with_max_adds_new_instances_and_turning_it_off_stops_the_loop(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env, cloud = time_skipping_env, FakeCloud()
    load = LOAD | {
        "max": 4,
        "up": {"custom": 70, "instance_count": 3, "thresholds_wait_time": "5s"},
    }
    async with running(env, cloud) as client:
        name = f"l{uuid.uuid4().hex[:8]}"
        await client.apply(spec(name, load=load))
        await quiet(client, name)
        cloud.metrics = {"w1": {"custom": 95.0}}
        found = await until(env, client, name, lambda d: len(d.instances) == 4)
        added = next(v for v in found.instances if v.hostname == "web-load-1")
        assert added.scaling.value == "load" and not added.from_file
        assert sorted(v.hostname for v in found.instances) == ["w1", "w2", "w3", "web-load-1"]
        loop = env.client.get_workflow_handle(names.scaling_workflow_id(name, "web"))
        await client.apply(spec(name, load=None))
        await loop.result()
        assert (await loop.describe()).status == WorkflowExecutionStatus.COMPLETED


async def test_time_scaling_starts_and_stops_by_the_hours_and_syncs_schedules(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env, cloud = time_skipping_env, FakeCloud()
    async with running(env, cloud) as client:
        name = f"t{uuid.uuid4().hex[:8]}"
        every_hour = {d: "0-23" for d in ("monday", "tuesday", "wednesday", "thursday",
                                          "friday", "saturday", "sunday")}  # fmt: skip
        await client.apply(spec(name, hours=every_hour))
        found = await quiet(client, name)
        assert status(found, "t1") == InstanceStatus.STOPPED  # until its schedule says
        assert [(s.changed, s.remove) for s in cloud.schedule_syncs] == [(["t1"], [])]
        schedule = WeeklySchedule.model_validate(every_hour)
        started = await env.client.execute_workflow(
            TimeScalingWorkflow.run,
            TimeScaleInput(stack=name, hostname="t1", schedule=schedule),
            id=f"timescale-run:{name}:t1",
            task_queue=client.task_queue,
        )
        assert started is True
        found = await until(env, client, name, lambda d: status(d, "t1") == InstanceStatus.ONLINE)
        event = next(e for e in found.events if e.kind == "scaling")
        assert "t1 started (time-based): schedule:" in event.message and "inside" in event.message
        never = WeeklySchedule()
        stopped = await env.client.execute_workflow(
            TimeScalingWorkflow.run,
            TimeScaleInput(stack=name, hostname="t1", schedule=never),
            id=f"timescale-run:{name}:t1:2",
            task_queue=client.task_queue,
        )
        assert stopped is False
        await until(env, client, name, lambda d: status(d, "t1") == InstanceStatus.STOPPED)
        # Changing the hours updates the schedule; dropping the instance deletes it.
        await client.apply(spec(name, hours={"monday": "9-17"}))
        await client.apply(spec(name))
        assert [(s.changed, s.remove) for s in cloud.schedule_syncs][1:] == [
            (["t1"], []),
            ([], ["t1"]),
        ]

"""The opsflow worker: every workflow and activity on the `opsflow` task queue.

Run it with `opsflow worker` (or `python -m worker` in the source tree); TEMPORAL_ADDRESS
says where Temporal is. `opsflow dev up` starts one for the embedded environment.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities import cloudwatch, elb, providers, registered
from activities.cookbook_sources import fetch_cookbooks
from activities.health import check_health
from activities.liveness import LivenessActivities
from activities.local_provider import kill_instance
from activities.metrics import read_metrics
from activities.rds import describe_rds
from activities.recipes.runner import RecipeActivities
from activities.schedules import ScheduleActivities
from activities.snapshots import SnapshotActivities
from activities.stack_context import StackReader, stack_context_source
from opsflow import settings
from runtime.connection import connect
from runtime.telemetry import tracing_interceptors
from workflows.deployment import DeploymentWorkflow
from workflows.drills import KillInstanceWorkflow
from workflows.healing import LayerHealingWorkflow
from workflows.instance import InstanceWorkflow
from workflows.scaling import LoadScalingWorkflow, TimeScalingWorkflow
from workflows.stack import StackWorkflow

WORKFLOWS: Sequence[type] = (
    StackWorkflow,
    InstanceWorkflow,
    DeploymentWorkflow,
    LayerHealingWorkflow,
    LoadScalingWorkflow,
    TimeScalingWorkflow,
    KillInstanceWorkflow,
)


def build_worker(client: Client, task_queue: str | None = None) -> Worker:
    """A worker with every workflow and the real activities, on `client`."""
    recipes = RecipeActivities(context_source=stack_context_source(client))
    activities: list[Any] = [
        *providers.ACTIVITIES,
        *registered.ACTIVITIES,
        *elb.ACTIVITIES,
        *cloudwatch.ACTIVITIES,
        recipes.run_recipes,
        fetch_cookbooks,
        check_health,
        LivenessActivities(client).probe_layer,
        StackReader(client).describe_layer,
        SnapshotActivities(client).publish_snapshot,
        read_metrics,
        ScheduleActivities(client).sync_schedules,
        describe_rds,
        kill_instance,
    ]
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue(),
        workflows=list(WORKFLOWS),
        activities=activities,
        # Recipe runs wait on SSH in threads; leave room for many instances at once.
        max_concurrent_activities=200,
    )


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    client = await connect(interceptors=tracing_interceptors("opsflow-worker"))
    worker = build_worker(client)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        logging.getLogger("opsflow.worker").info(
            "worker polling task queue %s on %s",
            settings.task_queue(),
            client.service_client.config.target_host,
        )
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())

"""The opsflow worker: every workflow and activity on the `opsflow` task queue.

Run it with `opsflow worker` (or `python -m worker` in the source tree). Where Temporal
is, and with what TLS, client certificate or API key, comes from the SDK's environment
configuration (TEMPORAL_ADDRESS, TEMPORAL_TLS_*, TEMPORAL_PROFILE...: runtime/
temporal_config.py). `opsflow dev up` starts one for the embedded environment.

At startup it publishes its public key in the artifact store (runtime/sealing.py: a
store whose workers have another key refuses it, exit 2) and records its store and key,
which the stack's update validators check every change against (workflows/origin.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
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
from opsflow.errors import OpsflowError
from runtime.artifacts import open_store
from runtime.connection import connect
from runtime.sealing import publish_key, worker_origin
from runtime.telemetry import tracing_interceptors
from workflows import origin
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
    """A worker with every workflow and the real activities, on `client`; its public key
    published in the store first, so CLIs can seal values for it."""
    publish_key(open_store(), settings.secret_key())
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
    own = worker_origin(open_store(), settings.secret_key())
    origin.set_own(own)
    client = await connect(interceptors=tracing_interceptors("opsflow-worker"))
    worker = build_worker(client)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        logging.getLogger("opsflow.worker").info(
            "worker polling task queue %s on %s (store %s, key %s)",
            settings.task_queue(),
            client.service_client.config.target_host,
            own.store,
            own.key_fingerprint,
        )
        await stop.wait()


def run() -> None:
    """Run the worker; a connection it cannot make ends it with the error's exit code and
    a message naming the setting, not a traceback."""
    try:
        asyncio.run(main())
    except OpsflowError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        # As the CLI does: the SDK's Rust runtime, loaded by the failed connect, can abort
        # the interpreter while it shuts down (temporalio/sdk-python#300).
        os._exit(err.exit_code)


if __name__ == "__main__":
    run()

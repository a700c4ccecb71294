"""The opsflow worker: every workflow and activity on the shared `opsflow` task queue,
and the activities of the local instances it launched on its own queue (`opsflow@<id>`,
settings.worker_id: stable per OPSFLOW_HOME, so a restarted worker is the same worker).

A local instance lives on this host, so its workflow sends everything done to it to the
queue its launch returned (Temporal's worker-specific task queue pattern); the own queue
has a worker of its own so shared work can never take all its slots.

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
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from functools import partial
from types import TracebackType
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities import cloudwatch, elb, providers, registered, ssh
from activities.cookbook_sources import fetch_cookbooks
from activities.health import check_health
from activities.liveness import LivenessActivities
from activities.local_provider import kill_instance, network_drill_activity
from activities.metrics import read_metrics
from activities.rds import describe_rds
from activities.recipes.runner import RecipeActivities
from activities.schedules import ScheduleActivities
from activities.snapshots import SnapshotActivities
from activities.stack_context import StackReader, healing_instances, stack_context_source
from activities.watch import WatchActivities
from opsflow import settings
from opsflow.errors import OpsflowError
from runtime.artifacts import open_store
from runtime.connection import connect
from runtime.sealing import publish_key, worker_origin
from runtime.telemetry import tracing_interceptors
from workflows import origin
from workflows.deployment import DeploymentWorkflow
from workflows.drills import KillInstanceWorkflow, NetworkDrillWorkflow
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
    NetworkDrillWorkflow,
)


@dataclass
class Workers:
    """The shared worker and this worker's own one, run together (`async with`)."""

    shared: Worker
    own: Worker
    _stack: AsyncExitStack = field(default_factory=AsyncExitStack)

    @property
    def own_queue(self) -> str:
        return self.own.task_queue

    async def __aenter__(self) -> Workers:
        await self._stack.__aenter__()
        await self._stack.enter_async_context(self.own)
        await self._stack.enter_async_context(self.shared)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self._stack.__aexit__(kind, error, trace)


def build_worker(
    client: Client, task_queue: str | None = None, worker_id: str | None = None
) -> Workers:
    """The workers of one opsflow worker process, with the real activities, on `client`;
    its public key published in the store first, so CLIs can seal values for it."""
    publish_key(open_store(), settings.secret_key())
    shared = task_queue or settings.task_queue()
    activities = _activities(client)
    own = Worker(
        client,
        task_queue=settings.worker_queue(shared, worker_id or settings.worker_id()),
        activities=activities,
        max_concurrent_activities=200,
    )
    return Workers(
        shared=Worker(
            client,
            task_queue=shared,
            workflows=list(WORKFLOWS),
            activities=activities,
            # Recipe runs wait on SSH in threads; leave room for many instances at once.
            max_concurrent_activities=200,
        ),
        own=own,
    )


def _activities(client: Client) -> list[Any]:
    recipes = RecipeActivities(context_source=stack_context_source(client))
    return [
        *providers.ACTIVITIES,
        *registered.ACTIVITIES,
        *elb.ACTIVITIES,
        *cloudwatch.ACTIVITIES,
        recipes.run_recipes,
        fetch_cookbooks,
        check_health,
        LivenessActivities(client).probe_layer,
        WatchActivities(partial(healing_instances, client)).watch_layer,
        StackReader(client).describe_layer,
        SnapshotActivities(client).publish_snapshot,
        read_metrics,
        ScheduleActivities(client).sync_schedules,
        describe_rds,
        kill_instance,
        network_drill_activity,
    ]


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    own = worker_origin(open_store(), settings.secret_key())
    origin.set_own(own)
    worker_id = settings.worker_id()  # bad OPSFLOW_WORKER_ID: exit 2 before connecting
    client = await connect(interceptors=tracing_interceptors("opsflow-worker"))
    workers = build_worker(client, worker_id=worker_id)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with workers:
            logging.getLogger("opsflow.worker").info(
                "worker polling task queue %s and its own %s on %s (store %s, key %s)",
                workers.shared.task_queue,
                workers.own_queue,
                client.service_client.config.target_host,
                own.store,
                own.key_fingerprint,
            )
            await stop.wait()
    finally:
        # The held connections go: a healing watch's keepalive waiting on a cut link
        # (paramiko's wait has no timeout) would hold the process at exit, its thread
        # joined, until TCP gave up on the link (minutes).
        await asyncio.to_thread(ssh.close_all)


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

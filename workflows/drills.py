"""Drill workflows, run by a worker instead of the CLI (the CLI may be on another machine
than the instance):

- KillInstanceWorkflow `kill:{stack}:{hostname}:{nonce}`: `opsflow instance kill`;
- NetworkDrillWorkflow `network:{stack}:{hostname}:{nonce}`: `opsflow instance kill
  --network` and `opsflow instance restore-network`.

Each is one activity, tried once: a kill retried after it succeeded would find nothing
running and report the instance as not running. It runs on the task queue of the worker
that launched the instance (the machine is on that worker's host); if no worker takes it
there within DRILL_TIMEOUT, that worker is gone and the drill fails saying so.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import names as activity
    from opsflow.drills import KillInstanceInput, NetworkDrillInput
    from workflows import common

DRILL_TIMEOUT = timedelta(seconds=30)
KILL_TIMEOUT = DRILL_TIMEOUT  # the name recorded histories' readers know


async def _on_instance_worker(
    name: str, request: KillInstanceInput | NetworkDrillInput, result_type: type[Any]
) -> Any:
    queue = request.task_queue
    try:
        result: Any = await workflow.execute_activity(
            name,
            request,
            result_type=result_type,
            start_to_close_timeout=DRILL_TIMEOUT,
            retry_policy=RetryPolicy(maximum_attempts=1),
            task_queue=queue,
            # The CLI waits about a minute for the whole drill: do not outlast it.
            schedule_to_start_timeout=None if queue is None else DRILL_TIMEOUT,
        )
    except ActivityError as err:
        if queue is None or not common.worker_gone(err):
            raise
        raise ApplicationError(
            f"{request.stack}/{request.hostname}: worker {queue} is gone: nothing has "
            f"run its tasks for {DRILL_TIMEOUT.total_seconds():.0f}s",
            non_retryable=True,
        ) from None
    return result


@workflow.defn
class KillInstanceWorkflow:
    @workflow.run
    async def run(self, request: KillInstanceInput) -> bool:
        """True when the instance was running and is killed, False if it was not."""
        killed: bool = await _on_instance_worker(activity.KILL_INSTANCE, request, bool)
        return killed


@workflow.defn
class NetworkDrillWorkflow:
    @workflow.run
    async def run(self, request: NetworkDrillInput) -> str:
        """What was done to the machine's link, or why nothing was."""
        said: str = await _on_instance_worker(activity.NETWORK_DRILL, request, str)
        return said

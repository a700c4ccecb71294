"""KillInstanceWorkflow `kill:{stack}:{hostname}:{nonce}`: `opsflow instance kill`, run by
a worker instead of the CLI (the CLI may be on another machine than the instance).

One activity, tried once: a kill retried after it succeeded would find nothing running
and report the instance as not running. It runs on the task queue of the worker that
launched the instance (the sshd is on that worker's host); if no worker takes it there
within KILL_TIMEOUT, that worker is gone and the kill fails saying so.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import names as activity
    from opsflow.drills import KillInstanceInput
    from workflows import common

KILL_TIMEOUT = timedelta(seconds=30)


@workflow.defn
class KillInstanceWorkflow:
    @workflow.run
    async def run(self, request: KillInstanceInput) -> bool:
        """True when the instance's sshd was running and is killed, False if it was not."""
        queue = request.task_queue
        try:
            killed: bool = await workflow.execute_activity(
                activity.KILL_INSTANCE,
                request,
                result_type=bool,
                start_to_close_timeout=KILL_TIMEOUT,
                retry_policy=RetryPolicy(maximum_attempts=1),
                task_queue=queue,
                # The CLI waits about a minute for the whole drill: do not outlast it.
                schedule_to_start_timeout=None if queue is None else KILL_TIMEOUT,
            )
        except ActivityError as err:
            if queue is None or not common.worker_gone(err):
                raise
            raise ApplicationError(
                f"{request.stack}/{request.hostname}: worker {queue} is gone: nothing has "
                f"run its tasks for {KILL_TIMEOUT.total_seconds():.0f}s",
                non_retryable=True,
            ) from None
        return killed

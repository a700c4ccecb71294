"""KillInstanceWorkflow `kill:{stack}:{hostname}:{nonce}`: `opsflow instance kill`, run by
a worker instead of the CLI (the CLI may be on another machine than the instance).

One activity, tried once: a kill retried after it succeeded would find nothing running
and report the instance as not running.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities import names as activity
    from opsflow.drills import KillInstanceInput

KILL_TIMEOUT = timedelta(seconds=30)


@workflow.defn
class KillInstanceWorkflow:
    @workflow.run
    async def run(self, request: KillInstanceInput) -> bool:
        """True when the instance's sshd was running and is killed, False if it was not."""
        killed: bool = await workflow.execute_activity(
            activity.KILL_INSTANCE,
            request,
            result_type=bool,
            start_to_close_timeout=KILL_TIMEOUT,
            retry_policy=RetryPolicy(maximum_attempts=1),
        )
        return killed

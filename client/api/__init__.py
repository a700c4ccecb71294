"""A typed client over the stack workflows: what the CLI calls, and what a script can import.

Failures come back as opsflow errors (opsflow/errors.py) so callers map them to exit
codes once: refused input is InvalidInput/NotFound, a failed run is OperationFailed with
the Temporal UI link of that run.
"""

from __future__ import annotations

from client.api.base import CONTINUED_QUERY_ATTEMPTS, gone, run_url, settled
from client.api.deployments import DeploymentCalls
from client.api.instances import InstanceCalls
from client.api.schedules import ScheduleCalls, ScheduleRun, ScheduleView, schedule_url
from client.api.stacks import StackSummary

__all__ = [
    "CONTINUED_QUERY_ATTEMPTS",
    "OpsflowClient",
    "ScheduleRun",
    "ScheduleView",
    "StackSummary",
    "gone",
    "run_url",
    "schedule_url",
    "settled",
]


class OpsflowClient(InstanceCalls, DeploymentCalls, ScheduleCalls):
    """Every call the CLI makes, one group of calls per base (stacks under them all)."""

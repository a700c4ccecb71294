"""Retry policies, timeouts and search attributes shared by the workflows."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, TimeoutError, TimeoutType

from opsflow.errors import ErrorType

STACK_ATTRIBUTE = SearchAttributeKey.for_keyword("OpsflowStack")
LAYER_ATTRIBUTE = SearchAttributeKey.for_keyword("OpsflowLayer")
APP_ATTRIBUTE = SearchAttributeKey.for_keyword("OpsflowApp")
COMMAND_ATTRIBUTE = SearchAttributeKey.for_keyword("OpsflowCommand")
STATUS_ATTRIBUTE = SearchAttributeKey.for_keyword("OpsflowStatus")
SEARCH_ATTRIBUTES = (
    STACK_ATTRIBUTE,
    LAYER_ATTRIBUTE,
    APP_ATTRIBUTE,
    COMMAND_ATTRIBUTE,
    STATUS_ATTRIBUTE,
)

# A recipe that failed will fail again; bad input never gets better.
NOT_RETRYABLE = [ErrorType.RECIPE_FAILED, ErrorType.INVALID_INPUT, ErrorType.NOT_FOUND]

# Lost SSH connections and crashed workers are retried; the run id makes a retry re-attach
# to a recipe run that is still going instead of starting it twice.
RECIPE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=15),
    maximum_attempts=10,
    non_retryable_error_types=NOT_RETRYABLE,
)
PROVIDER_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=5,
    non_retryable_error_types=NOT_RETRYABLE,
)
RECIPE_TIMEOUT = timedelta(hours=2)
# How soon a worker that died mid-recipe is noticed and the run handed to another attempt.
RECIPE_HEARTBEAT_TIMEOUT = timedelta(seconds=10)
PROVIDER_TIMEOUT = timedelta(minutes=5)
# Checking a host to register: one SSH login and one command.
ATTACH_TIMEOUT = timedelta(minutes=1)
HEALTH_HEARTBEAT_TIMEOUT = timedelta(seconds=30)
FETCH_TIMEOUT = timedelta(minutes=15)
FETCH_HEARTBEAT_TIMEOUT = timedelta(seconds=60)
FETCH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=4,
    non_retryable_error_types=[*NOT_RETRYABLE, ErrorType.COOKBOOKS_FETCH_FAILED],
)


def history_is_long(max_events: int | None) -> bool:
    """Time to continue-as-new: the server suggests it, or the configured limit is passed."""
    info = workflow.info()
    if info.is_continue_as_new_suggested():
        return True
    return max_events is not None and info.get_current_history_length() > max_events


# The healing loop's check: a failed attempt is retried, but never for long (the next
# round comes within seconds anyway).
PROBE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=5),
    maximum_attempts=3,
    non_retryable_error_types=NOT_RETRYABLE,
)

# The healing loop's watch (activities/watch.py): one attempt; after a failure the loop
# starts it again after its next check round. A worker that dies under it is seen by the
# heartbeat; a cancelled watch learns it on a heartbeat's answer, which the SDK sends at
# most every 0.8 x this timeout: short, so a replaced watch does not run on for long.
WATCH_PATCH = "healing-watch-connections"
WATCH_RETRY = RetryPolicy(maximum_attempts=1)
WATCH_HEARTBEAT_TIMEOUT = timedelta(seconds=10)

# The healing loop's CloudWatch gauges: a few quick tries, then the next minute's publish.
# botocore already retries throttling inside one attempt; the whole publish stays well
# under the gauges' period, so one is never still going when the next is due.
GAUGES_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=3,
    non_retryable_error_types=NOT_RETRYABLE,
)
GAUGES_START_TO_CLOSE = timedelta(seconds=15)
GAUGES_SCHEDULE_TO_CLOSE = timedelta(seconds=45)


# A local instance's activities go to the queue of the worker that launched it. A task
# there that no worker starts within this long means that worker is gone for good (a
# restarted worker is back well within it); the instance is then reported lost. A worker
# whose own queue is this far behind (all its slots busy this long) is taken as gone too.
WORKER_GONE_TIMEOUT = timedelta(minutes=2)
# Recorded when a run first sends an instance's activities to its worker's own queue.
BOUND_TO_WORKER_PATCH = "local-instances-bound-to-their-worker"


def start_within(task_queue: str | None) -> timedelta | None:
    """An activity's schedule-to-start timeout: on a worker's own queue, WORKER_GONE_TIMEOUT;
    on the shared queue none (some worker takes it whenever one runs)."""
    return None if task_queue is None else WORKER_GONE_TIMEOUT


def worker_gone(err: BaseException) -> bool:
    """The activity failed because no worker started it in time: its worker is gone."""
    cause: BaseException | None = err
    while isinstance(cause, ActivityError):
        cause = cause.cause
    return isinstance(cause, TimeoutError) and cause.type == TimeoutType.SCHEDULE_TO_START


def gone_message(task_queue: str) -> str:
    seconds = int(WORKER_GONE_TIMEOUT.total_seconds())
    span = f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"
    return f"worker {task_queue} is gone: nothing has run its tasks for {span}"


# A stack's fan-out of commands (configure rounds, deployments) goes out this many
# instances per workflow task (workflows/stack/base.py `_send_all`), behind this patch.
SEND_CHUNK = 100
PATCH_SEND_IN_CHUNKS = "stack-send-in-chunks"

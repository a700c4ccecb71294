"""What every group of client calls shares: timeouts, the Temporal UI link of a run,
requests turned into opsflow errors, and what settled means for an instance."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

from temporalio.client import (
    Client,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError
from temporalio.service import RPCError, RPCStatusCode

from opsflow import names, settings
from opsflow.errors import ErrorType, InvalidInput, NotFound, OperationFailed
from opsflow.messages import InstanceStatusLine, InstanceView
from opsflow.origin import ClientOrigin
from opsflow.status import SETTLED, InstanceStatus
from runtime import temporal_config
from workflows.common import STACK_ATTRIBUTE

T = TypeVar("T")


class _Change(Protocol):
    origin: ClientOrigin | None

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> Any: ...


C = TypeVar("C", bound=_Change)

# Updates and queries are answered by a worker: without one they would wait forever.
UPDATE_TIMEOUT = timedelta(seconds=60)
QUERY_TIMEOUT = timedelta(seconds=15)
# Queries asked again when they reach a stack's run just as it continues as new.
CONTINUED_QUERY_ATTEMPTS = 5
NO_ANSWER = (
    "no answer from {what} within {seconds:.0f}s: is an opsflow worker polling task queue "
    "{queue}? (`opsflow dev status`, `opsflow dev up`)"
)


def run_url(workflow_id: str) -> str:
    """The Temporal UI page of a workflow, where its whole history can be read."""
    namespace = quote(temporal_config.namespace(), safe="")
    return f"{settings.ui_url()}/namespaces/{namespace}/workflows/{quote(workflow_id, safe='')}"


class ApiBase:
    """The connection, its timeouts and the plumbing every group of calls shares."""

    def __init__(
        self,
        client: Client,
        task_queue: str | None = None,
        tag_runs: bool = True,
        update_timeout: timedelta = UPDATE_TIMEOUT,
        query_timeout: timedelta = QUERY_TIMEOUT,
        max_history_events: int | None = None,
        origin: Callable[[], ClientOrigin] | None = None,
    ) -> None:
        """`max_history_events`: stacks this client creates continue as new past it (and
        give it to their instances and loops); None, when the server suggests. `origin`:
        what this client's changes say of its store and key (asked once, at the first
        change; runtime/sealing.py's `client_origin`); None: they say nothing, and the
        workers check nothing (scripts, tests)."""
        self.temporal = client
        self.max_history_events = max_history_events
        self.update_timeout = update_timeout
        self.query_timeout = query_timeout
        self.task_queue = task_queue or settings.task_queue()
        self.tag_runs = tag_runs
        self._origin_source = origin
        self._origin: ClientOrigin | None = None

    # ---- plumbing ------------------------------------------------------------------

    def _stack_attributes(self, stack: str) -> TypedSearchAttributes:
        """A run of `stack`, findable by it in the Temporal UI (when this client tags runs)."""
        pairs = [SearchAttributePair(STACK_ATTRIBUTE, stack)] if self.tag_runs else []
        return TypedSearchAttributes(pairs)

    def _stamped(self, request: C) -> C:
        """`request` carrying this client's origin, for the validator to check."""
        if self._origin_source is None or request.origin is not None:
            return request
        if self._origin is None:
            self._origin = self._origin_source()
        stamped: C = request.model_copy(update={"origin": self._origin})
        return stamped

    def _stack(self, stack: str) -> WorkflowHandle[Any, Any]:
        return self.temporal.get_workflow_handle(names.stack_workflow_id(stack))

    async def _call(self, workflow_id: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run one request, turning Temporal's failures into opsflow errors."""
        try:
            return await call()
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            raise OperationFailed(
                NO_ANSWER.format(
                    what=workflow_id,
                    seconds=self.update_timeout.total_seconds(),
                    queue=self.task_queue,
                ),
                run_url(workflow_id),
            ) from None
        except WorkflowUpdateFailedError as err:
            raise from_failure(err.cause, workflow_id) from None
        except WorkflowFailureError as err:
            raise from_failure(err.cause, workflow_id) from None
        except RPCError as err:
            if err.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
                raise OperationFailed(
                    NO_ANSWER.format(
                        what=workflow_id,
                        seconds=self.query_timeout.total_seconds(),
                        queue=self.task_queue,
                    ),
                    run_url(workflow_id),
                ) from None
            if err.status == RPCStatusCode.NOT_FOUND:
                stack = names.stack_of_workflow_id(workflow_id)
                raise NotFound(
                    f"no stack named {stack}"
                    if stack is not None
                    else f"no run named {workflow_id}"
                ) from None
            if err.status == RPCStatusCode.INVALID_ARGUMENT and "query" in str(err).lower():
                raise NotFound(f"{workflow_id}: {err.message}") from None
            raise OperationFailed(f"{workflow_id}: {err.message}", run_url(workflow_id)) from None


def from_failure(cause: BaseException | None, workflow_id: str) -> Exception:
    """Map a failure from a workflow or an update back to an opsflow error."""
    # An activity or child that failed inside an update: the reason is its innermost cause.
    while isinstance(cause, ActivityError | ChildWorkflowError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        if cause.type == ErrorType.INVALID_INPUT:
            return InvalidInput(cause.message)
        if cause.type == ErrorType.NOT_FOUND:
            return NotFound(cause.message)
        return OperationFailed(cause.message, run_url(workflow_id))
    return OperationFailed(str(cause), run_url(workflow_id))


def settled(view: InstanceView | InstanceStatusLine | None) -> bool:
    return view is None or view.status in SETTLED


def gone(view: InstanceView | InstanceStatusLine | None) -> bool:
    return view is None or view.status == InstanceStatus.TERMINATED

"""A typed client over the stack workflows: what the CLI calls, and what a script can import.

Failures come back as opsflow errors (opsflow/errors.py) so callers map them to exit
codes once: refused input is InvalidInput/NotFound, a failed run is OperationFailed with
the Temporal UI link of that run.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, Field
from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    ScheduleDescription,
    ScheduleHandle,
    ScheduleOverlapPolicy,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    QueryRejectCondition,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
)
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
)
from temporalio.exceptions import TimeoutError as TemporalTimeout
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from opsflow import names, settings
from opsflow.drills import KillInstanceInput, kill_workflow_id
from opsflow.errors import ErrorType, InvalidInput, NotFound, OperationFailed, OpsflowError
from opsflow.messages import (
    AddInstanceInput,
    AppCommandInput,
    ApplyInput,
    ApplyResult,
    DeleteStackResult,
    DeployInput,
    DeploymentDetail,
    DeploymentResult,
    DeploymentStatus,
    DeploymentSummary,
    InstanceActionInput,
    InstanceActionKind,
    InstanceView,
    RegisterInstanceInput,
    RegisterInstanceResult,
    RunCommandInput,
    RunCommandResult,
    StackDescription,
    StackEvent,
)
from opsflow.plan import conflicts, plan_stack
from opsflow.spec import WEEKDAYS, Provider, Scaling, StackSpec, WeeklySchedule
from opsflow.state import InstanceState, StackState
from opsflow.status import SETTLED, InstanceStatus
from workflows.common import STACK_ATTRIBUTE
from workflows.deployment import DeploymentWorkflow
from workflows.drills import KillInstanceWorkflow
from workflows.instance import InstanceWorkflow
from workflows.stack import StackWorkflow

T = TypeVar("T")

# Updates and queries are answered by a worker: without one they would wait forever.
UPDATE_TIMEOUT = timedelta(seconds=60)
QUERY_TIMEOUT = timedelta(seconds=15)
# Queries asked again when they reach a stack's run just as it continues as new.
CONTINUED_QUERY_ATTEMPTS = 5
NO_ANSWER = (
    "no answer from {what} within {seconds:.0f}s: is an opsflow worker polling task queue "
    "{queue}? (`opsflow dev status`, `opsflow dev up`)"
)


class StackSummary(BaseModel):
    name: str
    provider: str
    layers: int
    instances: int
    online: int
    problem: str | None = None  # the stack did not answer (no worker on its task queue?)


class ScheduleRun(BaseModel):
    """One run a schedule started (at its calendar moment, or triggered)."""

    at: datetime = Field(description="when it started (UTC)")
    workflow_id: str


class ScheduleView(BaseModel):
    """A time-based instance and its Temporal Schedule: what `schedule list` prints."""

    hostname: str
    schedule_id: str
    status: InstanceStatus = Field(description="the instance's status")
    timezone: str
    hours: dict[str, list[int]] = Field(description="weekday -> the hours it runs (all seven)")
    paused: bool
    note: str | None = None
    next_runs: list[datetime] = Field(description="the next calendar moments it fires (UTC)")
    recent_runs: list[ScheduleRun] = Field(description="oldest first (Temporal keeps 10)")
    url: str = Field(description="the schedule's page on the Temporal UI")


def run_url(workflow_id: str) -> str:
    """The Temporal UI page of a workflow, where its whole history can be read."""
    namespace = quote(settings.temporal_namespace(), safe="")
    return f"{settings.ui_url()}/namespaces/{namespace}/workflows/{quote(workflow_id, safe='')}"


def schedule_url(schedule_id: str) -> str:
    """The Temporal UI page of a schedule."""
    namespace = quote(settings.temporal_namespace(), safe="")
    return f"{settings.ui_url()}/namespaces/{namespace}/schedules/{quote(schedule_id, safe='')}"


class OpsflowClient:
    def __init__(
        self,
        client: Client,
        task_queue: str | None = None,
        tag_runs: bool = True,
        update_timeout: timedelta = UPDATE_TIMEOUT,
        query_timeout: timedelta = QUERY_TIMEOUT,
        max_history_events: int | None = None,
    ) -> None:
        """`max_history_events`: stacks this client creates continue as new past it (and
        give it to their instances and loops); None, when the server suggests."""
        self.temporal = client
        self.max_history_events = max_history_events
        self.update_timeout = update_timeout
        self.query_timeout = query_timeout
        self.task_queue = task_queue or settings.task_queue()
        self.tag_runs = tag_runs

    # ---- stacks --------------------------------------------------------------------

    async def plan(self, spec: StackSpec) -> list[str]:
        current = await self._describe_or_none(spec.name)
        instances = {v.hostname: v for v in current.instances} if current else {}
        problems = conflicts(current.spec if current else None, instances, spec)
        if problems:
            raise InvalidInput("\n".join(problems))
        return plan_stack(current.spec if current else None, instances, spec).changes

    async def apply(self, spec: StackSpec, source_file: str | None = None) -> ApplyResult:
        workflow_id = names.stack_workflow_id(spec.name)
        start = WithStartWorkflowOperation(
            StackWorkflow.run,
            StackState(tag_runs=self.tag_runs, max_history_events=self.max_history_events),
            id=workflow_id,
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=self._stack_attributes(spec.name),
        )
        return await self._call(
            workflow_id,
            lambda: self.temporal.execute_update_with_start_workflow(
                StackWorkflow.apply,
                ApplyInput(spec=spec, source_file=source_file),
                start_workflow_operation=start,
                rpc_timeout=self.update_timeout,
            ),
        )

    async def describe(self, stack: str) -> StackDescription:
        handle = self._stack(stack)
        # A query that reaches a run as it continues as new is rejected with that status:
        # the stack is there, in its next run, which the same handle asks next time.
        for _ in range(CONTINUED_QUERY_ATTEMPTS):
            try:
                return await self._call(
                    handle.id,
                    lambda: handle.query(
                        StackWorkflow.describe,
                        reject_condition=QueryRejectCondition.NOT_OPEN,
                        rpc_timeout=self.query_timeout,
                    ),
                )
            except WorkflowQueryRejectedError as err:
                if err.status != WorkflowExecutionStatus.CONTINUED_AS_NEW:
                    raise NotFound(f"no stack named {stack}") from None
            except WorkflowQueryFailedError as err:
                raise NotFound(f"no stack named {stack}: {err.message}") from None
        raise OperationFailed(
            f"stack {stack} continued as new on every one of {CONTINUED_QUERY_ATTEMPTS} "
            "questions; ask again",
            run_url(handle.id),
        )

    async def events(
        self,
        stack: str,
        kinds: Iterable[str] = (),
        hostname: str | None = None,
        limit: int | None = None,
    ) -> list[StackEvent]:
        """The stack's recent events (the stack keeps the newest few hundred), oldest first:
        only those of `kinds` (any kind when empty) and of `hostname` when given, the newest
        `limit` of them when given."""
        wanted = set(kinds)
        found = [
            event
            for event in (await self.describe(stack)).events
            if (not wanted or event.kind in wanted)
            and (hostname is None or event.hostname == hostname)
        ]
        if limit is not None:
            if limit < 1:
                raise InvalidInput(f"limit: {limit} must be at least 1")
            found = found[-limit:]
        return found

    async def list_stacks(self) -> list[StackSummary]:
        query = "WorkflowType = 'StackWorkflow' AND ExecutionStatus = 'Running'"
        names = [e.id.removeprefix("stack:") async for e in self.temporal.list_workflows(query)]
        # Asked all at once; one stack that does not answer does not hide the others.
        found = await asyncio.gather(*(self._summary(name) for name in names))
        return sorted((s for s in found if s is not None), key=lambda s: s.name)

    async def _summary(self, stack: str) -> StackSummary | None:
        try:
            found = await self.describe(stack)
        except NotFound:
            return None  # applied never, or finished between list and query
        except OpsflowError as err:
            problem = str(err).splitlines()[0]
            return StackSummary(
                name=stack, provider="?", layers=0, instances=0, online=0, problem=problem
            )
        return StackSummary(
            name=found.name,
            provider=found.spec.provider.value,
            layers=len(found.spec.layers),
            instances=len(found.instances),
            online=sum(v.status == InstanceStatus.ONLINE for v in found.instances),
        )

    async def delete_stack(self, stack: str) -> DeleteStackResult:
        handle = self._stack(stack)
        return await self._call(
            handle.id,
            lambda: handle.execute_update(StackWorkflow.delete, rpc_timeout=self.update_timeout),
        )

    async def wait_stack_deleted(self, stack: str, timeout: float = 600) -> None:
        handle = self._stack(stack)
        try:
            await asyncio.wait_for(handle.result(), timeout)
        except TimeoutError:
            raise OperationFailed(
                f"stack {stack} was not deleted within {timeout:.0f}s", run_url(handle.id)
            ) from None
        except WorkflowFailureError as err:
            raise OperationFailed(
                f"deleting stack {stack} failed: {err.cause}", run_url(handle.id)
            ) from None

    # ---- instances -----------------------------------------------------------------

    async def add_instance(self, stack: str, request: AddInstanceInput) -> InstanceView:
        handle = self._stack(stack)
        return await self._call(
            handle.id,
            lambda: handle.execute_update(
                StackWorkflow.add_instance, request, rpc_timeout=self.update_timeout
            ),
        )

    async def register_instance(
        self, stack: str, request: RegisterInstanceInput
    ) -> RegisterInstanceResult:
        handle = self._stack(stack)
        return await self._call(
            handle.id,
            lambda: handle.execute_update(
                StackWorkflow.register_instance, request, rpc_timeout=self.update_timeout
            ),
        )

    async def instance_action(
        self, stack: str, hostname: str, action: InstanceActionKind
    ) -> InstanceView:
        handle = self._stack(stack)
        request = InstanceActionInput(hostname=hostname, action=action)
        return await self._call(
            handle.id,
            lambda: handle.execute_update(
                StackWorkflow.instance_action, request, rpc_timeout=self.update_timeout
            ),
        )

    async def wait_instances(
        self,
        stack: str,
        until: Callable[[InstanceView | None], bool],
        hostnames: Iterable[str] | None = None,
        timeout: float = 900,
        on_change: Callable[[StackDescription], None] | None = None,
    ) -> StackDescription:
        """Poll the stack until `until` holds for each instance named (or every instance)."""
        deadline = time.monotonic() + timeout
        wanted = list(hostnames) if hostnames is not None else None
        while True:
            found = await self.describe(stack)
            if on_change is not None:
                on_change(found)
            views = {v.hostname: v for v in found.instances}
            targets = wanted if wanted is not None else list(views)
            if all(until(views.get(h)) for h in targets):
                return found
            if time.monotonic() > deadline:
                raise OperationFailed(
                    f"instances of {stack} did not settle within {timeout:.0f}s",
                    run_url(names.stack_workflow_id(stack)),
                )
            await asyncio.sleep(0.25)

    async def kill_instance(self, stack: str, hostname: str) -> StackDescription:
        """A machine crash for drills: SIGKILL a local instance's sshd and its connections.

        Nothing is told to the stack: its healing loop (if the layer has one) has to notice.
        A worker does it (KillInstanceWorkflow), on the machine where the instance runs (its
        `OPSFLOW_HOME`). NotFound for an unknown stack or instance, InvalidInput for a
        provider other than local, OperationFailed when the instance's sshd is not running
        there or no worker answers. Returns the stack as it was just before the kill.
        """
        found = await self.describe(stack)
        view = next((v for v in found.instances if v.hostname == hostname), None)
        if view is None:
            raise NotFound(f"stack {stack} has no instance {hostname!r}")
        if view.provider != Provider.LOCAL:
            raise InvalidInput("instance kill supports local instances in this version")
        workflow_id = kill_workflow_id(stack, hostname, uuid.uuid4().hex)

        async def kill() -> bool:
            try:
                return await self.temporal.execute_workflow(
                    KillInstanceWorkflow.run,
                    KillInstanceInput(stack=stack, hostname=hostname),
                    id=workflow_id,
                    task_queue=self.task_queue,
                    # Without a worker it would wait forever; a kill takes a moment.
                    execution_timeout=self.update_timeout,
                    search_attributes=self._stack_attributes(stack),
                )
            except WorkflowFailureError as err:
                if not isinstance(err.cause, TemporalTimeout):
                    raise
                seconds = self.update_timeout.total_seconds()
                raise OperationFailed(
                    NO_ANSWER.format(what=workflow_id, seconds=seconds, queue=self.task_queue),
                    run_url(workflow_id),
                ) from None

        killed = await self._call(workflow_id, kill)
        if not killed:
            raise OperationFailed(
                f"{hostname} is not running here (no live sshd; the stack shows it "
                f"{view.status.value}): nothing to kill"
            )
        return found

    async def instance_state(self, stack: str, hostname: str) -> InstanceState:
        workflow_id = names.instance_workflow_id(stack, hostname)
        handle = self.temporal.get_workflow_handle(workflow_id)
        return await self._call(
            workflow_id,
            lambda: handle.query(InstanceWorkflow.describe, rpc_timeout=self.query_timeout),
        )

    async def last_log_tail(self, stack: str, hostname: str) -> str | None:
        """The log tail of the instance's most recent failed recipe run, if any."""
        try:
            state = await self.instance_state(stack, hostname)
        except OpsflowError:
            return None
        failed = [run for run in state.runs if not run.ok]
        return failed[-1].log_tail if failed else None

    # ---- commands ------------------------------------------------------------------

    async def run_command(self, stack: str, request: RunCommandInput) -> RunCommandResult:
        handle = self._stack(stack)
        return await self._call(
            handle.id,
            lambda: handle.execute_update(
                StackWorkflow.run_command, request, rpc_timeout=self.update_timeout
            ),
        )

    async def wait_deployment(self, deployment_id: str) -> DeploymentResult:
        """The deployment's result once it ends; OperationFailed if it failed or was cancelled."""
        handle: WorkflowHandle[Any, DeploymentResult] = self.temporal.get_workflow_handle_for(
            DeploymentWorkflow.run, deployment_id
        )
        try:
            result = await handle.result()
        except WorkflowFailureError as err:
            if not isinstance(err.cause, CancelledError):
                raise _from_failure(err.cause, deployment_id) from None
            result = await self._call(
                deployment_id, lambda: handle.query(DeploymentWorkflow.progress)
            )
            result.status = DeploymentStatus.CANCELLED
        except RPCError:
            return await self._call(deployment_id, handle.result)  # maps the error
        if result.status != DeploymentStatus.SUCCESSFUL:
            raise OperationFailed(_deployment_failure(result), run_url(deployment_id))
        return result

    async def cancel_deployment(self, deployment_id: str) -> None:
        """Ask a running deployment to stop: queued runs are dropped, running ones killed."""
        handle = self.temporal.get_workflow_handle(deployment_id)
        await self._call(deployment_id, handle.cancel)

    async def deployment_progress(self, deployment_id: str) -> DeploymentResult:
        handle = self.temporal.get_workflow_handle_for(DeploymentWorkflow.run, deployment_id)
        return await self._call(
            deployment_id,
            lambda: handle.query(DeploymentWorkflow.progress, rpc_timeout=self.query_timeout),
        )

    # ---- app deployments -----------------------------------------------------------

    async def deploy(self, stack: str, request: DeployInput) -> RunCommandResult:
        """Start deploying an app (a DeploymentWorkflow); returns its id and targets."""
        handle = self._stack(stack)
        return await self._call(
            handle.id,
            lambda: handle.execute_update(
                StackWorkflow.deploy, request, rpc_timeout=self.update_timeout
            ),
        )

    async def app_command(self, stack: str, request: AppCommandInput) -> RunCommandResult:
        """rollback (re-activate each instance's previous release) or undeploy an app."""
        handle = self._stack(stack)
        return await self._call(
            handle.id,
            lambda: handle.execute_update(
                StackWorkflow.app_command, request, rpc_timeout=self.update_timeout
            ),
        )

    async def approve(self, deployment_id: str) -> None:
        """Let a canary deployment go on past its first batch."""
        await self._gate(deployment_id, DeploymentWorkflow.approve, "approve")

    async def abort(self, deployment_id: str) -> None:
        """Stop a canary deployment at its gate and roll its first batch back."""
        await self._gate(deployment_id, DeploymentWorkflow.abort, "abort")

    async def _gate(
        self,
        deployment_id: str,
        update: UpdateMethodMultiParam[[DeploymentWorkflow], None],
        verb: str,
    ) -> None:
        handle = self.temporal.get_workflow_handle_for(DeploymentWorkflow.run, deployment_id)
        try:
            await self._call(
                deployment_id,
                lambda: handle.execute_update(update, rpc_timeout=self.update_timeout),
            )
        except NotFound:
            # An update to a finished workflow is "not found": say what happened instead.
            description = await self._call(deployment_id, handle.describe)
            if description.status != WorkflowExecutionStatus.RUNNING:
                raise InvalidInput(
                    f"{deployment_id} has already finished: nothing to {verb}"
                ) from None
            raise

    async def deployment_detail(self, deployment_id: str) -> DeploymentDetail:
        handle = self.temporal.get_workflow_handle_for(DeploymentWorkflow.run, deployment_id)
        return await self._call(
            deployment_id,
            lambda: handle.query(DeploymentWorkflow.detail, rpc_timeout=self.query_timeout),
        )

    async def deployments(self, stack: str) -> list[DeploymentSummary]:
        """The stack's deployments and commands, newest first."""
        handle = self._stack(stack)
        return await self._call(
            handle.id,
            lambda: handle.query(StackWorkflow.deployments, rpc_timeout=self.query_timeout),
        )

    # ---- schedules of time-based instances -------------------------------------------

    async def schedules(self, stack: str) -> list[ScheduleView]:
        """Each time-based instance of the stack (the stack's own view, not a listing of
        Temporal's schedules, which is eventually consistent) with its schedule, by
        hostname. OperationFailed if a schedule is missing in Temporal."""
        found = await self.describe(stack)
        _refuse_if_deleting(found)
        timed = [
            (view, _hours_of(found, view))
            for view in found.instances
            if view.scaling == Scaling.TIME
        ]
        return list(
            await asyncio.gather(*(self._schedule_view(stack, v, hours) for v, hours in timed))
        )

    async def schedule(self, stack: str, hostname: str) -> ScheduleView:
        """One time-based instance's schedule; NotFound for an unknown stack or instance,
        InvalidInput for an instance that is not time-based."""
        view, hours = await self._time_instance(stack, hostname)
        return await self._schedule_view(stack, view, hours)

    async def pause_schedule(self, stack: str, hostname: str, note: str) -> ScheduleView:
        """Pause the instance's schedule (it fires no more until unpaused: the instance stays
        as it is); returns the schedule as it was before."""
        return await self._change_schedule(stack, hostname, lambda handle: handle.pause(note=note))

    async def unpause_schedule(self, stack: str, hostname: str, note: str) -> ScheduleView:
        """Let the instance's schedule fire again; returns the schedule as it was before."""
        return await self._change_schedule(
            stack, hostname, lambda handle: handle.unpause(note=note)
        )

    async def trigger_schedule(self, stack: str, hostname: str) -> ScheduleView:
        """Start the schedule's TimeScalingWorkflow now (paused or not): the instance is
        started or stopped as its hours say now. Returns the schedule as it was before."""
        return await self._change_schedule(
            stack,
            hostname,
            lambda handle: handle.trigger(overlap=ScheduleOverlapPolicy.BUFFER_ONE),
        )

    async def _change_schedule(
        self,
        stack: str,
        hostname: str,
        change: Callable[[ScheduleHandle], Awaitable[None]],
    ) -> ScheduleView:
        before = await self.schedule(stack, hostname)  # also: it exists
        handle = self.temporal.get_schedule_handle(before.schedule_id)
        await self._schedule_call(stack, hostname, lambda: change(handle))
        return before

    async def _time_instance(
        self, stack: str, hostname: str
    ) -> tuple[InstanceView, WeeklySchedule]:
        found = await self.describe(stack)
        _refuse_if_deleting(found)
        view = next((v for v in found.instances if v.hostname == hostname), None)
        if view is None:
            raise NotFound(f"stack {stack} has no instance {hostname!r}")
        if view.scaling != Scaling.TIME:
            raise InvalidInput(
                f"{hostname} is not a time-based instance (scaling: {view.scaling.value})"
            )
        return view, _hours_of(found, view)

    async def _schedule_view(
        self, stack: str, view: InstanceView, hours: WeeklySchedule
    ) -> ScheduleView:
        schedule_id = names.schedule_id(stack, view.hostname)
        handle = self.temporal.get_schedule_handle(schedule_id)
        described: ScheduleDescription = await self._schedule_call(
            stack, view.hostname, lambda: handle.describe(rpc_timeout=self.query_timeout)
        )
        state = described.schedule.state
        return ScheduleView(
            hostname=view.hostname,
            schedule_id=schedule_id,
            status=view.status,
            timezone=hours.timezone,
            hours={day: hours.hours(i) for i, day in enumerate(WEEKDAYS)},
            paused=state.paused,
            note=state.note,
            next_runs=list(described.info.next_action_times[:2]),
            recent_runs=[
                ScheduleRun(at=action.started_at, workflow_id=action.action.workflow_id)
                for action in described.info.recent_actions
                if isinstance(action.action, ScheduleActionExecutionStartWorkflow)
            ],
            url=schedule_url(schedule_id),
        )

    async def _schedule_call(
        self, stack: str, hostname: str, call: Callable[[], Awaitable[T]]
    ) -> T:
        """One request on a schedule, its failures as opsflow errors."""
        schedule_id = names.schedule_id(stack, hostname)
        try:
            return await call()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise OperationFailed(
                    f"the schedule of time-based instance {hostname} ({schedule_id}) is "
                    "missing in Temporal: deleted outside opsflow, or not created yet (an "
                    f"apply of stack {stack} still running)",
                    run_url(names.stack_workflow_id(stack)),
                ) from None
            if err.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
                raise OperationFailed(
                    f"no answer from Temporal about schedule {schedule_id} within "
                    f"{self.query_timeout.total_seconds():.0f}s"
                ) from None
            raise OperationFailed(
                f"schedule {schedule_id}: {err.message}", schedule_url(schedule_id)
            ) from None

    # ---- plumbing ------------------------------------------------------------------

    def _stack_attributes(self, stack: str) -> TypedSearchAttributes:
        """A run of `stack`, findable by it in the Temporal UI (when this client tags runs)."""
        pairs = [SearchAttributePair(STACK_ATTRIBUTE, stack)] if self.tag_runs else []
        return TypedSearchAttributes(pairs)

    def _stack(self, stack: str) -> WorkflowHandle[Any, Any]:
        return self.temporal.get_workflow_handle(names.stack_workflow_id(stack))

    async def _describe_or_none(self, stack: str) -> StackDescription | None:
        try:
            return await self.describe(stack)
        except NotFound:
            return None

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
            raise _from_failure(err.cause, workflow_id) from None
        except WorkflowFailureError as err:
            raise _from_failure(err.cause, workflow_id) from None
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


def _refuse_if_deleting(found: StackDescription) -> None:
    if found.deleting:
        raise InvalidInput(f"stack {found.name} is being deleted (its schedules with it)")


def _hours_of(found: StackDescription, view: InstanceView) -> WeeklySchedule:
    """A time-based instance's schedule, from the stack file the stack runs."""
    for layer in found.spec.layers:
        for instance in layer.instances:
            if instance.hostname == view.hostname and instance.schedule is not None:
                return instance.schedule
    # The stack marks an instance time-based only when its file gives it a schedule.
    raise OperationFailed(
        f"stack {found.name}: {view.hostname} is time-based but its stack file has no "
        "schedule for it",
        run_url(names.stack_workflow_id(found.name)),
    )


def _deployment_failure(result: DeploymentResult) -> str:
    if result.status == DeploymentStatus.ROLLED_BACK:
        failed = sum(not r.ok for r in result.instances)
        lines = [
            f"{result.command} stopped ({failed} instance(s) failed) and the instances it "
            "had changed were rolled back to their previous release"
        ]
    elif result.status == DeploymentStatus.CANCELLED:
        lines = [f"{result.command} was cancelled"]
        done = {r.hostname for r in result.instances}
        lines.extend(f"  {h}: no answer" for h in result.targets if h not in done)
    else:
        failed = sum(not r.ok for r in result.instances)
        lines = [f"{result.command} failed on {failed} instance(s)"]
    for item in result.instances:
        if item.cancelled:
            lines.append(f"  {item.hostname}: cancelled")
        elif not item.ok:
            lines.append(f"  {item.hostname}: {item.error}")
            if item.log_tail:
                lines.extend(f"    | {line}" for line in item.log_tail.splitlines()[-10:])
    return "\n".join(lines)


def _from_failure(cause: BaseException | None, workflow_id: str) -> Exception:
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


def settled(view: InstanceView | None) -> bool:
    return view is None or view.status in SETTLED


def gone(view: InstanceView | None) -> bool:
    return view is None or view.status == InstanceStatus.TERMINATED

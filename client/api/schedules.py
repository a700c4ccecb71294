"""The Temporal Schedules of time-based instances: list, pause, unpause, trigger."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from urllib.parse import quote

from pydantic import BaseModel, Field
from temporalio.client import (
    ScheduleActionExecutionStartWorkflow,
    ScheduleDescription,
    ScheduleHandle,
    ScheduleOverlapPolicy,
)
from temporalio.service import RPCError, RPCStatusCode

from client.api.base import T, run_url
from client.api.stacks import StackCalls, refuse_if_deleting
from opsflow import names, settings
from opsflow.errors import InvalidInput, NotFound, OperationFailed
from opsflow.messages import InstanceView, StackDescription
from opsflow.spec import WEEKDAYS, Scaling, WeeklySchedule
from opsflow.status import InstanceStatus
from runtime import temporal_config


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


def schedule_url(schedule_id: str) -> str:
    """The Temporal UI page of a schedule."""
    namespace = quote(temporal_config.namespace(), safe="")
    return f"{settings.ui_url()}/namespaces/{namespace}/schedules/{quote(schedule_id, safe='')}"


class ScheduleCalls(StackCalls):
    # ---- schedules of time-based instances -------------------------------------------

    async def schedules(self, stack: str) -> list[ScheduleView]:
        """Each time-based instance of the stack (the stack's own view, not a listing of
        Temporal's schedules, which is eventually consistent) with its schedule, by
        hostname. OperationFailed if a schedule is missing in Temporal."""
        found = await self.describe(stack)
        refuse_if_deleting(found)
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
        refuse_if_deleting(found)
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


def _hours_of(found: StackDescription, view: InstanceView) -> WeeklySchedule:
    """A time-based instance's schedule, from the stack file the stack runs."""
    instance = found.spec.instance_spec(view.hostname)
    if instance is not None and instance.schedule is not None:
        return instance.schedule
    # The stack marks an instance time-based only when its file gives it a schedule.
    raise OperationFailed(
        f"stack {found.name}: {view.hostname} is time-based but its stack file has no "
        "schedule for it",
        run_url(names.stack_workflow_id(found.name)),
    )

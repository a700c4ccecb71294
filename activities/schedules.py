"""Temporal Schedules for time-based instances: one per instance, `timescale:{stack}:{host}`.

Each schedule fires at the calendar moments its weekly hours begin and end (in the
schedule's time zone: calendar specs, no polling) and starts a TimeScalingWorkflow, which
starts or stops the instance as the hours say at that moment. They show on the Temporal
UI's Schedules page and obey `opsflow schedule pause|unpause|trigger`.

`sync_schedules` makes Temporal hold what the stack file says: creates missing schedules,
updates the others (keeping a pause and its note), deletes removed ones, and triggers each
created or changed schedule once so the instance matches its hours right away: so an apply
also recreates a schedule deleted outside opsflow. It is idempotent: a retried attempt does
the same again. A schedule whose hours never turn (up all week, or never) fires once a
week, Monday 00:00, to set the instance right.
"""

from __future__ import annotations

import functools

from temporalio import activity
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from activities import names
from opsflow import names as opsflow_names
from opsflow.messages import SyncSchedulesInput, TimeScaleInput
from opsflow.scaling import transitions
from opsflow.spec import WeeklySchedule

TIME_SCALING_WORKFLOW = "TimeScalingWorkflow"


def build_schedule(stack: str, hostname: str, hours: WeeklySchedule, task_queue: str) -> Schedule:
    """The schedule of one time-based instance (calendar weekdays count from Sunday = 0)."""
    calendars = [
        ScheduleCalendarSpec(
            day_of_week=[ScheduleRange((weekday + 1) % 7)],
            hour=[ScheduleRange(hour)],
            minute=[ScheduleRange(0)],
            second=[ScheduleRange(0)],
            comment=f"{hostname} {'on' if hour in hours.hours(weekday) else 'off'}",
        )
        for weekday, hour in transitions(hours)
    ]
    if not calendars:  # up all week, or never: nothing turns; still check once a week
        calendars = [
            ScheduleCalendarSpec(
                day_of_week=[ScheduleRange(1)],
                hour=[ScheduleRange(0)],
                minute=[ScheduleRange(0)],
                second=[ScheduleRange(0)],
                comment=f"{hostname} weekly check",
            )
        ]
    return Schedule(
        action=ScheduleActionStartWorkflow(
            TIME_SCALING_WORKFLOW,
            TimeScaleInput(stack=stack, hostname=hostname, schedule=hours),
            id=f"timescale-run:{stack}:{hostname}",
            task_queue=task_queue,
        ),
        spec=ScheduleSpec(calendars=calendars, time_zone_name=hours.timezone),
        # A fire or trigger is never dropped while the previous run (seconds) still goes.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.BUFFER_ONE),
        state=ScheduleState(note=f"opsflow: time-based instance {hostname} of stack {stack}"),
    )


def _keeping_state(wanted: Schedule, current: ScheduleUpdateInput) -> ScheduleUpdate:
    """The new schedule, paused (with its note) if the current one is."""
    wanted.state = current.description.schedule.state
    return ScheduleUpdate(schedule=wanted)


class ScheduleActivities:
    def __init__(self, client: Client) -> None:
        self._client = client

    @activity.defn(name=names.SYNC_SCHEDULES)
    async def sync_schedules(self, request: SyncSchedulesInput) -> list[str]:
        """Create, update, delete and trigger; returns what it did, one line each."""
        task_queue = activity.info().task_queue
        done: list[str] = []
        for hostname in request.remove:
            handle = self._client.get_schedule_handle(
                opsflow_names.schedule_id(request.stack, hostname)
            )
            try:
                await handle.delete()
                done.append(f"deleted schedule of {hostname}")
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise
        for hostname, hours in sorted(request.schedules.items()):
            schedule_id = opsflow_names.schedule_id(request.stack, hostname)
            wanted = build_schedule(request.stack, hostname, hours, task_queue)
            created = False
            try:
                handle = await self._client.create_schedule(schedule_id, wanted)
                done.append(f"created schedule of {hostname}")
                created = True
            except ScheduleAlreadyRunningError:
                handle = self._client.get_schedule_handle(schedule_id)
                await handle.update(functools.partial(_keeping_state, wanted))
                if hostname not in request.changed:
                    continue
                done.append(f"updated schedule of {hostname}")
            if created or hostname in request.changed:
                await handle.trigger(overlap=ScheduleOverlapPolicy.BUFFER_ONE)
        return done

"""`opsflow schedule`: the Temporal Schedules of time-based instances."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import click

from client.cli import render
from client.cli.session import output_option, with_client

if TYPE_CHECKING:
    from client.api import OpsflowClient, ScheduleView


@click.group()
def schedule() -> None:
    """The Temporal Schedules that start and stop time-based instances."""


def _hour_ranges(hours: Sequence[int]) -> str:
    """[8, 12, 13] -> "8,12-13" (9-17 runs from 9:00 until 17:59, as in the stack file)."""
    runs: list[list[int]] = []
    for hour in sorted(hours):
        if runs and hour == runs[-1][1] + 1:
            runs[-1][1] = hour
        else:
            runs.append([hour, hour])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def compact_hours(hours: Mapping[str, Sequence[int]]) -> str:
    """Weekday -> hours as "mon-fri 9-17, sat 10": days in a row with the same hours are
    grouped, days off are left out ("never" when every day is)."""
    from opsflow.spec import WEEKDAYS

    shown = [_hour_ranges(hours.get(day, [])) for day in WEEKDAYS]
    parts: list[str] = []
    first = 0
    for day in range(len(WEEKDAYS)):
        if day + 1 < len(WEEKDAYS) and shown[day + 1] == shown[first]:
            continue
        if shown[first]:
            days = WEEKDAYS[first][:3] + ("" if first == day else f"-{WEEKDAYS[day][:3]}")
            parts.append(f"{days} {shown[first]}")
        first = day + 1
    return ", ".join(parts) or "never"


def _paused(view: ScheduleView) -> str:
    if not view.paused:
        return "no"
    return f"yes: {view.note}" if view.note else "yes"


@schedule.command("list")
@click.argument("stack_name", metavar="STACK")
@output_option
@with_client
async def schedule_list(client: OpsflowClient, stack_name: str, fmt: str) -> None:
    """STACK's time-based instances: their hours, whether their schedule is paused, when
    it fires next and when it last ran (times in UTC)."""
    views = await client.schedules(stack_name)
    if fmt == "json":
        render.emit_json(views)
        return
    render.emit_table(
        ["HOSTNAME", "STATUS", "TIMEZONE", "HOURS", "PAUSED", "NEXT RUNS (UTC)", "LAST RUN (UTC)"],
        [
            [
                v.hostname,
                v.status.value,
                v.timezone,
                compact_hours(v.hours),
                _paused(v),
                ", ".join(render.utc(at) for at in v.next_runs) or "-",
                render.utc(v.recent_runs[-1].at) if v.recent_runs else "-",
            ]
            for v in views
        ],
    )


@schedule.command("pause")
@click.argument("stack_name", metavar="STACK")
@click.argument("hostname")
@click.option("--note", help="Why: shown by `schedule list` and on the Temporal UI.")
@with_client
async def schedule_pause(
    client: OpsflowClient, stack_name: str, hostname: str, note: str | None
) -> None:
    """Stop HOSTNAME's schedule from firing: the instance stays as it is (running or not)
    until the schedule is unpaused."""
    before = await client.pause_schedule(
        stack_name, hostname, note or "paused with `opsflow schedule pause`"
    )
    again = " (it was paused already)" if before.paused else ""
    click.echo(f"schedule of {hostname} paused{again}: {before.schedule_id}")


@schedule.command("unpause")
@click.argument("stack_name", metavar="STACK")
@click.argument("hostname")
@click.option("--note", help="Shown by `schedule list` and on the Temporal UI.")
@with_client
async def schedule_unpause(
    client: OpsflowClient, stack_name: str, hostname: str, note: str | None
) -> None:
    """Let HOSTNAME's schedule fire again, from its next on or off moment (the moments
    missed while paused are not caught up: `schedule trigger` matches the hours now)."""
    before = await client.unpause_schedule(
        stack_name, hostname, note or "unpaused with `opsflow schedule unpause`"
    )
    again = " (it was not paused)" if not before.paused else ""
    click.echo(f"schedule of {hostname} unpaused{again}: {before.schedule_id}")


@schedule.command("trigger")
@click.argument("stack_name", metavar="STACK")
@click.argument("hostname")
@with_client
async def schedule_trigger(client: OpsflowClient, stack_name: str, hostname: str) -> None:
    """Run HOSTNAME's schedule now (even paused): the instance is started or stopped as
    its hours say at this moment; nothing changes if it already is."""
    from datetime import UTC, datetime

    from opsflow import scaling
    from opsflow.spec import WeeklySchedule

    before = await client.trigger_schedule(stack_name, hostname)
    hours = WeeklySchedule.model_validate({"timezone": before.timezone, **before.hours})
    run, reason = scaling.scheduled(hours, hostname, datetime.now(UTC))
    paused = " (paused: a trigger runs anyway)" if before.paused else ""
    click.echo(f"schedule of {hostname} triggered{paused}: {before.schedule_id}")
    click.echo(f"  {reason}: it should be {'running' if run else 'stopped'}")
    click.echo(
        f"  a start or stop shows in `opsflow stack events {stack_name} --instance {hostname} "
        "--kind scaling`"
    )

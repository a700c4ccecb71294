"""Time-based instances on real Temporal Schedules, and `opsflow schedule list|pause|
unpause|trigger`: the real dev server (the time-skipping server has no schedules), the real
worker activities (sync_schedules, TimeScalingWorkflow) and real sshd instances, driven by
the real CLI.

The layer has `auto_healing: false`, so the only thing that starts or stops the time-based
instance is its schedule (and the apply that triggers it).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import ScheduleDescription
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from client.api import OpsflowClient
from opsflow import names
from opsflow.errors import NotFound
from opsflow.messages import StackDescription
from opsflow.spec import WEEKDAYS
from opsflow.status import InstanceStatus
from tests.helpers import quiet
from tests.integration.conftest import CliResult, make_stack_dir, opsflow_cli

pytestmark = pytest.mark.integration

RECIPES = {"app::setup": "echo up\n", "app::shutdown": "echo down\n"}
EVERY_HOUR = {day: "0-23" for day in WEEKDAYS}


def body(schedule: dict[str, Any] | None) -> str:
    """A layer with always1 and, given a schedule, the time-based timed1."""
    instances = ["{hostname: always1}"]
    if schedule is not None:
        instances.append(f"{{hostname: timed1, scaling: time, schedule: {json.dumps(schedule)}}}")
    return (
        "layers:\n"
        "  - name: app\n"
        "    auto_healing: false\n"
        "    recipes: {setup: [app::setup], shutdown: [app::shutdown]}\n"
        f"    instances: [{', '.join(instances)}]\n"
    )


def rewrite(stack_file: Path, stack: str, schedule: dict[str, Any] | None) -> None:
    """The stack file of make_stack_dir, with another body."""
    stack_file.write_text(f"name: {stack}\ncookbooks: {{source: ./cookbooks}}\n{body(schedule)}")


def expected_moments(hour: int) -> list[tuple[int, int, int, str]]:
    """The calendar moments of a schedule up at `hour` every day: (weekday counted from
    Sunday = 0 as Temporal does, hour, minute, comment)."""
    moments = []
    for day in range(7):  # Monday = 0
        off_day, off = (day, hour + 1) if hour < 23 else (day + 1, 0)
        moments.append(((day + 1) % 7, hour, 0, "timed1 on"))
        moments.append(((off_day + 1) % 7, off, 0, "timed1 off"))
    return sorted(moments)


def off_hour() -> int:
    """An hour 12 hours away from now (UTC): a schedule with only it is off now, and for
    the length of any test."""
    return (datetime.now(UTC).hour + 12) % 24


@pytest.fixture
def address(dev_env: WorkflowEnvironment) -> str:
    return dev_env.client.service_client.config.target_host


def status(found: StackDescription, hostname: str) -> InstanceStatus | None:
    return next((v.status for v in found.instances if v.hostname == hostname), None)


async def until_stack(
    opsflow: OpsflowClient,
    stack: str,
    done: Callable[[StackDescription], bool],
    timeout: float = 60,
) -> StackDescription:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await opsflow.describe(stack)
        if done(found):
            return found
        if asyncio.get_running_loop().time() > deadline:
            shown = "\n".join(f"  {e.kind}: {e.message}" for e in found.events[-10:])
            raise AssertionError(f"{stack} not as expected within {timeout}s; events:\n{shown}")
        await asyncio.sleep(0.25)


async def describe_schedule(opsflow: OpsflowClient, stack: str) -> ScheduleDescription:
    handle = opsflow.temporal.get_schedule_handle(names.schedule_id(stack, "timed1"))
    return await handle.describe()


async def schedule_is_gone(opsflow: OpsflowClient, stack: str) -> bool:
    try:
        await describe_schedule(opsflow, stack)
    except RPCError as err:
        assert err.status == RPCStatusCode.NOT_FOUND, err
        return True
    return False


class Cli:
    def __init__(self, address: str, task_queue: str) -> None:
        self.address, self.task_queue = address, task_queue

    async def __call__(self, *args: str) -> CliResult:
        return await opsflow_cli(list(args), self.address, self.task_queue)

    async def ok(self, *args: str) -> CliResult:
        result = await self(*args)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result

    async def json(self, *args: str) -> Any:
        return json.loads((await self.ok(*args, "-o", "json")).stdout)


@pytest.fixture
def cli(address: str, task_queue: str, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("COLUMNS", "250")  # one table row per line, whatever the terminal
    return Cli(address, task_queue)


async def test_a_time_based_instance_follows_its_schedule_from_apply_to_removal(
    opsflow: OpsflowClient, cli: Cli, tmp_path: Path
) -> None:
    stack = "timesched"
    every_hour = {"timezone": "Asia/Tokyo", **EVERY_HOUR}
    stack_file = make_stack_dir(tmp_path, stack, body(every_hour), RECIPES)

    # a) Created stopped; the apply triggers the new schedule, which starts it.
    await cli.ok("stack", "apply", str(stack_file), "--wait")
    found = await until_stack(
        opsflow, stack, lambda f: status(f, "timed1") == InstanceStatus.ONLINE
    )
    assert status(found, "always1") == InstanceStatus.ONLINE
    started = [e for e in found.events if e.kind == "scaling"]
    assert len(started) == 1 and started[0].hostname == "timed1", started
    assert started[0].message.startswith("timed1 started (time-based): schedule: ")
    assert "Asia/Tokyo is inside timed1's hours" in started[0].message
    assert started[0].details == {"source": "time"}
    assert any(e.kind == "schedules" and "created schedule of timed1" in e.message
               for e in found.events)  # fmt: skip
    await quiet(opsflow, stack)

    listed = await cli.json("schedule", "list", stack)
    assert [s["hostname"] for s in listed] == ["timed1"]  # always1 has no schedule
    timed = listed[0]
    assert timed["schedule_id"] == f"timescale:{stack}:timed1"
    assert timed["status"] == "online" and timed["timezone"] == "Asia/Tokyo"
    assert timed["hours"] == {day: list(range(24)) for day in WEEKDAYS}
    assert timed["paused"] is False
    # Up all week: no moment turns it on or off, so the schedule fires once a week
    # (Monday 00:00 in its zone) to set the instance right; so far only the apply's
    # trigger ran.
    next_runs = [datetime.fromisoformat(at) for at in timed["next_runs"]]
    tokyo = [at.astimezone(ZoneInfo("Asia/Tokyo")) for at in next_runs]
    assert len(tokyo) == 2 and all((t.weekday(), t.hour, t.minute) == (0, 0, 0) for t in tokyo)
    assert len(timed["recent_runs"]) == 1
    assert timed["recent_runs"][0]["workflow_id"].startswith(f"timescale-run:{stack}:timed1")

    described = await describe_schedule(opsflow, stack)
    assert described.schedule.spec.time_zone_name == "Asia/Tokyo"
    assert [c.comment for c in described.schedule.spec.calendars] == ["timed1 weekly check"]
    assert described.schedule.state.paused is False

    table = await cli.ok("schedule", "list", stack)
    lines = table.stdout.splitlines()
    assert all(h in lines[0] for h in ("HOSTNAME", "TIMEZONE", "HOURS", "PAUSED", "NEXT RUNS"))
    row = next(line for line in lines if "timed1" in line)
    assert "mon-sun 0-23" in row and "Asia/Tokyo" in row and "online" in row

    # b) Hours that leave out now: the changed schedule is triggered and stops timed1.
    hour = off_hour()
    rewrite(stack_file, stack, dict.fromkeys(WEEKDAYS, hour))
    await cli.ok("stack", "apply", str(stack_file))
    found = await until_stack(
        opsflow, stack, lambda f: status(f, "timed1") == InstanceStatus.STOPPED
    )
    assert status(found, "always1") == InstanceStatus.ONLINE
    events = await cli.json("stack", "events", stack, "--kind", "scaling")
    stopped = events[-1]
    assert stopped["hostname"] == "timed1" and stopped["details"] == {"source": "time"}
    assert stopped["message"].startswith("timed1 stopped (time-based): schedule: ")
    assert stopped["message"].endswith("UTC is outside timed1's hours")
    updates = await cli.json("stack", "events", stack, "--kind", "schedules")
    assert updates[-1]["message"] == "updated schedule of timed1"

    described = await describe_schedule(opsflow, stack)
    assert described.schedule.spec.time_zone_name == "UTC"
    # Each day: on at `hour`, off an hour later (Temporal counts weekdays from Sunday = 0).
    moments = sorted(
        (c.day_of_week[0].start, c.hour[0].start, c.minute[0].start, c.comment)
        for c in described.schedule.spec.calendars
    )
    assert moments == expected_moments(hour)
    listed = await cli.json("schedule", "list", stack)
    timed = listed[0]
    assert timed["status"] == "stopped" and timed["timezone"] == "UTC"
    assert timed["hours"] == {day: [hour] for day in WEEKDAYS}
    next_runs = [datetime.fromisoformat(at) for at in timed["next_runs"]]
    assert len(next_runs) == 2 and next_runs == sorted(next_runs)
    assert all(at > datetime.now(UTC) and at.minute == at.second == 0 for at in next_runs)
    assert {at.hour for at in next_runs} == {hour, (hour + 1) % 24}
    assert len(timed["recent_runs"]) == 2  # one trigger per apply that changed it

    # d) Out of the file: the instance is deleted, and so is its schedule.
    rewrite(stack_file, stack, None)
    await cli.ok("stack", "apply", str(stack_file))
    assert await schedule_is_gone(opsflow, stack)
    found = await until_stack(opsflow, stack, lambda f: status(f, "timed1") is None)
    assert any(e.kind == "schedules" and e.message == "deleted schedule of timed1"
               for e in found.events)  # fmt: skip
    assert await cli.json("schedule", "list", stack) == []
    gone = await cli("schedule", "trigger", stack, "timed1")
    assert gone.returncode == 2 and "stack timesched has no instance 'timed1'" in gone.stderr

    await cli.ok("stack", "delete", stack, "--wait")


async def test_schedule_pause_unpause_and_trigger(
    opsflow: OpsflowClient, cli: Cli, tmp_path: Path
) -> None:
    stack = "timectl"
    hour = off_hour()
    stack_file = make_stack_dir(tmp_path, stack, body(dict.fromkeys(WEEKDAYS, hour)), RECIPES)
    await cli.ok("stack", "apply", str(stack_file), "--wait")
    found = await quiet(opsflow, stack)
    # Off now: the apply's trigger ran and left it stopped, as it was created.
    assert status(found, "timed1") == InstanceStatus.STOPPED
    assert status(found, "always1") == InstanceStatus.ONLINE
    assert [len(s["recent_runs"]) for s in await cli.json("schedule", "list", stack)] == [1]

    # c) pause and unpause, with their notes; a paused schedule stays as it is.
    paused = await cli.ok("schedule", "pause", stack, "timed1", "--note", "maintenance window")
    assert paused.stdout.strip() == f"schedule of timed1 paused: timescale:{stack}:timed1"
    (timed,) = await cli.json("schedule", "list", stack)
    assert timed["paused"] is True and timed["note"] == "maintenance window"
    assert (await describe_schedule(opsflow, stack)).schedule.state.paused is True
    table = await cli.ok("schedule", "list", stack)
    assert "yes: maintenance window" in next(x for x in table.stdout.splitlines() if "timed1" in x)
    twice = await cli.ok("schedule", "pause", stack, "timed1")
    assert "(it was paused already)" in twice.stdout
    (timed,) = await cli.json("schedule", "list", stack)
    assert timed["paused"] is True and timed["note"] == "paused with `opsflow schedule pause`"

    unpaused = await cli.ok("schedule", "unpause", stack, "timed1", "--note", "back")
    assert unpaused.stdout.strip() == f"schedule of timed1 unpaused: timescale:{stack}:timed1"
    (timed,) = await cli.json("schedule", "list", stack)
    assert timed["paused"] is False and timed["note"] == "back"
    assert (await describe_schedule(opsflow, stack)).schedule.state.paused is False

    # trigger: a new TimeScalingWorkflow run, which finds timed1 already as its hours say
    # (stopped) and so changes nothing.
    triggered = await cli.ok("schedule", "trigger", stack, "timed1")
    assert f"schedule of timed1 triggered: timescale:{stack}:timed1" in triggered.stdout
    assert "is outside timed1's hours: it should be stopped" in triggered.stdout
    runs = await until_runs(opsflow, stack, 2)
    result = await opsflow.temporal.get_workflow_handle(runs[-1].action.workflow_id).result()
    assert result is False  # off now
    # ... also while paused (a trigger is a manual run)
    await cli.ok("schedule", "pause", stack, "timed1")
    while_paused = await cli.ok("schedule", "trigger", stack, "timed1")
    assert "(paused: a trigger runs anyway)" in while_paused.stdout
    await until_runs(opsflow, stack, 3)
    (timed,) = await cli.json("schedule", "list", stack)
    assert len(timed["recent_runs"]) == 3 and timed["paused"] is True
    found = await opsflow.describe(stack)
    assert status(found, "timed1") == InstanceStatus.STOPPED
    assert not [e for e in found.events if e.kind == "scaling"]  # nothing to change

    # e) not time-based, unknown instance, unknown stack: exit 2, nothing done.
    for command in ("pause", "unpause", "trigger"):
        always = await cli("schedule", command, stack, "always1")
        assert always.returncode == 2, always.stderr
        assert "always1 is not a time-based instance (scaling: always)" in always.stderr
    unknown = await cli("schedule", "pause", stack, "nope")
    assert unknown.returncode == 2 and f"stack {stack} has no instance 'nope'" in unknown.stderr
    no_stack = await cli("schedule", "list", "nosuchstack")
    assert no_stack.returncode == 2 and "no stack named nosuchstack" in no_stack.stderr
    assert (await describe_schedule(opsflow, stack)).schedule.state.paused is True

    # A schedule deleted behind opsflow's back: exit 1, saying so.
    await opsflow.temporal.get_schedule_handle(names.schedule_id(stack, "timed1")).delete()
    for args in (("list", stack), ("trigger", stack, "timed1"), ("unpause", stack, "timed1")):
        missing = await cli("schedule", *args)
        assert missing.returncode == 1, (args, missing.stderr)
        assert f"timescale:{stack}:timed1) is missing in Temporal" in missing.stderr

    await cli.ok("stack", "delete", stack, "--wait")


async def until_runs(opsflow: OpsflowClient, stack: str, count: int) -> list[Any]:
    """The schedule's recent actions once there are `count` of them."""
    for _ in range(200):
        runs = list((await describe_schedule(opsflow, stack)).info.recent_actions)
        if len(runs) >= count:
            return runs
        await asyncio.sleep(0.1)
    raise AssertionError(f"the schedule of {stack} did not reach {count} runs")


@pytest.mark.parametrize(
    ("schedule", "field", "problem"),
    [
        ({"monday": "9-25"}, "schedule.monday", "'9-25': hours are 0-23"),
        (
            {"timezone": "Mars/Base", "monday": "9-17"},
            "schedule",
            "timezone: 'Mars/Base' is not a known IANA time zone",
        ),
        ({"funday": "9-17"}, "schedule", "unknown weekday(s) ['funday']"),
    ],
)
async def test_a_bad_schedule_is_refused_before_anything_is_created(
    opsflow: OpsflowClient,
    cli: Cli,
    tmp_path: Path,
    schedule: dict[str, Any],
    field: str,
    problem: str,
) -> None:
    stack = "timebad"
    stack_file = make_stack_dir(tmp_path, stack, body(schedule), RECIPES)
    for command in ("plan", "apply"):
        refused = await cli("stack", command, str(stack_file))
        assert refused.returncode == 2, refused.stderr
        assert f"{stack_file}: layers[0].instances[1].{field}: {problem}" in refused.stderr
    with pytest.raises(NotFound):
        await opsflow.describe(stack)
    assert await schedule_is_gone(opsflow, stack)

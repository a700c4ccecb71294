"""`opsflow schedule ...` without a server: which instances it acts on, what it refuses,
how Temporal's answers are shown. Against real schedules: tests/integration/test_schedules.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner, Result
from temporalio.client import (
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionResult,
    ScheduleOverlapPolicy,
)
from temporalio.service import RPCError, RPCStatusCode

from client.api import OpsflowClient, schedule_url
from client.cli import cli, session
from client.cli.schedule import compact_hours
from opsflow.errors import InvalidInput, NotFound, OperationFailed
from opsflow.messages import InstanceView, StackDescription
from opsflow.spec import WEEKDAYS, InstanceSpec, LayerSpec, Scaling, StackSpec, WeeklySchedule
from opsflow.status import InstanceStatus

NEXT = [datetime(2030, 1, d, h, tzinfo=UTC) for d, h in ((7, 8), (7, 18), (8, 8))]
LAST = datetime(2030, 1, 6, 18, 0, 0, 250000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("hours", "shown"),
    [
        ({"monday": list(range(9, 18)), "friday": [8, 12, 13]}, "mon 9-17, fri 8,12-13"),
        ({day: list(range(24)) for day in WEEKDAYS}, "mon-sun 0-23"),
        ({day: [9, 10] for day in WEEKDAYS[:5]}, "mon-fri 9-10"),
        (
            {"monday": [1], "tuesday": [1], "thursday": [1], "sunday": [0, 5]},
            "mon-tue 1, thu 1, sun 0,5",
        ),
        ({"wednesday": [23]}, "wed 23"),
        ({}, "never"),
    ],
)
def test_hours_are_shown_compactly(hours: dict[str, list[int]], shown: str) -> None:
    assert compact_hours(hours) == shown


class FakeSchedule:
    def __init__(self, temporal: FakeTemporal, schedule_id: str) -> None:
        self.temporal, self.id = temporal, schedule_id

    def _record(self, call: str, **kwargs: Any) -> None:
        if self.id in self.temporal.missing:
            raise RPCError("schedule not found", RPCStatusCode.NOT_FOUND, b"")
        self.temporal.calls.append((call, self.id, kwargs))

    async def describe(self, **_: Any) -> Any:
        self._record("describe")
        run = ScheduleActionResult(
            scheduled_at=LAST,
            started_at=LAST,
            action=ScheduleActionExecutionStartWorkflow(
                workflow_id=f"timescale-run:{self.id.split(':', 1)[1]}-x",
                first_execution_run_id="r",
            ),
        )
        return SimpleNamespace(
            schedule=SimpleNamespace(
                state=SimpleNamespace(paused=self.temporal.paused, note=self.temporal.note)
            ),
            info=SimpleNamespace(next_action_times=NEXT, recent_actions=[run]),
        )

    async def pause(self, note: str | None = None) -> None:
        self._record("pause", note=note)

    async def unpause(self, note: str | None = None) -> None:
        self._record("unpause", note=note)

    async def trigger(self, overlap: ScheduleOverlapPolicy | None = None) -> None:
        self._record("trigger", overlap=overlap)


class FakeTemporal:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.missing: set[str] = set()
        self.paused = False
        self.note: str | None = "opsflow: time-based instance"

    def get_schedule_handle(self, schedule_id: str) -> FakeSchedule:
        return FakeSchedule(self, schedule_id)


class StackWithATimedInstance(OpsflowClient):
    """A real OpsflowClient whose stack (the describe query) has web1 (always) and night1
    (time-based), and whose schedules are fakes."""

    def __init__(self, deleting: bool = False) -> None:
        super().__init__(client=FakeTemporal())  # type: ignore[arg-type]
        self.fake: FakeTemporal = self.temporal  # type: ignore[assignment]
        self.deleting = deleting

    async def describe(self, stack: str) -> StackDescription:
        if stack != "shop":
            raise NotFound(f"no stack named {stack}")
        hours = WeeklySchedule(timezone="Europe/Paris", monday=[22, 23], sunday="0-3")
        spec = StackSpec(
            name=stack,
            layers=[
                LayerSpec(
                    name="web",
                    instances=[
                        InstanceSpec(hostname="web1"),
                        InstanceSpec(hostname="night1", scaling=Scaling.TIME, schedule=hours),
                    ],
                )
            ],
        )
        views = [
            InstanceView(
                hostname="night1",
                layers=["web"],
                status=InstanceStatus.STOPPED,
                scaling=Scaling.TIME,
            ),
            InstanceView(hostname="web1", layers=["web"], status=InstanceStatus.ONLINE),
        ]
        return StackDescription(
            name=stack,
            spec=spec,
            source_file=None,
            instances=views,
            deleting=self.deleting,
            configure_rounds=0,
            events=[],
        )


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> StackWithATimedInstance:
    client = StackWithATimedInstance()

    async def connect() -> OpsflowClient:
        return client

    monkeypatch.setattr(session, "open_client", connect)
    return client


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, ["schedule", *args], env={"COLUMNS": "250"})


def test_list_shows_each_time_based_instance_and_its_schedule(
    stack: StackWithATimedInstance,
) -> None:
    result = invoke("list", "shop", "-o", "json")
    assert result.exit_code == 0, result.output
    (night,) = json.loads(result.output)
    assert night == {
        "hostname": "night1",
        "schedule_id": "timescale:shop:night1",
        "status": "stopped",
        "timezone": "Europe/Paris",
        "hours": {
            **{day: [] for day in WEEKDAYS},
            "monday": [22, 23],
            "sunday": [0, 1, 2, 3],
        },
        "paused": False,
        "note": "opsflow: time-based instance",
        "next_runs": ["2030-01-07T08:00:00Z", "2030-01-07T18:00:00Z"],
        "recent_runs": [
            {"at": "2030-01-06T18:00:00.250000Z", "workflow_id": "timescale-run:shop:night1-x"}
        ],
        "url": schedule_url("timescale:shop:night1"),
    }
    assert [c[:2] for c in stack.fake.calls] == [("describe", "timescale:shop:night1")]

    stack.fake.paused, stack.fake.note = True, "db migration"
    table = invoke("list", "shop")
    assert table.exit_code == 0, table.output
    row = next(line for line in table.output.splitlines() if "night1" in line)
    for cell in (
        "stopped",
        "Europe/Paris",
        "mon 22-23, sun 0-3",
        "yes: db migration",
        "2030-01-07T08:00:00Z, 2030-01-07T18:00:00Z",
        "2030-01-06T18:00:00Z",
    ):
        assert cell in row, (cell, row)


def test_pause_unpause_and_trigger_act_on_the_instances_schedule(
    stack: StackWithATimedInstance,
) -> None:
    paused = invoke("pause", "shop", "night1", "--note", "db migration")
    assert paused.exit_code == 0, paused.output
    assert paused.output == "schedule of night1 paused: timescale:shop:night1\n"
    unpaused = invoke("unpause", "shop", "night1")
    assert unpaused.exit_code == 0, unpaused.output
    assert "(it was not paused)" in unpaused.output
    default = invoke("pause", "shop", "night1")
    assert default.exit_code == 0, default.output
    triggered = invoke("trigger", "shop", "night1")
    assert triggered.exit_code == 0, triggered.output
    assert "schedule of night1 triggered: timescale:shop:night1" in triggered.output
    assert "Europe/Paris is " in triggered.output
    assert [(c[0], c[2]) for c in stack.fake.calls if c[0] != "describe"] == [
        ("pause", {"note": "db migration"}),
        ("unpause", {"note": "unpaused with `opsflow schedule unpause`"}),
        ("pause", {"note": "paused with `opsflow schedule pause`"}),
        ("trigger", {"overlap": ScheduleOverlapPolicy.BUFFER_ONE}),
    ]


@pytest.mark.parametrize("command", ["pause", "unpause", "trigger"])
def test_an_instance_that_is_not_time_based_is_refused_with_exit_2(
    stack: StackWithATimedInstance, command: str
) -> None:
    result = invoke(command, "shop", "web1")
    assert isinstance(result.exception, InvalidInput)
    assert result.exception.exit_code == 2
    assert str(result.exception) == "web1 is not a time-based instance (scaling: always)"
    assert stack.fake.calls == []


def test_an_unknown_instance_or_stack_exits_2(stack: StackWithATimedInstance) -> None:
    unknown = invoke("trigger", "shop", "nope")
    assert isinstance(unknown.exception, NotFound) and unknown.exception.exit_code == 2
    assert str(unknown.exception) == "stack shop has no instance 'nope'"
    no_stack = invoke("list", "nosuch")
    assert isinstance(no_stack.exception, NotFound)
    assert stack.fake.calls == []


@pytest.mark.parametrize(
    "args", [("list", "shop"), ("pause", "shop", "night1"), ("trigger", "shop", "night1")]
)
def test_a_schedule_missing_in_temporal_exits_1_saying_so(
    stack: StackWithATimedInstance, args: tuple[str, ...]
) -> None:
    stack.fake.missing.add("timescale:shop:night1")
    result = invoke(*args)
    assert isinstance(result.exception, OperationFailed) and result.exception.exit_code == 1
    assert "the schedule of time-based instance night1 (timescale:shop:night1) is missing " in (
        str(result.exception)
    )


def test_a_stack_being_deleted_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    async def connect() -> OpsflowClient:
        return StackWithATimedInstance(deleting=True)

    monkeypatch.setattr(session, "open_client", connect)
    result = invoke("list", "shop")
    assert isinstance(result.exception, InvalidInput)
    assert str(result.exception) == "stack shop is being deleted (its schedules with it)"

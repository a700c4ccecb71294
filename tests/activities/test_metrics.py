"""read_metrics against real local instances (real sshd's), and parse_metrics on fixed text."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import local_provider, metrics
from opsflow.errors import ErrorType
from opsflow.messages import (
    InstanceMetrics,
    InstanceView,
    LaunchResult,
    MachineInput,
    MetricsReport,
    ReadMetricsInput,
)
from opsflow.spec import Provider
from opsflow.status import InstanceStatus
from tests.activities.conftest import STACK, Launcher

ALL = ["cpu", "memory", "load", "custom"]


def view(hostname: str, launched: LaunchResult | None) -> InstanceView:
    return InstanceView(
        hostname=hostname,
        layers=["web"],
        status=InstanceStatus.ONLINE,
        root=launched.root if launched else None,
        private_ip=launched.private_ip if launched else None,
        ssh=launched.ssh if launched else None,
    )


async def read(
    views: list[InstanceView],
    wanted: list[str],
    custom_metric: str | None = None,
    timeout: float = 10.0,
) -> MetricsReport:
    request = ReadMetricsInput(
        stack=STACK,
        layer="web",
        instances=views,
        metrics=wanted,
        custom_metric=custom_metric,
        timeout=timeout,
    )
    report: MetricsReport = await ActivityEnvironment().run(metrics.read_metrics, request)
    return report


async def read_one(
    instance: LaunchResult, wanted: list[str], custom_metric: str | None = None, **kw: float
) -> InstanceMetrics:
    report = await read([view("web1", instance)], wanted, custom_metric, **kw)
    [only] = report.instances
    assert only.hostname == "web1"
    return only


# ---- real instances ------------------------------------------------------------------------


@pytest.mark.integration
async def test_reads_every_metric_and_the_custom_command_runs_in_the_root(
    instance: LaunchResult,
) -> None:
    (Path(instance.root) / "metric").write_text("42.5\n")

    result = await read_one(instance, ALL, "cat metric")

    assert result.error is None
    assert set(result.values) == set(ALL)
    assert 0 <= result.values["cpu"] <= 100
    assert 0 < result.values["memory"] < 100
    assert result.values["load"] >= 0
    assert result.values["custom"] == 42.5


@pytest.mark.integration
async def test_the_custom_command_sees_its_instance_stack_and_root(
    instance: LaunchResult,
) -> None:
    command = (
        'test "$OPSFLOW_INSTANCE" = web1 && test "$OPSFLOW_STACK" = shop'
        ' && test "$OPSFLOW_ROOT" = "$(pwd)" && test -d "$OPSFLOW_ROOT"'
        " && printf '%s\\n' starting 7"
    )

    result = await read_one(instance, ["custom"], command)

    assert (result.values, result.error) == ({"custom": 7.0}, None)
    assert " " in instance.root  # the root went through quoting (see opsflow_home)


@pytest.mark.integration
async def test_only_the_requested_metrics_are_read(instance: LaunchResult) -> None:
    await read_one(instance, ["load"])  # the pooled connection is open
    started = time.monotonic()
    result = await read_one(instance, ["memory", "load"])

    assert set(result.values) == {"memory", "load"}
    assert result.error is None
    assert time.monotonic() - started < 1.0  # no cpu sample taken


@pytest.mark.integration
async def test_a_dead_instance_is_an_answer_and_the_live_one_is_read(launch: Launcher) -> None:
    web1, web2 = launch("web1"), launch("web2")
    views = [view("web1", web1), view("web2", web2)]
    warm = await read(views, ["load"])  # both pooled connections open
    assert [m.error for m in warm.instances] == [None, None]
    local_provider.stop(MachineInput(stack=STACK, hostname="web2", provider=Provider.LOCAL))

    report = await read(views, ["cpu", "load"], timeout=5.0)

    live, dead = report.instances
    assert (live.hostname, dead.hostname) == ("web1", "web2")
    assert live.error is None
    assert set(live.values) == {"cpu", "load"}
    assert dead.values == {}
    assert dead.error is not None
    assert "SSH" in dead.error, dead.error


@pytest.mark.integration
async def test_an_instance_without_ssh_is_skipped(instance: LaunchResult) -> None:
    report = await read([view("web0", None), view("web1", instance)], ["load"])

    skipped, read_ = report.instances
    assert (skipped.hostname, skipped.values, skipped.error) == ("web0", {}, "no SSH endpoint")
    assert read_.error is None
    assert "load" in read_.values


@pytest.mark.integration
async def test_a_custom_command_printing_a_word_is_an_error_naming_it(
    instance: LaunchResult,
) -> None:
    result = await read_one(instance, ["memory", "custom"], "echo 12; echo lots")

    assert set(result.values) == {"memory"}
    assert result.error == "custom metric: printed 'lots', not a number"


@pytest.mark.integration
async def test_a_failing_custom_command_is_an_error_with_what_it_printed(
    instance: LaunchResult,
) -> None:
    result = await read_one(instance, ["load", "custom"], "echo 3; echo 'no backend' >&2; exit 3")

    assert set(result.values) == {"load"}
    assert result.error == "custom metric: exit 3, printed '3', stderr 'no backend'"


@pytest.mark.integration
async def test_a_silent_custom_command_is_an_error(instance: LaunchResult) -> None:
    result = await read_one(instance, ["custom"], "true")

    assert (result.values, result.error) == ({}, "custom metric: printed nothing")


@pytest.mark.integration
async def test_a_hanging_custom_command_is_stopped_and_the_rest_is_read(
    instance: LaunchResult,
) -> None:
    # 3 s: the cpu sample (1 s), a margin (1 s), 1 s left for the custom command.
    result = await read_one(instance, ["cpu", "custom"], "echo 1; sleep 30", timeout=3.0)

    assert set(result.values) == {"cpu"}
    assert result.error == "custom metric: timed out after 1s, printed '1'"


@pytest.mark.integration
async def test_the_whole_read_is_limited_by_the_timeout(instance: LaunchResult) -> None:
    # A command that ignores TERM outlives timeout(1): the SSH command's own timeout ends it.
    started = time.monotonic()
    result = await read_one(
        instance, ["load", "custom"], "trap '' TERM; sleep 5 & wait; wait", timeout=1.5
    )

    assert result.values == {}
    assert result.error == "SSH command timed out after 1.5s"
    assert time.monotonic() - started < 3.0


@pytest.mark.parametrize(
    ("wanted", "custom_metric"),
    [(["cpu", "disk"], None), (["custom"], None), (["custom"], "")],
)
async def test_a_request_that_cannot_be_read_is_invalid_input(
    wanted: list[str], custom_metric: str | None
) -> None:
    with pytest.raises(ApplicationError) as raised:
        await read([], wanted, custom_metric)

    assert raised.value.type == ErrorType.INVALID_INPUT
    assert raised.value.non_retryable


async def test_no_instances_no_readings() -> None:
    assert await read([], ALL, "true") == MetricsReport(instances=[])


# ---- parse_metrics -------------------------------------------------------------------------

STAT1 = "cpu  100 10 50 800 40 0 0 0 0 0"
# +30 user, +10 system, +50 idle, +10 iowait: busy 40 of 100
STAT2 = "cpu  130 10 60 850 50 0 0 0 0 0"


def output(*lines: str) -> str:
    return "\n".join([metrics._START, *lines]) + "\n"


def custom(stdout: str, code: int = 0, limit: int | None = 8) -> list[str]:
    head = [f"custom_limit={limit}"] if limit is not None else []
    return [*head, "custom_begin", *stdout.splitlines(), "", f"custom_exit={code}"]


def test_cpu_is_the_busy_share_between_two_stat_lines() -> None:
    assert metrics.parse_metrics(output(f"stat1={STAT1}", f"stat2={STAT2}"), ["cpu"]) == (
        {"cpu": 40.0},
        None,
    )


def test_cpu_leaves_guest_time_out_of_the_total() -> None:
    # guest (the 9th number) is already counted in user: 20 busy of 40
    first = "cpu  0 0 0 0 0 0 0 0 0 0"
    second = "cpu  20 0 0 20 0 0 0 0 999 999"
    values, error = metrics.parse_metrics(output(f"stat1={first}", f"stat2={second}"), ["cpu"])
    assert (values, error) == ({"cpu": 50.0}, None)


def test_cpu_of_an_old_kernel_without_iowait() -> None:
    text = output("stat1=cpu 10 0 10 80", "stat2=cpu 20 0 20 140")
    assert metrics.parse_metrics(text, ["cpu"]) == ({"cpu": 25.0}, None)


@pytest.mark.parametrize(
    ("lines", "error"),
    [
        ([], "cpu: /proc/stat could not be read"),
        (["stat1=", "stat2="], "cpu: /proc/stat could not be read"),
        ([f"stat1={STAT1}", f"stat2={STAT1}"], "cpu: /proc/stat did not advance over the sample"),
        (
            ["stat1=intr 1 2 3 4 5", f"stat2={STAT2}"],
            "cpu: /proc/stat's first line is not understood: 'intr 1 2 3 4 5'",
        ),
        (
            [f"stat1={STAT1}", "stat2=cpu 1 2 x 4"],
            "cpu: /proc/stat's first line is not understood: 'cpu 1 2 x 4'",
        ),
    ],
)
def test_cpu_that_cannot_be_read(lines: list[str], error: str) -> None:
    assert metrics.parse_metrics(output(*lines), ["cpu"]) == ({}, error)


def test_memory_is_the_percent_not_available() -> None:
    text = output("mem_total=16000000", "mem_available=12000000")
    assert metrics.parse_metrics(text, ["memory"]) == ({"memory": 25.0}, None)


@pytest.mark.parametrize(
    ("lines", "error"),
    [
        ([], "memory: /proc/meminfo could not be read"),
        (
            ["mem_total=16000000"],
            "memory: /proc/meminfo has no MemAvailable (a kernel before 3.14?)",
        ),
        (
            ["mem_total=lots", "mem_available=3"],
            "memory: /proc/meminfo is not understood: MemTotal 'lots', MemAvailable '3'",
        ),
        (["mem_total=0", "mem_available=0"], "memory: /proc/meminfo says MemTotal is 0"),
    ],
)
def test_memory_that_cannot_be_read(lines: list[str], error: str) -> None:
    assert metrics.parse_metrics(output(*lines), ["memory"]) == ({}, error)


def test_load_is_the_one_minute_average() -> None:
    assert metrics.parse_metrics(output("load=1.25"), ["load"]) == ({"load": 1.25}, None)


@pytest.mark.parametrize("text", ["", "high", "-1", "nan"])
def test_load_that_cannot_be_read(text: str) -> None:
    values, error = metrics.parse_metrics(output(f"load={text}"), ["load"])
    assert values == {}
    assert error is not None
    assert error.startswith("load: /proc/loadavg")


def test_custom_is_the_last_non_empty_line() -> None:
    text = output("load=0.5", *custom("warming up\nload=99\n\n  17.25  \n\n"))
    assert metrics.parse_metrics(text, ["load", "custom"]) == (
        {"load": 0.5, "custom": 17.25},
        None,
    )


def test_custom_output_that_looks_like_the_script_s_own_is_not_mistaken() -> None:
    text = output(*custom("custom_exit=3\ncustom_begin\n5"))
    assert metrics.parse_metrics(text, ["custom"]) == ({"custom": 5.0}, None)


@pytest.mark.parametrize(
    ("lines", "stderr", "error"),
    [
        (custom("ok"), "", "custom metric: printed 'ok', not a number"),
        (custom("inf"), "", "custom metric: printed 'inf', not a number"),
        (custom(""), "", "custom metric: printed nothing"),
        (custom("", code=127), "sh: 1: nope: not found", None),
        (custom("5", code=2), "", "custom metric: exit 2, printed '5'"),
        (custom("", code=124), "", "custom metric: timed out after 8s, printed nothing"),
        (custom("", code=124, limit=None), "", "custom metric: exit 124, printed nothing"),
        (["custom_begin", "5"], "", "custom metric: the output was cut short (no exit code)"),
        ([], "", "custom metric: the command did not run"),
    ],
)
def test_custom_that_cannot_be_read(lines: list[str], stderr: str, error: str | None) -> None:
    expected = error or "custom metric: exit 127, printed nothing, stderr 'sh: 1: nope: not found'"
    assert metrics.parse_metrics(output(*lines), ["custom"], stderr=stderr) == ({}, expected)


def test_every_problem_is_said_and_what_could_be_read_is_kept() -> None:
    text = output("load=0.75", *custom("n/a"))
    values, error = metrics.parse_metrics(text, ["cpu", "memory", "load", "custom"])
    assert values == {"load": 0.75}
    assert error == (
        "cpu: /proc/stat could not be read; memory: /proc/meminfo could not be read; "
        "custom metric: printed 'n/a', not a number"
    )


def test_lines_before_the_start_are_ignored() -> None:
    text = "load=99\nWelcome!\n" + output("load=0.5")
    assert metrics.parse_metrics(text, ["load"]) == ({"load": 0.5}, None)


def test_output_without_the_start_line_means_the_script_did_not_run() -> None:
    assert metrics.parse_metrics("", ["load"], stderr="csh: Unknown option\n") == (
        {},
        "the metrics script did not run: csh: Unknown option",
    )


def test_the_script_holds_only_the_parts_requested() -> None:
    script = metrics.metrics_script(
        ["load"], custom_metric="rm -rf /", timeout=10, stack=STACK, hostname="web1", root="/r"
    )
    assert "/proc/loadavg" in script
    assert "/proc/stat" not in script
    assert "meminfo" not in script
    assert "rm -rf" not in script

"""Scaling decisions: schedules in their time zone, and load-based steps."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from opsflow.messages import InstanceMetrics, InstanceView, MetricsReport
from opsflow.scaling import LoadState, averages, decide_load, scheduled, should_run, transitions
from opsflow.spec import (
    InstanceSpec,
    LoadBasedScaling,
    Metric,
    MetricThresholds,
    Scaling,
    WeeklySchedule,
)
from opsflow.status import InstanceStatus

MONDAY_NOON_UTC = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # a Monday


def test_should_run_reads_hours_in_the_schedules_time_zone() -> None:
    paris = WeeklySchedule(timezone="Europe/Paris", monday="9-12")
    assert should_run(paris, MONDAY_NOON_UTC - timedelta(hours=1))  # 12:00 in Paris
    assert not should_run(paris, MONDAY_NOON_UTC)  # 13:00 in Paris
    utc = WeeklySchedule(monday=[12])
    assert should_run(utc, MONDAY_NOON_UTC) and not should_run(
        utc, MONDAY_NOON_UTC + timedelta(days=1)
    )
    run, why = scheduled(paris, "w1", MONDAY_NOON_UTC)
    assert not run and why == "schedule: Monday 13:00 Europe/Paris is outside w1's hours"


def test_transitions_are_the_hours_it_turns_on_and_off_across_the_week() -> None:
    hours = WeeklySchedule(monday="9-17", tuesday="0-23", sunday=[23])
    # Monday 9 on, 18 off; Tuesday 0 on (through to Wednesday 0 off); Sunday 23 on, and it
    # runs on into Monday 0 which is off.
    assert transitions(hours) == [(0, 0), (0, 9), (0, 18), (1, 0), (2, 0), (6, 23)]
    assert transitions(WeeklySchedule()) == []


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ({"monday": "9-25"}, "hours are 0-23"),
        ({"monday": [24]}, "hours are 0-23"),
        ({"monday": "17-9"}, "from the earlier hour"),
        ({"funday": "9"}, "unknown weekday"),
        ({"timezone": "Mars/Olympus"}, "not a known IANA time zone"),
    ],
)
def test_bad_schedules_are_refused_naming_the_problem(
    schedule: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        InstanceSpec.model_validate({"hostname": "w1", "scaling": "time", "schedule": schedule})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"up": {"cpu": 20}, "down": {"cpu": 30}}, "up.cpu .20. must be above down.cpu .30."),
        ({"min": 3, "max": 2}, r"min \(3\) is above max \(2\)"),
        ({"up": {"custom": 5}, "down": {"custom": 1}}, "needs `custom_metric`"),
    ],
)
def test_bad_load_settings_are_refused(config: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        LoadBasedScaling.model_validate(config)


def view(host: str, status: InstanceStatus, scaling: Scaling = Scaling.LOAD) -> InstanceView:
    return InstanceView(hostname=host, layers=["web"], status=status, scaling=scaling)


ONLINE, STOPPED = InstanceStatus.ONLINE, InstanceStatus.STOPPED
T0 = MONDAY_NOON_UTC


def config(**extra: object) -> LoadBasedScaling:
    base: dict[str, object] = {
        "custom_metric": "cat metric",
        "up": {"custom": 70, "thresholds_wait_time": 60, "ignore_metrics_time": 120},
        "down": {"custom": 20, "thresholds_wait_time": 60, "ignore_metrics_time": 120},
    }
    return LoadBasedScaling.model_validate(base | extra)


def test_averages_are_over_the_instances_that_reported() -> None:
    report = MetricsReport(
        instances=[
            InstanceMetrics(hostname="a", values={"cpu": 10, "custom": 1}),
            InstanceMetrics(hostname="b", values={"cpu": 30}, error="custom: printed 'x'"),
        ]
    )
    assert averages(report) == {"cpu": 20, "custom": 1}


def test_up_after_the_wait_time_then_cooldown_then_down_after_the_wait_time() -> None:
    state, cfg = LoadState(), config()
    views = [view("w1", ONLINE, Scaling.ALWAYS), view("w2", STOPPED), view("w3", STOPPED)]
    assert decide_load(state, cfg, "web", views, {"custom": 90}, T0) is None
    assert decide_load(state, cfg, "web", views, {"custom": 90}, T0 + timedelta(seconds=59)) is None
    up = decide_load(state, cfg, "web", views, {"custom": 90}, T0 + timedelta(seconds=60))
    assert up is not None and up.direction == "up" and up.start == ["w2"] and up.add == []
    assert "custom 90.0 > 70" in up.message
    views[1] = view("w2", ONLINE)
    later = T0 + timedelta(seconds=100)
    assert decide_load(state, cfg, "web", views, {"custom": 5}, later) is None  # cooldown
    after = T0 + timedelta(seconds=181)
    assert decide_load(state, cfg, "web", views, {"custom": 5}, after) is None  # waiting
    down = decide_load(state, cfg, "web", views, {"custom": 5}, after + timedelta(seconds=60))
    assert down is not None and down.stop == ["w2"]  # only load-based ones stop


def test_a_value_between_the_thresholds_resets_the_wait() -> None:
    state, cfg, views = LoadState(), config(), [view("w1", STOPPED)]
    decide_load(state, cfg, "web", views, {"custom": 90}, T0)
    decide_load(state, cfg, "web", views, {"custom": 50}, T0 + timedelta(seconds=30))
    assert decide_load(state, cfg, "web", views, {"custom": 90}, T0 + timedelta(seconds=61)) is None


def test_max_adds_new_instances_when_no_stopped_one_is_left_and_caps_the_step() -> None:
    cfg = config(max=3, up={"custom": 70, "instance_count": 3, "thresholds_wait_time": 0})
    views = [view("w1", ONLINE, Scaling.ALWAYS), view("w2", STOPPED)]
    up = decide_load(LoadState(), cfg, "web", views, {"custom": 90}, T0)
    assert up is not None and up.start == ["w2"] and up.add == ["web-load-1"]  # 3 running
    no_max = config(up={"custom": 70, "instance_count": 3, "thresholds_wait_time": 0})
    only = decide_load(LoadState(), no_max, "web", views, {"custom": 90}, T0)
    assert only is not None and only.add == []  # OpsWorks: only its own load instances


def test_min_starts_instances_whatever_the_metrics_and_bounds_scale_down() -> None:
    cfg = config(min=2, down={"custom": 20, "instance_count": 5, "thresholds_wait_time": 0})
    views = [view("w1", ONLINE), view("w2", STOPPED), view("w3", STOPPED)]
    up = decide_load(LoadState(), cfg, "web", views, {}, T0)
    assert up is not None and up.start == ["w2"] and "below min 2" in up.message
    views = [view("w1", ONLINE), view("w2", ONLINE), view("w3", ONLINE)]
    down = decide_load(LoadState(), cfg, "web", views, {"custom": 1}, T0)
    assert down is not None and down.stop == ["w3"]  # 5 asked, min 2 keeps two


def test_every_metric_has_a_threshold_and_the_thresholds_name_them_as_text() -> None:
    assert all(metric.value in MetricThresholds.model_fields for metric in Metric)
    thresholds = MetricThresholds(cpu=80, custom=3)
    assert thresholds.metrics() == {"cpu": 80.0, "custom": 3.0}
    assert json.dumps(thresholds.metrics()) == '{"cpu": 80.0, "custom": 3.0}'

"""Scaling decisions, pure: when a time-based instance should run, which calendar moments
its Temporal Schedule fires at, and what a layer's load-based scaling does with averages.

Load-based rules (OpsWorks', stated):
- the layer average of each metric is the mean over its online instances that reported it;
- scale up when ANY `up` threshold is exceeded for `up.thresholds_wait_time`; scale down
  when ALL `down` thresholds are undercut for `down.thresholds_wait_time`;
- a step starts (or stops) `instance_count` of the layer's `scaling: load` instances:
  stopped ones first, by hostname; down stops online ones, the last hostname first;
- `min` / `max` bound the running instances of the layer (all scaling kinds); below `min`
  it scales up whatever the metrics say. Where `max` is set and no stopped load-based
  instance is left, new ones are added (`{layer}-load-{n}`), beyond OpsWorks;
- after a step, metrics are ignored for that direction's `ignore_metrics_time`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import StrEnum
from statistics import fmean
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from opsflow import names
from opsflow.messages import InstanceView, MetricsReport
from opsflow.spec import LoadBasedScaling, Scaling, WeeklySchedule
from opsflow.status import InstanceStatus

# Instances that count as running for min / max: the machine is up or on its way up.
RUNNING_FOR_SCALING = frozenset(
    {
        InstanceStatus.REQUESTED,
        InstanceStatus.BOOTING,
        InstanceStatus.RUNNING_SETUP,
        InstanceStatus.ONLINE,
        InstanceStatus.CONNECTION_LOST,
    }
)


# ---- time-based ------------------------------------------------------------------------


def should_run(schedule: WeeklySchedule, when: datetime) -> bool:
    """Whether the schedule has the instance up at `when` (any aware datetime)."""
    local = when.astimezone(ZoneInfo(schedule.timezone))
    return local.hour in schedule.hours(local.weekday())


def scheduled(schedule: WeeklySchedule, hostname: str, when: datetime) -> tuple[bool, str]:
    """Whether the instance should run at `when`, and why, in the schedule's time zone."""
    local = when.astimezone(ZoneInfo(schedule.timezone))
    run = local.hour in schedule.hours(local.weekday())
    where = "inside" if run else "outside"
    return run, f"schedule: {local:%A %H:%M} {schedule.timezone} is {where} {hostname}'s hours"


def transitions(schedule: WeeklySchedule) -> list[tuple[int, int]]:
    """(weekday 0=Monday, hour) at which the schedule turns the instance on or off, in
    its time zone: the calendar moments its Temporal Schedule fires at."""
    week = [(day, hour) for day in range(7) for hour in range(24)]
    up = {(day, hour) for day, hour in week if hour in schedule.hours(day)}
    return [
        (day, hour)
        for i, (day, hour) in enumerate(week)
        if ((day, hour) in up) != (week[i - 1] in up)
    ]


# ---- load-based ------------------------------------------------------------------------


class Direction(StrEnum):
    """Which way a load-based step goes (its value names the step's event, scaled_{value})."""

    UP = "up"
    DOWN = "down"


class LoadState(BaseModel):
    """What a LoadScalingWorkflow remembers between readings (handed to continue-as-new)."""

    up_since: datetime | None = None
    down_since: datetime | None = None
    last_action_at: datetime | None = None
    last_direction: Direction | None = None
    added: int = Field(default=0, description="instances this layer's loop added so far")


class LoadScalingState(BaseModel):
    stack: str
    layer: str
    config: LoadBasedScaling
    region: str | None = Field(default=None, description="ec2: cpu comes from CloudWatch")
    load: LoadState = Field(default_factory=LoadState)
    max_history_events: int | None = None
    stopping: bool = False
    last_averages: dict[str, float] = Field(default_factory=dict)


class LoadDecision(BaseModel):
    direction: Direction
    start: list[str] = Field(default_factory=list)
    add: list[str] = Field(default_factory=list)
    stop: list[str] = Field(default_factory=list)
    message: str
    averages: dict[str, float] = Field(default_factory=dict)


def averages(report: MetricsReport) -> dict[str, float]:
    """The layer average of each metric over the instances that reported it."""
    seen: dict[str, list[float]] = {}
    for instance in report.instances:
        for metric, value in instance.values.items():
            seen.setdefault(metric, []).append(value)
    return {metric: fmean(values) for metric, values in seen.items()}


def decide_load(
    state: LoadState,
    config: LoadBasedScaling,
    layer: str,
    views: Iterable[InstanceView],
    means: dict[str, float],
    now: datetime,
) -> LoadDecision | None:
    """One reading's decision; updates `state`. None: nothing to do now."""
    views = sorted(views, key=lambda v: v.hostname)
    running = [v for v in views if v.status in RUNNING_FOR_SCALING]
    if state.last_action_at is not None and state.last_direction is not None:
        settings = config.up if state.last_direction == Direction.UP else config.down
        if now - state.last_action_at < timedelta(seconds=settings.ignore_metrics_time):
            state.up_since = state.down_since = None
            return None
    shown = ", ".join(f"{m} {v:.1f}" for m, v in sorted(means.items())) or "no metrics"
    if config.min is not None and len(running) < config.min:
        return _up(state, config, layer, views, running, now, means,
                   f"{len(running)} running, below min {config.min} ({shown})")  # fmt: skip
    if config.max is not None and len(running) > config.max:
        return _down(state, config, views, running, now, means,
                     f"{len(running)} running, above max {config.max} ({shown})")  # fmt: skip
    up = {m: t for m, t in config.up.metrics().items() if m in means and means[m] > t}
    down_thresholds = config.down.metrics()
    down = all(m in means and means[m] < t for m, t in down_thresholds.items())
    if up:
        state.down_since = None
        state.up_since = state.up_since or now
        held = (now - state.up_since).total_seconds()
        if held < config.up.thresholds_wait_time:
            return None
        why = ", ".join(f"{m} {means[m]:.1f} > {t:g}" for m, t in sorted(up.items()))
        return _up(state, config, layer, views, running, now, means,
                   f"layer average {why} for {held:.0f}s")  # fmt: skip
    if down and means:
        state.up_since = None
        state.down_since = state.down_since or now
        held = (now - state.down_since).total_seconds()
        if held < config.down.thresholds_wait_time:
            return None
        why = ", ".join(f"{m} {means[m]:.1f} < {t:g}" for m, t in sorted(down_thresholds.items()))
        return _down(state, config, views, running, now, means,
                     f"layer average {why} for {held:.0f}s")  # fmt: skip
    state.up_since = state.down_since = None
    return None


def _up(
    state: LoadState,
    config: LoadBasedScaling,
    layer: str,
    views: list[InstanceView],
    running: list[InstanceView],
    now: datetime,
    means: dict[str, float],
    why: str,
) -> LoadDecision | None:
    wanted = config.up.instance_count
    if config.min is not None and len(running) < config.min:
        wanted = max(wanted, config.min - len(running))
    if config.max is not None:
        wanted = min(wanted, config.max - len(running))
    if wanted <= 0:
        state.up_since = None
        return None
    stopped = [v.hostname for v in views if v.scaling == Scaling.LOAD and _startable(v)]
    start = stopped[:wanted]
    add: list[str] = []
    if config.max is not None:
        taken = {v.hostname for v in views}
        while len(start) + len(add) < wanted:
            state.added += 1
            name = f"{layer}-load-{state.added}"
            if name not in taken and names.HOSTNAME.fullmatch(name):
                add.append(name)
    if not start and not add:
        state.up_since = None
        return None
    _acted(state, Direction.UP, now)
    what = ", ".join([*start, *(f"{h} (new)" for h in add)])
    return LoadDecision(
        direction=Direction.UP,
        start=start,
        add=add,
        averages=means,
        message=f"scale up: {what}: {why}",
    )


def _down(
    state: LoadState,
    config: LoadBasedScaling,
    views: list[InstanceView],
    running: list[InstanceView],
    now: datetime,
    means: dict[str, float],
    why: str,
) -> LoadDecision | None:
    wanted = config.down.instance_count
    if config.max is not None and len(running) > config.max:
        wanted = max(wanted, len(running) - config.max)
    if config.min is not None:
        wanted = min(wanted, len(running) - config.min)
    online = [
        v.hostname for v in views if v.scaling == Scaling.LOAD and v.status == InstanceStatus.ONLINE
    ]
    stop = list(reversed(online))[: max(wanted, 0)]
    if not stop:
        state.down_since = None
        return None
    _acted(state, Direction.DOWN, now)
    return LoadDecision(
        direction=Direction.DOWN,
        stop=stop,
        averages=means,
        message=f"scale down: {', '.join(stop)}: {why}",
    )


def _startable(view: InstanceView) -> bool:
    return view.status in (InstanceStatus.STOPPED, InstanceStatus.START_FAILED)


def _acted(state: LoadState, direction: Direction, now: datetime) -> None:
    state.last_action_at, state.last_direction = now, direction
    state.up_since = state.down_since = None

"""Auto healing decisions: which instances are due a check, when a failing one counts as
lost, whether to replace it now, later or never. Pure: the LayerHealingWorkflow feeds in
what the checks saw and carries out what comes back.

Rules (OpsWorks' auto healing, minus its slowness and its false alarms):
- Only online instances past their grace period are checked; an instance that is being
  set up, stopped or healed is never counted against.
- `unhealthy_threshold` consecutive failed checks make an online instance lost
  (connection_lost); one good check resets the count.
- A lost instance is replaced (healed) unless its provider cannot make a new machine
  (registered hosts: it stays connection_lost, and is checked again so it can come back).
- At most `max_heals` heals per instance in any `window`; after a heal that failed, the
  next waits `backoff`, doubled for each failure in a row. Past the limit: given up, said
  once.
- An instance stopped on purpose is forgotten: it is never healed.
- Besides the periodic checks, the instances due a check are watched (WATCH_*: one held
  SSH connection each, keepalives that want an answer). A watched connection that drops
  with its sshd refusing a new one (a crash), or a keepalive left unanswered past the
  check's timeout (a partition), is decisive: lost at once, no threshold.

Gauges (ec2 stacks, those with a region): once per GAUGES_PERIOD of workflow time the loop
publishes the layer's InstancesOnline / InstancesTotal (from the round's probe report) and
HealingEvents: the loop's events (HEALING_EVENTS: every decision and every heal's end) not
yet in a published gauge. A publish that fails keeps its events for the next one, and the
next try still waits a period, so a refusing CloudWatch is asked once a minute.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field

from opsflow.events import EventKind
from opsflow.messages import (
    HealingConfig,
    InstanceView,
    LayerGaugesInput,
    LayerProbeReport,
    ProbeOutcome,
    WatchTarget,
)
from opsflow.spec import LayerHealthCheckSpec, Provider, StackSpec
from opsflow.status import InstanceStatus

# Providers that can give a lost instance a new machine.
REPLACEABLE = frozenset({Provider.LOCAL, Provider.EC2})
# Statuses a lost instance may rest in while the loop still owns its healing.
HEALABLE = frozenset(
    {InstanceStatus.CONNECTION_LOST, InstanceStatus.SETUP_FAILED, InstanceStatus.START_FAILED}
)
# Statuses that mean someone stopped or removed the instance on purpose.
ON_PURPOSE = frozenset(
    {
        InstanceStatus.STOPPING,
        InstanceStatus.STOPPED,
        InstanceStatus.TERMINATING,
        InstanceStatus.TERMINATED,
    }
)


class Action(StrEnum):
    """A decision of the loop; each is recorded as the stack event of the same value."""

    DETECTED = EventKind.HEALTH_DETECTED.value  # lost: mark connection_lost
    HEAL = EventKind.HEAL_STARTED.value  # replace it now
    NOT_REPLACEABLE = EventKind.HEAL_NOT_POSSIBLE.value  # lost, its provider cannot replace it
    GIVE_UP = EventKind.HEAL_GAVE_UP.value  # lost, and no heal left in the window
    RECOVERED = EventKind.HEALTH_RECOVERED.value  # a lost one not replaced answers again


# Healing events (stack event kinds) that the HealingEvents gauge counts: the decisions,
# and how each heal ended.
HEAL_ENDS = (EventKind.HEALED, EventKind.HEAL_FAILED, EventKind.HEAL_SKIPPED)
HEALING_EVENTS = frozenset({*(EventKind(action.value) for action in Action), *HEAL_ENDS})
GAUGES_PERIOD = timedelta(minutes=1)

# The watch: a keepalive every WATCH_KEEPALIVE seconds on each watched connection, an
# answer expected within the check's timeout; a watch returns after WATCH_MAX at the latest
# (and is started again), so no activity runs for ever.
WATCH_KEEPALIVE = 1.0
WATCH_MAX = timedelta(minutes=10)


class Decision(BaseModel):
    hostname: str
    action: Action
    message: str
    detail: str | None = Field(default=None, description="the check output behind it")
    unreachable: bool = False
    worker_gone: bool = False


class InstanceHealth(BaseModel):
    failures: int = Field(default=0, description="consecutive failed checks")
    detail: str | None = Field(default=None, description="the last check's output")
    lost_at: datetime | None = Field(default=None, description="when the loop declared it lost")
    heals: list[datetime] = Field(default_factory=list, description="heals started, in window")
    healing: str | None = Field(default=None, description="command id of the heal in flight")
    failed_heals: int = Field(default=0, description="heals in a row that failed")
    next_try: datetime | None = None
    told: bool = Field(default=False, description="gave up / cannot replace, already said")

    def forget_loss(self) -> None:
        """Back to healthy; the heals it took still count in their window."""
        self.failures, self.detail, self.lost_at, self.healing = 0, None, None, None
        self.failed_heals, self.next_try, self.told = 0, None, False


class HealingState(BaseModel):
    """Everything a LayerHealingWorkflow knows, handed whole to continue-as-new."""

    stack: str
    layer: str
    config: HealingConfig
    max_history_events: int | None = None
    health: dict[str, InstanceHealth] = Field(default_factory=dict)
    heal_seq: int = 0
    stopping: bool = False
    gauges_at: datetime | None = Field(
        default=None, description="ec2: when the layer's gauges were last published (or tried)"
    )
    healing_events: int = Field(
        default=0, description="ec2: healing events not yet in a published HealingEvents gauge"
    )
    gauges_error: str | None = Field(default=None, description="why the last publish failed")


# What a gone worker's instances may be when the loop learns it: the instance workflow may
# have marked itself lost first (a command of it found nobody on the worker's queue).
_GONE_WITH_WORKER = frozenset({InstanceStatus.ONLINE, InstanceStatus.CONNECTION_LOST})


def loop_instances(
    spec: StackSpec, views: Iterable[InstanceView], layer: str, *, healing: bool
) -> list[InstanceView]:
    """The instances the loop of `layer` (healing or load-based scaling) looks after: those
    whose FIRST layer it is. An instance in several layers is in one loop only, so two
    healing loops never both replace it and two load loops never both count it. A
    healing loop also leaves out an instance any of whose layers has auto healing off:
    it is healed only when all its layers auto-heal."""
    owned = [v for v in views if v.layers and v.layers[0] == layer]
    if not healing:
        return owned
    heals = {item.name for item in spec.layers if item.auto_healing}
    return [v for v in owned if all(name in heals for name in v.layers)]


def due_for_check(view: InstanceView, now: datetime, check: LayerHealthCheckSpec) -> bool:
    """Online, reachable by SSH, and online for longer than the grace period."""
    if view.status != InstanceStatus.ONLINE or view.ssh is None:
        return False
    return view.updated_at is None or now - view.updated_at >= timedelta(seconds=check.grace_period)


def to_recheck(state: HealingState, views: Iterable[InstanceView]) -> list[str]:
    """Lost instances the loop does not replace: checked again, so they can come back."""
    return sorted(
        v.hostname
        for v in views
        if v.status == InstanceStatus.CONNECTION_LOST
        and v.provider not in REPLACEABLE
        and v.ssh is not None
        and v.hostname in state.health
        and state.health[v.hostname].lost_at is not None
    )


def to_watch(
    state: HealingState, views: Iterable[InstanceView], now: datetime
) -> dict[str | None, list[WatchTarget]]:
    """The instances to watch, by the task queue whose worker holds their connections: the
    ones due a check that the loop has not declared lost."""
    watched: dict[str | None, list[WatchTarget]] = {}
    for view in sorted(views, key=lambda v: v.hostname):
        health = state.health.get(view.hostname)
        if not due_for_check(view, now, state.config.check) or view.ssh is None:
            continue
        if health is not None and health.lost_at is not None:
            continue
        target = WatchTarget(hostname=view.hostname, ssh=view.ssh)
        watched.setdefault(view.task_queue, []).append(target)
    return watched


def assess(state: HealingState, report: LayerProbeReport, now: datetime) -> list[Decision]:
    """Count what the checks saw and decide; updates `state.health` in place."""
    views = {v.hostname: v for v in report.instances}
    for gone in set(state.health) - set(views):
        del state.health[gone]
    decisions: list[Decision] = []
    for outcome in report.outcomes:
        view = views.get(outcome.hostname)
        if view is not None:
            decisions.extend(_count(state, view, outcome, now))
    for view in views.values():
        decisions.extend(_follow_up(state, view, now))
    return decisions


def _count(
    state: HealingState, view: InstanceView, outcome: ProbeOutcome, now: datetime
) -> list[Decision]:
    health = state.health.setdefault(view.hostname, InstanceHealth())
    threshold = state.config.check.unhealthy_threshold
    if outcome.healthy:
        back = health.lost_at is not None and view.status == InstanceStatus.CONNECTION_LOST
        health.failures, health.detail = 0, outcome.detail
        if back and health.healing is None:
            health.forget_loss()
            return [
                Decision(
                    hostname=view.hostname,
                    action=Action.RECOVERED,
                    message=f"{view.hostname} answers its health check again: back online",
                    detail=outcome.detail,
                )
            ]
        return []
    health.failures += 1
    health.detail = outcome.detail
    if outcome.worker_gone and health.lost_at is None and view.status in _GONE_WITH_WORKER:
        # Certain at once: no threshold (its worker's queue has been idle for minutes).
        health.lost_at = now
        return [
            Decision(
                hostname=view.hostname,
                action=Action.DETECTED,
                message=f"{view.hostname}: {outcome.detail}; connection lost",
                detail=outcome.detail,
                unreachable=True,
                worker_gone=True,
            )
        ]
    if view.status != InstanceStatus.ONLINE or health.lost_at is not None:
        return []
    if outcome.decisive:
        health.lost_at = now
        return [
            Decision(
                hostname=view.hostname,
                action=Action.DETECTED,
                message=f"{view.hostname}: {outcome.detail}: connection lost",
                detail=outcome.detail,
                unreachable=True,
            )
        ]
    if health.failures < threshold:
        return []
    health.lost_at = now
    return [
        Decision(
            hostname=view.hostname,
            action=Action.DETECTED,
            message=(
                f"{view.hostname} failed {health.failures} health check(s) in a row "
                f"(threshold {threshold}): connection lost"
            ),
            detail=outcome.detail,
            unreachable=not outcome.reachable,
        )
    ]


def _follow_up(state: HealingState, view: InstanceView, now: datetime) -> list[Decision]:
    """For an instance the loop declared lost: heal it, wait, or say why not."""
    health = state.health.get(view.hostname)
    if health is not None and view.status in ON_PURPOSE:
        del state.health[view.hostname]  # stopped or removed on purpose: never healed
        return []
    if health is None or health.lost_at is None:
        return []
    if view.status == InstanceStatus.ONLINE:
        if view.updated_at is not None and view.updated_at > health.lost_at:
            # Back online after the loss was declared (healed, or restarted by someone).
            if health.healing is None:
                health.forget_loss()
            return []
        # Declared lost this round; the instance has not marked itself yet: heal now.
    elif view.status not in HEALABLE:
        return []
    if health.healing is not None or health.told:
        return []
    if view.provider not in REPLACEABLE:
        health.told = True
        return [
            Decision(
                hostname=view.hostname,
                action=Action.NOT_REPLACEABLE,
                message=(
                    f"{view.hostname} is a {view.provider.value} instance: opsflow cannot "
                    "replace its machine; it stays connection_lost until it answers again"
                ),
                detail=health.detail,
            )
        ]
    policy = state.config.policy
    window = timedelta(seconds=policy.window)
    health.heals = [at for at in health.heals if now - at < window]
    if len(health.heals) >= policy.max_heals:
        health.told = True
        return [
            Decision(
                hostname=view.hostname,
                action=Action.GIVE_UP,
                message=(
                    f"{view.hostname}: {len(health.heals)} heal(s) in the last "
                    f"{_span(policy.window)} (max_heals {policy.max_heals}): giving up; it "
                    f"stays {view.status.value} until someone acts"
                ),
                detail=health.detail,
            )
        ]
    if health.next_try is not None and now < health.next_try:
        return []
    attempt = len(health.heals) + 1
    return [
        Decision(
            hostname=view.hostname,
            action=Action.HEAL,
            message=(
                f"replacing {view.hostname} (heal {attempt} of at most {policy.max_heals} in "
                f"{_span(policy.window)}): new machine, same hostname and layers, setup, "
                "the apps' current releases, online"
            ),
            detail=health.detail,
        )
    ]


def heal_started(health: InstanceHealth, command_id: str, now: datetime) -> None:
    health.healing = command_id
    health.heals.append(now)


def heal_finished(
    health: InstanceHealth, ok: bool, now: datetime, config: HealingConfig
) -> datetime | None:
    """Record a heal's end; after a failure, when the next try may start."""
    health.healing = None
    if ok:
        health.forget_loss()
        return None
    health.failed_heals += 1
    wait = config.policy.backoff * 2 ** (health.failed_heals - 1)
    health.next_try = now + timedelta(seconds=wait)
    return health.next_try


def _span(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


# ---- gauges (ec2) ----------------------------------------------------------------------


def count_event(state: HealingState, kind: EventKind) -> None:
    """Count a healing event the loop records, for the next HealingEvents gauge."""
    if state.config.region is not None and kind in HEALING_EVENTS:
        state.healing_events += 1


def gauges_due(state: HealingState, now: datetime) -> bool:
    """An ec2 stack's layer, and a period since the last publish (or none yet)."""
    if state.config.region is None:
        return False
    return state.gauges_at is None or now - state.gauges_at >= GAUGES_PERIOD


def take_gauges(state: HealingState, views: list[InstanceView], now: datetime) -> LayerGaugesInput:
    """The gauges to publish now (the layer as the round saw it); the period restarts."""
    assert state.config.region is not None, "gauges are for ec2 stacks"
    state.gauges_at = now
    return LayerGaugesInput(
        stack=state.stack,
        layer=state.layer,
        region=state.config.region,
        online=sum(1 for v in views if v.status == InstanceStatus.ONLINE),
        total=len(views),
        healing_events=state.healing_events,
    )


def gauges_sent(state: HealingState, gauges: LayerGaugesInput, error: str | None) -> bool:
    """Record a publish's outcome; True when it is a new failure (worth one event).
    Published events leave the count; events counted meanwhile stay."""
    if error is None:
        state.healing_events = max(0, state.healing_events - gauges.healing_events)
        state.gauges_error = None
        return False
    new = state.gauges_error is None
    state.gauges_error = error
    return new

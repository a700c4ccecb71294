"""The per-layer loops: health probes and watches, healing, metrics and scaling."""

from __future__ import annotations

from pydantic import BaseModel, Field

from opsflow.messages.machines import InstanceView, SshEndpoint
from opsflow.spec import (
    CloudWatchMetric,
    HealingPolicySpec,
    LayerHealthCheckSpec,
    Scaling,
    WeeklySchedule,
)


class ProbeLayerInput(BaseModel):
    stack: str
    layer: str
    check: LayerHealthCheckSpec
    # Besides the online instances past their grace period: these lost ones, to see whether
    # they came back (those the loop does not replace).
    recheck: list[str] = Field(default_factory=list)
    task_queue: str | None = Field(
        default=None,
        description="check only the instances bound to this worker queue (None: the unbound)",
    )


class ProbeOutcome(BaseModel):
    hostname: str
    healthy: bool
    reachable: bool = Field(description="False: SSH itself failed (not just the URL/command)")
    detail: str = Field(description="what the check saw: the error, or 'ok'")
    worker_gone: bool = Field(
        default=False, description="the worker the instance is bound to is gone: lost at once"
    )
    decisive: bool = Field(
        default=False,
        description="its watched SSH connection dropped, or a keepalive went unanswered: "
        "lost at once (no unhealthy_threshold)",
    )


class LayerProbeReport(BaseModel):
    """The layer's instances as the stack knows them now, and the checks of those that
    were due one."""

    instances: list[InstanceView]
    outcomes: list[ProbeOutcome]


class WatchTarget(BaseModel):
    hostname: str
    ssh: SshEndpoint


class WatchLayerInput(BaseModel):
    """Hold one SSH connection to each of `instances` (all bound to `task_queue`), send a
    keepalive that wants an answer every `keepalive_interval` seconds, and return as soon
    as one is lost (its connection dropped and its sshd refuses a new one, or no answer
    within `answer_within`), or after `max_seconds`."""

    stack: str
    layer: str
    instances: list[WatchTarget]
    task_queue: str | None = None
    keepalive_interval: float
    answer_within: float
    max_seconds: float


class ConnectionLost(BaseModel):
    reason: str
    unreachable: bool = Field(description="SSH failed: a run in flight there cannot finish")
    worker_gone: bool = Field(
        default=False, description="its worker is gone: nothing more can run on its queue"
    )


class HealRequest(BaseModel):
    hostname: str
    reason: str
    reply_to: str
    command_id: str


class HealingConfig(BaseModel):
    check: LayerHealthCheckSpec
    policy: HealingPolicySpec
    region: str | None = Field(
        default=None,
        description="ec2: the stack's region; with it the loop publishes the layer's gauges "
        "to CloudWatch",
    )


class ReadMetricsInput(BaseModel):
    """Read `metrics` (cpu, memory, load, custom) on each of `instances` (online ones)."""

    stack: str
    layer: str
    instances: list[InstanceView]
    metrics: list[str]
    custom_metric: str | None = Field(default=None, description="command printing a number")
    custom_cloudwatch_metric: CloudWatchMetric | None = Field(
        default=None, description="ec2: `custom` from this CloudWatch metric (needs region)"
    )
    timeout: float = 10.0
    region: str | None = Field(
        default=None,
        description="ec2: the stack's region; with it, ec2 instances' cpu is read from CloudWatch",
    )


class InstanceMetrics(BaseModel):
    hostname: str
    values: dict[str, float] = Field(default_factory=dict, description="metric -> value")
    error: str | None = Field(default=None, description="why some or all could not be read")


class MetricsReport(BaseModel):
    instances: list[InstanceMetrics]


class LayerGaugesInput(BaseModel):
    """A layer's gauges, published to CloudWatch (namespace opsflow, dimensions Stack, Layer)."""

    stack: str
    layer: str
    region: str
    online: int = Field(ge=0, description="instances online")
    total: int = Field(ge=0, description="instances in the layer")
    healing_events: int = Field(ge=0, description="healing events (since the last gauges)")


class ScaleRequest(BaseModel):
    """Start (`run`) or stop an instance for a scaling reason (a schedule, the load)."""

    hostname: str
    run: bool
    reason: str
    source: Scaling = Field(description="time or load: which kind of scaling asks")
    layer: str | None = Field(default=None, description="set: add this new instance to it")


class TimeScaleInput(BaseModel):
    stack: str
    hostname: str
    schedule: WeeklySchedule


class SyncSchedulesInput(BaseModel):
    """The time-based instances of a stack and their schedules: what Temporal must hold."""

    stack: str
    schedules: dict[str, WeeklySchedule] = Field(description="hostname -> schedule")
    changed: list[str] = Field(
        default_factory=list, description="new or changed: triggered once to match now"
    )
    remove: list[str] = Field(default_factory=list, description="no longer time-based")

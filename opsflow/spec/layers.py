"""Layers and their instances: recipes per lifecycle event, health checks and healing,
load-based scaling."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field, field_validator, model_validator

from opsflow import aws
from opsflow.spec.fields import (
    ConfigurationManager,
    Duration,
    Hostname,
    LayerName,
    LifecycleEvent,
    RecipeName,
    SetupFailure,
    StrictModel,
)
from opsflow.spec.machines import (
    Ec2Options,
    RegisteredHostSpec,
    VolumeSpec,
)
from opsflow.spec.schedules import Scaling, WeeklySchedule


class LayerRecipes(StrictModel):
    setup: list[RecipeName] = Field(default_factory=list)
    configure: list[RecipeName] = Field(default_factory=list)
    deploy: list[RecipeName] = Field(default_factory=list)
    undeploy: list[RecipeName] = Field(default_factory=list)
    shutdown: list[RecipeName] = Field(default_factory=list)

    def for_event(self, event: LifecycleEvent) -> list[str]:
        return list(getattr(self, event.value))


class HealthCheckSpec(StrictModel):
    """How to tell that an instance serves after a deployment batch: an HTTP URL template
    (`{private_ip}`, `{hostname}` are filled in per instance; 2xx and 3xx are healthy) or a
    command run on the instance (exit 0 is healthy). Probes repeat until healthy or until
    the deadline."""

    url: str | None = None
    command: str | None = None
    timeout: float = Field(default=5.0, gt=0, le=300, description="seconds per probe")
    interval: float = Field(default=1.0, gt=0, le=300, description="seconds between probes")
    deadline: float = Field(default=60.0, gt=0, le=3600, description="seconds in all")

    @model_validator(mode="after")
    def _one_probe(self) -> HealthCheckSpec:
        if (self.url is None) == (self.command is None):
            raise ValueError("health_check: give exactly one of `url` or `command`")
        if self.url is not None:
            if not self.url.startswith(("http://", "https://")):
                raise ValueError(f"health_check.url: {self.url!r} is not an http(s) URL")
            try:
                self.url.format(private_ip="127.0.0.1", hostname="h")
            except (KeyError, IndexError, ValueError) as err:
                raise ValueError(
                    f"health_check.url: only {{private_ip}} and {{hostname}} can be filled "
                    f"in ({err})"
                ) from None
        return self


class LayerHealthCheckSpec(StrictModel):
    """The layer's liveness check, run by its healing loop on every online instance: SSH
    reachability always (a round trip on the worker's pooled connection, no process on the
    instance), plus the URL (2xx/3xx) or command (exit 0) when given."""

    interval: Duration = Field(default=5.0, ge=0.5, le=3600, description="between checks")
    unhealthy_threshold: int = Field(
        default=2, ge=1, le=100, description="consecutive failed checks that mean lost"
    )
    timeout: Duration = Field(default=3.0, gt=0, le=300, description="per probe")
    grace_period: Duration = Field(
        default=30.0, ge=0, le=86400, description="after an instance comes online"
    )
    url: str | None = None
    command: str | None = None

    @model_validator(mode="after")
    def _at_most_one_probe(self) -> LayerHealthCheckSpec:
        if self.url is not None and self.command is not None:
            raise ValueError("health_check: give at most one of `url` or `command`")
        if self.url is not None:
            HealthCheckSpec(url=self.url)  # the same URL rules as a deploy's check
        return self


class HealingPolicySpec(StrictModel):
    """How often a lost instance may be replaced: at most `max_heals` per instance in any
    `window`, and after a heal that failed, `backoff` doubled each time before the next."""

    max_heals: int = Field(default=3, ge=1, le=100)
    window: Duration = Field(default=3600.0, gt=0, le=7 * 86400)
    backoff: Duration = Field(default=10.0, ge=0, le=86400)


class InstanceSpec(StrictModel):
    hostname: Hostname
    ec2: Ec2Options | None = None
    ssh: RegisteredHostSpec | None = Field(
        default=None, description="provider registered: the existing host this instance is"
    )
    scaling: Scaling = Scaling.ALWAYS
    schedule: WeeklySchedule | None = None

    @model_validator(mode="after")
    def _schedule_with_time(self) -> InstanceSpec:
        if self.scaling == Scaling.TIME and self.schedule is None:
            raise ValueError(f"{self.hostname}: scaling: time needs a `schedule`")
        if self.schedule is not None and self.scaling != Scaling.TIME:
            raise ValueError(f"{self.hostname}: a `schedule` goes with scaling: time")
        return self


class StackInstanceSpec(InstanceSpec):
    """An instance in the stack-level `instances:` list: one that belongs to several
    layers (OpsWorks allowed e.g. app + memcached), listed by name in `layers`. Its
    lifecycle events run every layer's recipes in this order; its ec2 launch settings
    merge stack < its FIRST layer < its own `ec2`; the layers' volumes, elastic IP and load
    balancer apply from each of them."""

    layers: list[LayerName] = Field(description="the layers it belongs to, in run order")

    @field_validator("layers")
    @classmethod
    def _layers_listed_once(cls, layers: list[str]) -> list[str]:
        if not layers:
            raise ValueError("an instance needs at least one layer")
        for index, name in enumerate(layers):
            if name in layers[:index]:
                raise ValueError(f"layer {name!r} is named twice")
        return layers


class Metric(StrEnum):
    """What load-based scaling reads of an instance (the keys of MetricThresholds)."""

    CPU = "cpu"
    MEMORY = "memory"
    LOAD = "load"
    CUSTOM = "custom"


class MetricThresholds(StrictModel):
    """Layer averages that trigger a step: any one of `up` exceeded scales up; all of
    `down` under their thresholds scales down."""

    cpu: float | None = Field(default=None, ge=0, le=100, description="percent")
    memory: float | None = Field(default=None, ge=0, le=100, description="percent used")
    load: float | None = Field(default=None, ge=0, description="1-minute load average")
    custom: float | None = Field(default=None, description="the custom metric's value")
    instance_count: int = Field(default=1, ge=1, le=100, description="instances per step")
    thresholds_wait_time: Duration = Field(
        default=300.0, ge=0, le=86400, description="how long the threshold must hold"
    )
    ignore_metrics_time: Duration = Field(
        default=300.0, ge=0, le=86400, description="cooldown after a scaling action"
    )

    def metrics(self) -> dict[str, float]:
        found = {Metric.CPU: self.cpu, Metric.MEMORY: self.memory, Metric.LOAD: self.load}
        found[Metric.CUSTOM] = self.custom
        return {name: value for name, value in found.items() if value is not None}


class CloudWatchMetric(StrictModel):
    """A CloudWatch metric read per ec2 instance (dimension InstanceId only), such as the
    CloudWatch agent's `{namespace: CWAgent, name: mem_used_percent}`."""

    namespace: str
    name: str
    stat: str = Field(default="Average", description="Average, Maximum, p99, ...")

    @model_validator(mode="after")
    def _shapes(self) -> CloudWatchMetric:
        checks = [
            ("namespace", self.namespace, aws.CLOUDWATCH_NAMESPACE, "a CloudWatch namespace"),
            ("name", self.name, aws.CLOUDWATCH_METRIC_NAME, "a CloudWatch metric name"),
            ("stat", self.stat, aws.CLOUDWATCH_STAT, "Average, Sum, Minimum, Maximum, "
             "SampleCount or a percentile like p99"),
        ]  # fmt: skip
        for field, value, pattern, shape in checks:
            if not pattern.fullmatch(value):
                raise ValueError(f"{field}: {value!r} is not {shape}")
        return self

    def describe(self) -> str:
        return f"{self.namespace} {self.name} ({self.stat})"


class LoadBasedScaling(StrictModel):
    """OpsWorks' load-based scaling for a layer's `scaling: load` instances, plus `max`:
    when no stopped load-based instance is left, new ones are added up to it."""

    enabled: bool = True
    interval: Duration = Field(default=60.0, ge=1, le=3600, description="between readings")
    custom_metric: str | None = Field(
        default=None, description="a command run on each instance that prints a number"
    )
    custom_cloudwatch_metric: CloudWatchMetric | None = Field(
        default=None,
        description="ec2 only, instead of custom_metric: the custom value from CloudWatch",
    )
    up: MetricThresholds = Field(default_factory=lambda: MetricThresholds(cpu=80))
    down: MetricThresholds = Field(default_factory=lambda: MetricThresholds(cpu=30))
    min: int | None = Field(default=None, ge=0, le=1000, description="running instances")
    max: int | None = Field(default=None, ge=0, le=1000, description="running instances")

    @model_validator(mode="after")
    def _consistent(self) -> LoadBasedScaling:
        up, down = self.up.metrics(), self.down.metrics()
        if not up or not down:
            raise ValueError("load_based_scaling: `up` and `down` each need a threshold")
        for name in up.keys() & down.keys():
            if up[name] <= down[name]:
                raise ValueError(
                    f"load_based_scaling: up.{name} ({up[name]:g}) must be above "
                    f"down.{name} ({down[name]:g})"
                )
        if self.custom_metric is not None and self.custom_cloudwatch_metric is not None:
            raise ValueError(
                "load_based_scaling: give `custom_metric` (a command) or "
                "`custom_cloudwatch_metric`, not both"
            )
        custom = self.custom_metric is not None or self.custom_cloudwatch_metric is not None
        if (Metric.CUSTOM in up or Metric.CUSTOM in down) and not custom:
            raise ValueError(
                "load_based_scaling: a `custom` threshold needs `custom_metric` or "
                "`custom_cloudwatch_metric`"
            )
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"load_based_scaling: min ({self.min}) is above max ({self.max})")
        return self


class LayerSpec(StrictModel):
    name: LayerName
    configuration_manager: ConfigurationManager | None = Field(
        default=None, description="overrides the stack's for this layer's recipes"
    )
    auto_healing: bool = True
    health_check: LayerHealthCheckSpec = Field(default_factory=LayerHealthCheckSpec)
    healing: HealingPolicySpec = Field(default_factory=HealingPolicySpec)
    load_based_scaling: LoadBasedScaling | None = None
    ec2: Ec2Options | None = None
    auto_assign_elastic_ip: bool = False
    volumes: list[VolumeSpec] = Field(default_factory=list)
    load_balancer: str | None = Field(default=None, description="an ELBv2 target group ARN")
    on_setup_failure: SetupFailure = Field(
        default=SetupFailure.KEEP,
        description="keep a setup_failed machine to look at (OpsWorks), or terminate it",
    )

    @model_validator(mode="after")
    def _target_group_arn(self) -> LayerSpec:
        arn = self.load_balancer
        if arn is not None and not aws.TARGET_GROUP_ARN.fullmatch(arn):
            raise ValueError(
                f"load_balancer: {self.load_balancer!r} is not an ELBv2 target group ARN "
                "(arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID)"
            )
        return self

    def uses_ec2(self) -> list[str]:
        """The ec2-only settings this layer (or its instances) sets."""
        used = [f for f in ("ec2", "load_balancer") if getattr(self, f) is not None]
        used += ["auto_assign_elastic_ip"] if self.auto_assign_elastic_ip else []
        used += ["volumes"] if self.volumes else []
        used += [f"instances.{i.hostname}.ec2" for i in self.instances if i.ec2 is not None]
        scaling = self.load_based_scaling
        if scaling is not None and scaling.custom_cloudwatch_metric is not None:
            used.append("load_based_scaling.custom_cloudwatch_metric")
        return used

    recipes: LayerRecipes = Field(default_factory=LayerRecipes)
    custom_json: dict[str, Any] = Field(default_factory=dict)
    instances: list[InstanceSpec] = Field(default_factory=list)

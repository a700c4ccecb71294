"""The stack file, as pydantic models.

Every model forbids unknown keys so a typo is an error, not a silently ignored setting.
Paths in the file are relative to the file; the loader (client/stackfile.py) resolves them
before the spec leaves the user's machine, so workflows only ever see absolute paths.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from opsflow import aws, names
from opsflow.secrets import SecureValue


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


def _valid(problem: Callable[[str], str | None]) -> Callable[[str], str]:
    """A rule of opsflow.names as a pydantic validator (the loader names the field)."""

    def check(value: str) -> str:
        found = problem(value)
        if found is not None:
            raise ValueError(found)
        return value

    return check


def _matches(pattern: re.Pattern[str], what: str) -> Callable[[str], str]:
    return _valid(lambda value: names.name_problem(pattern, what, value))


StackName = Annotated[str, AfterValidator(_matches(names.STACK_NAME, "stack name"))]
LayerName = Annotated[str, AfterValidator(_matches(names.LAYER_NAME, "layer name"))]
Hostname = Annotated[str, AfterValidator(_valid(names.hostname_problem))]
RecipeName = Annotated[str, AfterValidator(_matches(names.RECIPE, "recipe name"))]


def _no_nul(value: str) -> str:
    # No file system takes a NUL in a path; os calls would raise ValueError on it.
    if "\0" in value:
        raise ValueError("must not contain a NUL byte")
    return value


# A path (or a URL naming one) that opsflow hands to the file system or to git.
PathText = Annotated[str, AfterValidator(_no_nul)]


class Provider(StrEnum):
    LOCAL = "local"
    EC2 = "ec2"
    REGISTERED = "registered"


class ConfigurationManager(StrEnum):
    SHELL = "shell"
    PUPPET = "puppet"
    CHEF = "chef"


class SetupFailure(StrEnum):
    """What becomes of an ec2 machine whose setup failed."""

    KEEP = "keep"  # kept to look at, as OpsWorks did
    TERMINATE = "terminate"


class LifecycleEvent(StrEnum):
    SETUP = "setup"
    CONFIGURE = "configure"
    DEPLOY = "deploy"
    UNDEPLOY = "undeploy"
    SHUTDOWN = "shutdown"


class CookbookSource(StrictModel):
    """Exactly one of: a local directory, a git repository (+ revision), a .tar.gz URL."""

    source: PathText | None = Field(
        default=None, description="directory of cookbooks, relative to the stack file"
    )
    git: PathText | None = Field(default=None, description="git repository URL (or path)")
    revision: str | None = Field(default=None, description="git branch, tag or commit")
    archive: PathText | None = Field(default=None, description="URL of a .tar.gz of cookbooks")
    path: PathText | None = Field(
        default=None, description="subdirectory of the repository or archive to use"
    )

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> CookbookSource:
        kinds = [k for k in ("source", "git", "archive") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                "cookbooks: give exactly one of `source` (a directory), `git` (a repository, "
                f"with `revision`) or `archive` (a .tar.gz URL); got {kinds or 'none'}"
            )
        if self.revision is not None and self.git is None:
            raise ValueError("cookbooks.revision: only a `git` source has a revision")
        if self.path is not None and (self.path.startswith("/") or ".." in self.path.split("/")):
            raise ValueError(f"cookbooks.path: {self.path!r} must stay inside the source")
        return self

    @property
    def kind(self) -> str:
        return "git" if self.git is not None else "archive" if self.archive else "directory"

    def describe(self) -> str:
        if self.git is not None:
            return f"git {self.git} @ {self.revision or 'HEAD'}"
        if self.archive is not None:
            return f"archive {self.archive}"
        return f"directory {self.source}"


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


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def _seconds(value: Any) -> Any:
    """`5`, `5s`, `500ms`, `2m`, `1h` -> seconds; anything else is left to pydantic."""
    if isinstance(value, str):
        found = _DURATION.fullmatch(value)
        if found is None:
            raise ValueError(f"{value!r} is not a duration (like 5s, 500ms, 2m, 1h)")
        return float(found.group(1)) * _UNIT_SECONDS[found.group(2)]
    return value


# Seconds, written as a number or with a unit.
Duration = Annotated[float, BeforeValidator(_seconds)]


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


class Scaling(StrEnum):
    ALWAYS = "always"  # 24/7: started by `stack apply`
    TIME = "time"  # runs in its schedule's hours, started and stopped by a Temporal Schedule
    LOAD = "load"  # started and stopped by its layer's load-based scaling


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_HOURS = re.compile(r"^\s*(\d{1,2})\s*(?:-\s*(\d{1,2})\s*)?$")


def _hours(value: Any) -> Any:
    """A day's hours: `[9, 10, 11]`, `["9-17"]`, `"9-17"` or `"0-23"`, each an hour the
    instance runs (9-17: from 9:00 until 17:59)."""
    items = value if isinstance(value, list) else [value]
    hours: set[int] = set()
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | str):
            raise ValueError(f"{item!r} is not an hour (0-23) or a range like 9-17")
        if isinstance(item, int):
            first = last = item
        else:
            found = _HOURS.fullmatch(item)
            if found is None:
                raise ValueError(f"{item!r} is not an hour (0-23) or a range like 9-17")
            first = int(found.group(1))
            last = int(found.group(2)) if found.group(2) is not None else first
        if not (0 <= first <= 23 and 0 <= last <= 23):
            raise ValueError(f"{item!r}: hours are 0-23")
        if last < first:
            raise ValueError(f"{item!r}: a range goes from the earlier hour to the later")
        hours.update(range(first, last + 1))
    return sorted(hours)


Hours = Annotated[list[int], BeforeValidator(_hours)]


class WeeklySchedule(StrictModel):
    """When a time-based instance runs: per weekday, the hours it is up, in `timezone`
    (an IANA name; OpsWorks used UTC only). A day left out is a day it is off."""

    timezone: str = "UTC"
    monday: Hours = Field(default_factory=list)
    tuesday: Hours = Field(default_factory=list)
    wednesday: Hours = Field(default_factory=list)
    thursday: Hours = Field(default_factory=list)
    friday: Hours = Field(default_factory=list)
    saturday: Hours = Field(default_factory=list)
    sunday: Hours = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _known_days(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = [k for k in data if k != "timezone" and k not in WEEKDAYS]
            if unknown:
                raise ValueError(
                    f"unknown weekday(s) {unknown}: use {', '.join(WEEKDAYS)} (and timezone)"
                )
        return data

    @model_validator(mode="after")
    def _known_zone(self) -> WeeklySchedule:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"timezone: {self.timezone!r} is not a known IANA time zone "
                "(like UTC, Europe/Paris, America/New_York)"
            ) from None
        return self

    def hours(self, weekday: int) -> list[int]:
        """The hours of a weekday (0 = Monday)."""
        hours: list[int] = getattr(self, WEEKDAYS[weekday])
        return hours


class Ec2Options(StrictModel):
    """EC2 launch settings; the stack's are defaults, a layer's and an instance's override
    them key by key (tags are merged)."""

    ami: str | None = None
    instance_type: str | None = None
    subnet: str | None = None
    security_groups: list[str] | None = None
    key_pair: str | None = None
    instance_profile: str | None = Field(default=None, description="IAM instance profile name")
    tags: dict[str, str] = Field(default_factory=dict)
    ssh_user: str | None = Field(default=None, description="the AMI's login user (ec2-user)")
    ssh_key_file: str | None = Field(default=None, description="the key pair's private key")

    @model_validator(mode="after")
    def _shapes(self) -> Ec2Options:
        checks = [
            ("ami", self.ami, aws.AMI_ID, "an AMI id like ami-0abc1234def567890"),
            ("instance_type", self.instance_type, aws.INSTANCE_TYPE, "like t3.micro"),
            ("subnet", self.subnet, aws.SUBNET_ID, "a subnet id like subnet-0abc1234"),
        ]
        checks += [
            ("security_groups", group, aws.SECURITY_GROUP_ID, "a group id like sg-0abc1234")
            for group in self.security_groups or []
        ]
        for field, value, pattern, shape in checks:
            if value is not None and not pattern.fullmatch(value):
                raise ValueError(f"{field}: {value!r} is not {shape}")
        reserved = [key for key in self.tags if key.startswith(("opsflow:", "aws:"))]
        if reserved:
            raise ValueError(f"tags: {reserved} use a reserved prefix (opsflow:, aws:)")
        return self

    def over(self, base: Ec2Options) -> Ec2Options:
        """These options on top of `base`."""
        merged = base.model_dump() | self.model_dump(exclude_none=True, exclude={"tags"})
        merged["tags"] = base.tags | self.tags
        return Ec2Options.model_validate(merged)


class VolumeSpec(StrictModel):
    size: int = Field(ge=1, le=16384, description="GiB")
    type: str = Field(default="gp3", pattern=r"^(gp2|gp3|io1|io2|st1|sc1|standard)$")
    mount_point: str = Field(pattern=r"^/[A-Za-z0-9._/-]*$")


# An OpenSSH public key as in a known_hosts line: '<type> <base64>'.
HOST_KEY = re.compile(r"^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa) [A-Za-z0-9+/]+={0,2}$")
# A DNS name or an IPv4/IPv6 address: no spaces, no shell or URL syntax.
SSH_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.:-]{0,252}[A-Za-z0-9])?$")
SSH_USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")


class RegisteredHostSpec(StrictModel):
    """How to reach a host opsflow did not launch (OpsWorks' registered instances)."""

    host: str = Field(description="DNS name or IP address")
    port: int = Field(default=22, ge=1, le=65535)
    user: str = Field(default="root", description="must be able to write under `root`")
    key_file: PathText = Field(description="private key, relative to the stack file")
    host_key: str | None = Field(
        default=None,
        description="'<type> <base64>' to pin; absent: learned at registration and pinned",
    )
    root: str = Field(default="/", description="where opsflow keeps its files on the host")
    sudo: bool = Field(
        default=False, description="run recipes through `sudo -n` (a user that is not root)"
    )

    @model_validator(mode="after")
    def _shapes(self) -> RegisteredHostSpec:
        checks = [
            ("host", self.host, SSH_HOST, "a DNS name or an IP address"),
            ("user", self.user, SSH_USER, "a login name like deploy"),
            ("host_key", self.host_key, HOST_KEY, "'<type> <base64>' as in known_hosts"),
        ]
        for field, value, pattern, shape in checks:
            if value is not None and not pattern.fullmatch(value):
                raise ValueError(f"{field}: {value!r} is not {shape}")
        if not self.root.startswith("/") or ".." in self.root.split("/"):
            raise ValueError(f"root: {self.root!r} must be an absolute path")
        if not self.key_file:
            raise ValueError("key_file: the private key that logs in as `user` is needed")
        return self

    def where(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


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


AppName = Annotated[str, AfterValidator(_matches(names.STACK_NAME, "app name"))]
EnvName = Annotated[str, AfterValidator(_matches(names.ENV_NAME, "environment variable name"))]


# Stands in for a password given in any other form than a SecureValue, so that no
# validation error can quote it (pydantic puts each failing field's input in its errors).
_NOT_SECURE = "(not shown)"


def _secure_only(value: Any) -> Any:
    """A password must reach the spec encrypted: a plain string would travel in clear."""
    if not isinstance(value, SecureValue | dict):  # (a plain value is _NOT_SECURE here)
        raise ValueError(
            "must be a secure value, written {value: ..., secure: true} in the stack file "
            "(a plain string is refused: the password would sit in the spec in plain text)"
        )
    return value


class RdsSpec(StrictModel):
    """An existing RDS DB instance registered with the stack (OpsWorks' RDS layer): apps
    that name it in `data_source` get its endpoint, port, engine and database name in
    their deploy attributes (`deploy.{app}.database`), with `username` and `password`.
    The endpoint, port, engine and database name are read from AWS at `stack apply`."""

    name: Annotated[str, AfterValidator(_matches(names.STACK_NAME, "rds name"))] = Field(
        description="what apps' `data_source` names"
    )
    identifier: str = Field(description="the RDS DB instance identifier")
    username: str = Field(min_length=1, max_length=128)
    password: Annotated[SecureValue, BeforeValidator(_secure_only)]
    database_name: str | None = Field(
        default=None, min_length=1, max_length=128, description="default: the instance's DBName"
    )

    @model_validator(mode="before")
    @classmethod
    def _hide_a_plain_password(cls, data: Any) -> Any:
        if isinstance(data, dict) and "password" in data:
            password = data["password"]
            dumped = isinstance(password, dict) and password.keys() == {"secure", "ciphertext"}
            if not (isinstance(password, SecureValue) or dumped):
                return {**data, "password": _NOT_SECURE}
        return data

    @model_validator(mode="after")
    def _identifier_shape(self) -> RdsSpec:
        if not aws.RDS_IDENTIFIER.fullmatch(self.identifier):
            raise ValueError(
                f"identifier: {self.identifier!r} is not an RDS DB instance identifier "
                f"(must match {aws.RDS_IDENTIFIER.pattern})"
            )
        return self


class AppSpec(StrictModel):
    """An app deployed to the instances of its layers, release by release.

    `environment` values are plain strings or, for secrets, `{value: ..., secure: true}` in
    the stack file; the CLI encrypts those when it loads the file, so the spec only ever
    carries ciphertext (a SecureValue) from then on.
    """

    name: AppName
    layers: list[LayerName] = Field(min_length=1)
    source: CookbookSource | None = Field(
        default=None, description="the app's code: a directory, a git revision or an archive"
    )
    environment: dict[EnvName, str | SecureValue] = Field(default_factory=dict)
    deploy_to: str | None = Field(default=None, description="default: {root}/srv/www/{name}")
    health_check: HealthCheckSpec | None = None
    data_source: str | None = Field(
        default=None, description="the `rds` entry whose database the app uses"
    )

    @model_validator(mode="after")
    def _absolute_deploy_to(self) -> AppSpec:
        if self.deploy_to is not None and (
            not self.deploy_to.startswith("/") or ".." in self.deploy_to.split("/")
        ):
            raise ValueError(f"deploy_to: {self.deploy_to!r} must be an absolute path")
        return self


class StackSpec(StrictModel):
    name: StackName
    provider: Provider = Provider.LOCAL
    region: str | None = Field(default=None, description="ec2: the AWS region")
    ec2: Ec2Options | None = None
    configuration_manager: ConfigurationManager = ConfigurationManager.SHELL
    cookbooks: CookbookSource | None = None
    custom_json: dict[str, Any] = Field(default_factory=dict)
    layers: list[LayerSpec] = Field(default_factory=list)
    apps: list[AppSpec] = Field(default_factory=list)
    rds: list[RdsSpec] = Field(default_factory=list, description="ec2: registered RDS instances")

    @model_validator(mode="after")
    def _check_whole_stack(self) -> StackSpec:
        self._check_provider_settings()
        seen_layers: set[str] = set()
        seen_hosts: dict[str, str] = {}
        for layer in self.layers:
            if layer.name in seen_layers:
                raise ValueError(f"layers: layer name {layer.name!r} is used twice")
            seen_layers.add(layer.name)
            for instance in layer.instances:
                if instance.hostname in seen_hosts:
                    raise ValueError(
                        f"layers: hostname {instance.hostname!r} appears in layer "
                        f"{seen_hosts[instance.hostname]!r} and in layer {layer.name!r}"
                    )
                seen_hosts[instance.hostname] = layer.name
        seen_rds: set[str] = set()
        for entry in self.rds:
            if entry.name in seen_rds:
                raise ValueError(f"rds: name {entry.name!r} is used twice")
            seen_rds.add(entry.name)
        seen_apps: set[str] = set()
        for index, app in enumerate(self.apps):
            if app.name in seen_apps:
                raise ValueError(f"apps: app name {app.name!r} is used twice")
            seen_apps.add(app.name)
            unknown = [layer for layer in app.layers if layer not in seen_layers]
            if unknown:
                raise ValueError(f"apps: app {app.name!r} names unknown layer(s) {unknown}")
            if app.data_source is not None and app.data_source not in seen_rds:
                raise ValueError(
                    f"apps[{index}].data_source: {app.data_source!r} is not an `rds` entry of "
                    f"this stack (rds: {', '.join(sorted(seen_rds)) or 'none'})"
                )
        return self

    def _check_provider_settings(self) -> None:
        self._check_registered_hosts()
        if self.provider != Provider.EC2:
            used = ["region"] if self.region is not None else []
            used += ["ec2"] if self.ec2 is not None else []
            used += ["rds"] if self.rds else []
            used += [f"layers.{layer.name}.{f}" for layer in self.layers for f in layer.uses_ec2()]
            if used:
                raise ValueError(
                    f"{', '.join(used)}: only for provider ec2 (this stack is "
                    f"{self.provider.value})"
                )
            return
        if self.region is None:
            raise ValueError("region: provider ec2 needs a region (like us-east-1)")
        if not aws.REGION.fullmatch(self.region):
            raise ValueError(f"region: {self.region!r} is not an AWS region name (like us-east-1)")

    def _check_registered_hosts(self) -> None:
        """A registered stack's instances are existing hosts: each says how to reach it,
        and none can be started, stopped or added by scaling; elsewhere `ssh` is refused."""
        registered = self.provider == Provider.REGISTERED
        for li, layer in enumerate(self.layers):
            if registered and layer.load_based_scaling is not None:
                raise ValueError(
                    f"layers[{li}].load_based_scaling: provider registered cannot start, stop "
                    "or add hosts"
                )
            for ii, instance in enumerate(layer.instances):
                where = f"layers[{li}].instances[{ii}]"
                if registered and instance.ssh is None:
                    raise ValueError(
                        f"{where}.ssh: provider registered needs each instance's host "
                        "(ssh: {host, key_file, ...})"
                    )
                if registered and instance.scaling != Scaling.ALWAYS:
                    raise ValueError(
                        f"{where}.scaling: provider registered cannot start or stop hosts "
                        f"(scaling {instance.scaling.value})"
                    )
                if not registered and instance.ssh is not None:
                    raise ValueError(
                        f"{where}.ssh: only for provider registered (this stack is "
                        f"{self.provider.value}; `opsflow instance register` brings a host in)"
                    )

    def app(self, name: str) -> AppSpec | None:
        return next((app for app in self.apps if app.name == name), None)

    def rds_entry(self, name: str) -> RdsSpec | None:
        return next((entry for entry in self.rds if entry.name == name), None)

    def layer(self, name: str) -> LayerSpec | None:
        return next((layer for layer in self.layers if layer.name == name), None)

    def manager_for(self, layer_name: str) -> ConfigurationManager:
        """The configuration manager that runs a layer's recipes."""
        layer = self.layer(layer_name)
        if layer is not None and layer.configuration_manager is not None:
            return layer.configuration_manager
        return self.configuration_manager

    def declared_instances(self) -> dict[str, str]:
        """hostname -> layer, for every instance the file declares."""
        return {i.hostname: layer.name for layer in self.layers for i in layer.instances}


def recipe_references(spec: StackSpec) -> list[tuple[str, str]]:
    """Every recipe the spec names, with the field path that names it."""
    refs: list[tuple[str, str]] = []
    for li, layer in enumerate(spec.layers):
        for event in LifecycleEvent:
            for ri, recipe in enumerate(layer.recipes.for_event(event)):
                refs.append((f"layers[{li}].recipes.{event.value}[{ri}]", recipe))
    return refs


def missing_recipes(
    spec: StackSpec, available: Mapping[ConfigurationManager, set[str]]
) -> list[str]:
    """Problems for recipes the spec names that the cookbooks do not provide (each layer's
    recipes are looked up for the layer's configuration manager)."""
    problems: list[str] = []
    for li, layer in enumerate(spec.layers):
        manager = spec.manager_for(layer.name)
        for event in LifecycleEvent:
            for ri, recipe in enumerate(layer.recipes.for_event(event)):
                if recipe not in available.get(manager, set()):
                    problems.append(
                        f"layers[{li}].recipes.{event.value}[{ri}]: recipe {recipe!r} does not "
                        f"exist in the cookbooks (as a {manager.value} recipe)"
                    )
    return problems

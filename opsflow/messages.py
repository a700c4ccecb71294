"""Inputs and results of every workflow message and activity.

Each message has its own small type so a field can be added later without breaking
running workflows (new fields always get defaults).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, Field, model_validator

from opsflow.events import EventKind
from opsflow.origin import ClientOrigin
from opsflow.rollout import Strategy
from opsflow.secrets import SecureValue
from opsflow.spec import (
    CloudWatchMetric,
    ConfigurationManager,
    CookbookSource,
    Ec2Options,
    HealingPolicySpec,
    HealthCheckSpec,
    LayerHealthCheckSpec,
    Provider,
    RegisteredHostSpec,
    Scaling,
    StackSpec,
    UserSpec,
    VolumeSpec,
    WeeklySchedule,
)
from opsflow.status import InstanceStatus


class SshEndpoint(BaseModel):
    """How to reach an instance; host_key is pinned at launch and checked on every connect."""

    host: str
    port: int
    user: str
    key_file: str = Field(description="the private key's file: shown; read only without `key`")
    host_key: str = Field(description="'<type> <base64>' as in a known_hosts line")
    sudo: bool = Field(
        default=False, description="recipe runs go through `sudo -n` (a login user not root)"
    )
    key: SecureValue | None = Field(
        default=None,
        description="the private key, sealed (registered hosts, ec2); None: read key_file on "
        "the worker (local instances, whose key lives on their worker; stacks made before)",
    )


class MachineFacts(BaseModel):
    """What OpsWorks showed recipes of an instance's machine (`opsworks.instance`,
    aws_opsworks_instance) that opsflow can learn where it launches one: from EC2's
    answer; on a local machine its host's architecture and os and its hostname as private
    DNS name, the rest None ("as on a non-EC2 machine"). All None in views made before."""

    instance_type: str | None = None
    availability_zone: str | None = None
    region: str | None = None
    public_ip: str | None = None
    public_dns_name: str | None = None
    private_dns_name: str | None = None
    architecture: str | None = None
    ami_id: str | None = None
    os: str | None = None
    subnet_id: str | None = None
    elastic_ip: str | None = None
    root_device_type: str | None = None
    created_at: datetime | None = None
    booted_at: datetime | None = None


class InstanceView(MachineFacts):
    """What the stack knows of one instance; what `instance list` prints (its machine's
    facts from MachineFacts, as the last launch found them)."""

    hostname: str
    layers: list[str]
    status: InstanceStatus = InstanceStatus.REQUESTED
    provider: Provider = Provider.LOCAL
    root: str | None = None
    private_ip: str | None = None
    ssh: SshEndpoint | None = None
    from_file: bool = Field(default=True, description="declared in the stack file")
    scaling: Scaling = Scaling.ALWAYS
    message: str | None = Field(default=None, description="why the last command failed")
    updated_at: datetime | None = None
    ec2_instance_id: str | None = Field(
        default=None, description="ec2: the EC2 instance id (cpu then comes from CloudWatch)"
    )
    task_queue: str | None = Field(
        default=None,
        description="local: the task queue of the worker that launched it, where all its "
        "activities run; None: the shared queue (any worker)",
    )


class InstanceStatusLine(BaseModel):
    """One instance's status, all that waiting for instances to settle needs: the stack's
    `statuses` query answers these (a few dozen bytes an instance, not the whole view)."""

    hostname: str
    status: InstanceStatus
    updated_at: datetime | None = None


# ---- stack updates ---------------------------------------------------------------------

ORIGIN_HELP = "the sender's store and key, checked by the validator (None: not checked)"
CUSTOM_JSON_HELP = (
    "the command's own custom JSON (--custom-json): every recipe of its runs sees it, merged "
    "last (over the stack's and the layers'); see opsflow.custom_json"
)


class ApplyInput(BaseModel):
    spec: StackSpec
    source_file: str | None = None
    origin: ClientOrigin | None = Field(default=None, description=ORIGIN_HELP)


class ApplyResult(BaseModel):
    changes: list[str]
    started: list[str] = Field(default_factory=list)
    stopping: list[str] = Field(default_factory=list)


class _InLayers(BaseModel):
    """A new instance's layers, in run order; `layer` is what clients sent before."""

    layers: list[str] = Field(default_factory=list)
    layer: str | None = Field(
        default=None, description="the one layer, as clients before `layers` sent it"
    )

    @model_validator(mode="after")
    def _one_list_of_layers(self) -> Self:
        # Old clients (and updates recorded in running stacks' histories) send `layer`.
        if not self.layers and self.layer is not None:
            self.layers = [self.layer]
        if self.layers and self.layer is None:
            self.layer = self.layers[0]
        return self


class AddInstanceInput(_InLayers):
    """`opsflow instance add`: a new instance in one or more layers (in run order)."""

    hostname: str
    start: bool = False
    origin: ClientOrigin | None = Field(default=None, description=ORIGIN_HELP)


class RegisterInstanceInput(_InLayers):
    """`opsflow instance register`: an existing SSH host joins one or more layers."""

    hostname: str
    host: RegisteredHostSpec
    origin: ClientOrigin | None = Field(default=None, description=ORIGIN_HELP)


class RegisterInstanceResult(BaseModel):
    view: InstanceView
    host_key: str = Field(description="the host key now pinned for it")


class InstanceActionKind(StrEnum):
    START = "start"
    STOP = "stop"
    DELETE = "delete"


class InstanceActionInput(BaseModel):
    hostname: str
    action: InstanceActionKind
    origin: ClientOrigin | None = Field(default=None, description=ORIGIN_HELP)


class RunCommandInput(BaseModel):
    command: str
    layer: str | None = None
    instance: str | None = None
    recipes: list[str] = Field(default_factory=list)
    origin: ClientOrigin | None = Field(default=None, description=ORIGIN_HELP)
    artifact: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="update_custom_cookbooks, set by the CLI: the cookbooks' `source` "
        "directory packed again (as it is now); None: as packed by the last apply",
    )
    custom_json: dict[str, Any] | None = Field(default=None, description=CUSTOM_JSON_HELP)


class RunCommandResult(BaseModel):
    deployment_id: str
    targets: list[str]


class DeleteStackInput(BaseModel):
    """`stack delete` (before the origin check, delete took no input: still accepted)."""

    origin: ClientOrigin | None = Field(default=None, description=ORIGIN_HELP)


class DeleteStackResult(BaseModel):
    instances: list[str]


# ---- stack <-> instance -----------------------------------------------------------------


class InstanceCommandKind(StrEnum):
    START = "start"
    STOP = "stop"
    DELETE = "delete"
    RUN = "run"  # run a lifecycle event's recipes (setup, configure, ...) on an online instance
    HEAL = "heal"  # replace a lost machine: new machine, same identity, setup, deploy, online


class InstanceCommand(BaseModel):
    id: str
    kind: InstanceCommandKind
    event: str | None = None
    recipes: list[str] | None = Field(
        default=None, description="explicit recipes; None means the layer's for the event"
    )
    reply_to: str | None = Field(default=None, description="workflow id to signal the result to")
    generation: int = Field(default=0, description="configure round, for coalescing")
    stage_only: bool = Field(default=False, description="stage cookbooks, run no recipe")
    app: AppRelease | None = Field(default=None, description="deploy/rollback/undeploy an app")
    health_check: HealthCheckSpec | None = Field(
        default=None, description="after a successful run, the instance must pass this"
    )
    deploy_after_setup: list[AppRelease] = Field(
        default_factory=list, description="start: apps whose current release goes on after setup"
    )
    machine: Ec2Machine | None = Field(default=None, description="start/heal of an ec2 instance")
    registered: RegisteredHostSpec | None = Field(
        default=None, description="start of a registered host: how to reach it (key pinned)"
    )
    terminate_on_setup_failure: bool = False
    reason: str | None = Field(default=None, description="heal: why the instance is lost")
    snapshot: str | None = Field(
        default=None,
        description="digest of the configuration snapshot its runs read (None: ask the stack)",
    )
    custom_json: dict[str, Any] | None = Field(default=None, description=CUSTOM_JSON_HELP)
    layers: list[str] | None = Field(
        default=None,
        description="start/heal: the instance's layers now (changed while it was stopped)",
    )


class InstanceCommandResult(BaseModel):
    command_id: str
    hostname: str
    ok: bool
    skipped: bool = False
    cancelled: bool = False
    status: InstanceStatus
    run_id: str | None = None
    error: str | None = None
    log_tail: str | None = None
    release: str | None = Field(default=None, description="an app run: the release now current")
    previous_release: str | None = None
    release_switched: bool = Field(
        default=False, description="an app deploy changed the current release (undo = rollback)"
    )


class InstanceChanged(BaseModel):
    """Sent by an instance workflow to its stack whenever its view changes."""

    view: InstanceView


# ---- deployments (commands across instances) ------------------------------------------


class DeploymentInput(BaseModel):
    stack: str
    id: str
    command: str
    snapshot: str | None = Field(
        default=None, description="the configuration snapshot its runs read (None: a query)"
    )
    event: str = Field(description="the lifecycle event whose recipes run")
    targets: list[str]
    recipes: list[str] | None = None
    stage_only: bool = False
    app: AppRelease | None = None
    strategy: Strategy = Strategy.ALL_AT_ONCE
    batch: str | None = None
    max_failures: str | None = None
    canary_bake_seconds: float | None = None
    health_check: HealthCheckSpec | None = None
    tag_runs: bool = True
    custom_json: dict[str, Any] | None = Field(
        default=None, description="passed to every instance command (not to compensation)"
    )


class DeploymentStatus(StrEnum):
    RUNNING = "running"
    SUCCESSFUL = "successful"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ROLLED_BACK = "rolled_back"
    AWAITING_APPROVAL = "awaiting_approval"


class CancelCommand(BaseModel):
    command_id: str


class DeploymentResult(BaseModel):
    id: str
    command: str
    status: DeploymentStatus
    targets: list[str] = Field(default_factory=list)
    instances: list[InstanceCommandResult] = Field(default_factory=list)


# ---- activities -----------------------------------------------------------------------


class Ec2Machine(BaseModel):
    """What launching one instance needs: its resolved options and the layer's extras."""

    stack: str
    layer: str
    hostname: str
    region: str
    options: Ec2Options
    elastic_ip: bool = False
    volumes: list[VolumeSpec] = Field(default_factory=list)
    target_group: str | None = Field(default=None, description="the layer's load balancer")
    token: str = Field(description="the same for every retry of one start: one instance only")


class Ec2Resources(BaseModel):
    """What opsflow created for one instance (kept in its state; all released on delete)."""

    instance_id: str
    availability_zone: str | None = None
    private_ip: str | None = None
    public_ip: str | None = None
    allocation_id: str | None = None
    association_id: str | None = None
    volume_ids: list[str] = Field(default_factory=list)


class TargetInput(BaseModel):
    region: str
    target_group: str
    instance_id: str


class LaunchInput(BaseModel):
    stack: str
    hostname: str
    provider: Provider
    ec2: Ec2Machine | None = None
    kept: Ec2Resources | None = Field(
        default=None, description="heal: the lost instance's address and volumes to take over"
    )
    registered: RegisteredHostSpec | None = Field(
        default=None, description="registered: the host to attach to (its key pinned)"
    )


class AttachHostInput(BaseModel):
    """Check that a host to register answers, and pin its host key."""

    stack: str
    hostname: str
    host: RegisteredHostSpec


class LaunchResult(BaseModel):
    ssh: SshEndpoint
    root: str
    private_ip: str
    facts: MachineFacts | None = Field(
        default=None, description="the machine's facts (None: a provider before they were)"
    )
    ec2: Ec2Resources | None = None
    task_queue: str | None = Field(
        default=None,
        description="the machine is on the launching worker's host: its own task queue",
    )


class MachineInput(BaseModel):
    stack: str
    hostname: str
    provider: Provider
    region: str | None = None
    ec2: Ec2Resources | None = None
    keep: bool = Field(default=False, description="heal: keep the address and volumes")


class RecipeRunInput(BaseModel):
    stack: str
    hostname: str
    event: str
    recipes: list[str] | None = Field(
        default=None, description="explicit recipes; None: the instance's layers' for the event"
    )
    run_id: str = Field(description="unique per run; a retried activity re-attaches to it")
    command_id: str | None = Field(default=None, description="the command this run is part of")
    stage_only: bool = Field(
        default=False, description="stage the cookbooks and run nothing (update_custom_cookbooks)"
    )
    ssh: SshEndpoint
    root: str
    instance: InstanceView = Field(description="this instance as its workflow sees it now")
    app: AppRelease | None = Field(
        default=None, description="deploy, roll back or undeploy this app within the run"
    )
    snapshot: str | None = Field(
        default=None,
        description="digest of the stack's configuration snapshot to read (None: a query)",
    )
    custom_json: dict[str, Any] | None = Field(
        default=None,
        description="the command's own custom JSON (deploy/run --custom-json): merged last, "
        "over the stack's and the layers'",
    )


class RecipeRunResult(BaseModel):
    run_id: str
    recipes: list[str] = Field(default_factory=list)
    exit_code: int
    log_tail: str
    attached: bool = Field(default=False, description="found the run already going")
    seconds: float = 0.0
    release: str | None = Field(default=None, description="the app's release now current")
    previous_release: str | None = Field(
        default=None, description="the app's release that was current before the run"
    )


class ConfigurationQuery(BaseModel):
    hostname: str
    event: str
    instance: InstanceView | None = None


class StackDescription(BaseModel):
    name: str
    spec: StackSpec
    source_file: str | None
    instances: list[InstanceView]
    deleting: bool
    configure_rounds: int
    configure_pending: bool = False
    events: list[StackEvent]


class StackEvent(BaseModel):
    at: datetime
    # A kind this version does not know (a newer worker's, in a stack's recorded events)
    # stays loadable as text; a known one is its EventKind.
    kind: EventKind | str = Field(union_mode="left_to_right")
    message: str
    hostname: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


StackDescription.model_rebuild()


class RunContext(BaseModel):
    """What a recipe run needs from its stack, read when the run starts (the freshest)."""

    configuration: dict[str, Any]
    recipes: list[str]
    configuration_manager: ConfigurationManager
    cookbooks_dir: str | None
    cookbooks_digest: str | None = Field(
        default=None, description="content hash of cookbooks_dir, when the stack knows it"
    )
    cookbooks_blob: str | None = Field(
        default=None,
        description="the packed cookbooks in the artifact store: used instead of "
        "cookbooks_dir (a directory on the worker that fetched them) when set",
    )
    data_bags: dict[str, dict[str, dict[str, Any]]] | None = Field(
        default=None,
        description="Chef 12 stacks: OpsWorks' data bags, {BAG: {ITEM_ID: item}}, secure "
        "values still sealed (the runner reveals them on the worker); None: Chef 11 mode",
    )
    users: list[UserSpec] | None = Field(
        default=None,
        description="this instance's stack users (opsflow.users); None: the stack has none",
    )


class FetchCookbooksInput(BaseModel):
    stack: str
    source: CookbookSource


class ResolvedCookbooks(BaseModel):
    """Cookbooks (or an app's code) fetched, by content hash: the packed tree's blob in the
    artifact store, which any worker unpacks (runtime/tree_cache.py), and the directory on
    the worker that fetched it (all a stack made before the artifact store has)."""

    directory: str
    digest: str  # cookbooks_digest of the tree: names the tree staged on instances
    description: str
    recipes: dict[ConfigurationManager, list[str]] = Field(default_factory=dict)
    blob: str | None = Field(
        default=None, description="sha256 of the packed tree in the artifact store"
    )


# ---- apps -------------------------------------------------------------------------------


class ConfigurationSnapshot(BaseModel):
    """One generation of what every recipe run of a stack reads from it: the spec, its
    instances (only what the attributes show of them) and its cookbooks. Published to the
    artifact store by digest; a run derives its own document from it (opsflow.snapshots)
    with its instance, its event and its app release."""

    stack: str
    generation: int
    spec: StackSpec
    instances: list[InstanceView]
    cookbooks: ResolvedCookbooks | None = None
    rds: dict[str, RdsInfo] = Field(
        default_factory=dict,
        description="rds entry name -> what AWS said of it at the last apply (the apps' "
        "databases in the attributes and data bags)",
    )


class PublishSnapshotInput(BaseModel):
    stack: str
    generation: int = Field(description="the stack's generation when it asked (or newer)")


class SnapshotRef(BaseModel):
    """A published configuration snapshot: its generation and its digest in the store."""

    generation: int
    digest: str
    size: int = Field(default=0, description="bytes")


class AppAction(StrEnum):
    """What an app run does to the app's releases on an instance. start, stop and restart
    keep the current release and run the layer's deploy recipes with OPSFLOW_EVENT set to
    the command, so recipes branch on it (OpsWorks' start/stop/restart app commands)."""

    DEPLOY = "deploy"
    ROLLBACK = "rollback"
    UNDEPLOY = "undeploy"
    START = "start"
    STOP = "stop"
    RESTART = "restart"


class AppRelease(BaseModel):
    """An app release to deploy, roll back or undeploy on an instance, as part of a recipe
    run (activities.recipe_runner: the release switch is in the same exactly-once run)."""

    app: str = Field(description="the app's name, [a-z][a-z0-9-]{0,38}")
    action: AppAction
    release: str | None = Field(
        default=None, description="deploy: the new release's name (opsflow.releases.release_name)"
    )
    revision: str | None = None
    source_dir: str | None = Field(
        default=None, description="deploy: the app's code on the worker's disk"
    )
    source_digest: str | None = Field(
        default=None, description="content hash of source_dir, when the caller knows it"
    )
    source_blob: str | None = Field(
        default=None,
        description="deploy: the packed code in the artifact store, used instead of "
        "source_dir (a directory on the worker that fetched it) when set",
    )
    deploy_to: str | None = Field(default=None, description="default {root}/srv/www/{app}")
    environment: dict[str, str | SecureValue] = Field(
        default_factory=dict,
        description="exported to the recipes; secure values stay encrypted until the runner "
        "writes them on the instance (activity inputs are kept in workflow history), and are "
        "redacted from every log the runner returns or keeps",
    )
    database: AppDatabase | None = Field(
        default=None, description="the app's data_source: deploy.{app}.database on the instance"
    )


class AppDatabase(BaseModel):
    """An app's database (OpsWorks' `node[:deploy][app][:database]`): a registered RDS
    instance. The password stays a SecureValue until the runner writes the attributes."""

    type: str = "rds"
    engine: str
    host: str
    port: int
    database: str | None = None
    username: str
    password: SecureValue


# AppRelease names AppDatabase before it is defined: completed here, not lazily on first
# use (a first use inside the workflow sandbox cannot resolve the name).
AppRelease.model_rebuild()
RecipeRunInput.model_rebuild()
InstanceCommand.model_rebuild()
DeploymentInput.model_rebuild()


# ---- rds ----------------------------------------------------------------------------------


class DescribeRdsInput(BaseModel):
    stack: str
    region: str
    identifiers: list[str]


class RdsInfo(BaseModel):
    """What AWS says of one RDS DB instance (DescribeDBInstances)."""

    identifier: str
    address: str
    port: int
    engine: str
    database_name: str | None = None
    arn: str | None = Field(default=None, description="DBInstanceArn (data bags name it)")


class RdsInstances(BaseModel):
    """describe_rds's result: identifier -> what AWS says of it."""

    instances: dict[str, RdsInfo] = Field(default_factory=dict)


# ConfigurationSnapshot names RdsInfo before it is defined: completed here (see above).
ConfigurationSnapshot.model_rebuild()


class HealthCheckInput(BaseModel):
    stack: str
    hostname: str
    private_ip: str | None
    ssh: SshEndpoint
    check: HealthCheckSpec


class HealthCheckResult(BaseModel):
    healthy: bool
    attempts: int
    seconds: float
    detail: str = Field(description="the last probe's answer: status line, or command output")


# ---- app deployments ------------------------------------------------------------------


class DeployInput(BaseModel):
    """`opsflow deploy STACK APP ...`: amounts stay text ("3", "25%") until the validator
    parses them (opsflow.rollout.parse_amount), so the error names the option."""

    app: str
    revision: str | None = None
    # Text until the validator checks it, so the refusal names `--strategy` (as amounts).
    strategy: str = Strategy.ALL_AT_ONCE.value
    batch: str | None = None
    max_failures: str | None = None
    canary_bake_seconds: float | None = Field(
        default=None, description="canary: go on after this long; None: wait for approve"
    )
    health_check: HealthCheckSpec | None = Field(
        default=None, description="overrides the app's health_check for this deployment"
    )
    origin: ClientOrigin | None = Field(default=None, description=ORIGIN_HELP)
    artifact: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="set by the CLI: the app's `source` directory packed again for this "
        "deployment (the code as it is now); None: as packed by the last apply",
    )
    custom_json: dict[str, Any] | None = Field(default=None, description=CUSTOM_JSON_HELP)


class AppCommandInput(BaseModel):
    """`opsflow rollback STACK APP [--to RELEASE]` and `opsflow run STACK
    undeploy|start|stop|restart --app APP`."""

    app: str
    action: AppAction
    release: str | None = Field(default=None, description="rollback: the release to go back to")
    origin: ClientOrigin | None = Field(default=None, description=ORIGIN_HELP)
    custom_json: dict[str, Any] | None = Field(default=None, description=CUSTOM_JSON_HELP)


class InstanceDeployStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCESSFUL = "successful"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    SKIPPED = "skipped"


class InstanceDeployment(BaseModel):
    hostname: str
    batch: int
    status: InstanceDeployStatus = InstanceDeployStatus.PENDING
    release: str | None = None
    previous_release: str | None = None
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class DeploymentSummary(BaseModel):
    id: str
    stack: str
    app: str | None = None
    command: str
    strategy: Strategy = Strategy.ALL_AT_ONCE
    status: DeploymentStatus
    revision: str | None = None
    release: str | None = None
    started_at: datetime
    finished_at: datetime | None = None


class DeploymentDetail(DeploymentSummary):
    batches: list[list[str]] = Field(default_factory=list)
    current_batch: int = 0
    awaiting_approval: bool = False
    instances: list[InstanceDeployment] = Field(default_factory=list)
    custom_json: dict[str, Any] | None = Field(
        default=None, description="the command's own custom JSON, as given"
    )


class DeploymentEnd(BaseModel):
    """How a deployment ended: its result and its last detail (None when it came from the
    closed run's result, which has no detail)."""

    result: DeploymentResult
    detail: DeploymentDetail | None = None


# ---- auto healing ------------------------------------------------------------------------


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


# ---- scaling -----------------------------------------------------------------------------


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

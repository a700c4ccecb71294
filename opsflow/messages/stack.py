"""The stack workflow's updates and results, its commands to instance workflows, and the
recipe runs those commands make."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, Field, model_validator

from opsflow.events import EventKind
from opsflow.messages.apps import AppRelease
from opsflow.messages.machines import Ec2Machine, InstanceView, SshEndpoint
from opsflow.origin import ClientOrigin
from opsflow.spec import (
    ConfigurationManager,
    HealthCheckSpec,
    RegisteredHostSpec,
    StackSpec,
    UserSpec,
)
from opsflow.status import InstanceStatus

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


class StackEvent(BaseModel):
    at: datetime
    # A kind this version does not know (a newer worker's, in a stack's recorded events)
    # stays loadable as text; a known one is its EventKind.
    kind: EventKind | str = Field(union_mode="left_to_right")
    message: str
    hostname: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class StackDescription(BaseModel):
    name: str
    spec: StackSpec
    source_file: str | None
    instances: list[InstanceView]
    deleting: bool
    configure_rounds: int
    configure_pending: bool = False
    events: list[StackEvent]


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

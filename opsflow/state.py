"""Each long-lived workflow keeps all it knows in one model, handed whole to continue-as-new."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, model_validator

from opsflow.messages import (
    AppRelease,
    DeploymentStatus,
    DeploymentSummary,
    Ec2Resources,
    HealingConfig,
    InstanceCommand,
    InstanceCommandResult,
    InstanceView,
    RdsInfo,
    ResolvedCookbooks,
    SnapshotRef,
    StackEvent,
)
from opsflow.releases import KEEP_RELEASES, previous_release
from opsflow.spec import (
    LoadBasedScaling,
    RegisteredHostSpec,
    Scaling,
    StackSpec,
    WeeklySchedule,
)

MAX_EVENTS = 200
MAX_DEPLOYMENTS = 100
MAX_RUNS_KEPT = 30


class RunRecord(BaseModel):
    run_id: str
    command_id: str
    event: str
    ok: bool
    cancelled: bool = False
    started_at: datetime
    finished_at: datetime
    error: str | None = None
    log_tail: str | None = None


class InstanceState(BaseModel):
    stack: str
    max_history_events: int | None = Field(
        default=None, description="continue-as-new past this; None: when the server suggests"
    )
    view: InstanceView
    queue: list[InstanceCommand] = Field(default_factory=list)
    current: InstanceCommand | None = None
    runs: list[RunRecord] = Field(default_factory=list)
    run_counter: int = 0
    last_result: InstanceCommandResult | None = None
    # ec2: what opsflow created for the instance, and where (released on terminate).
    ec2: Ec2Resources | None = None
    region: str | None = None
    target_group: str | None = None
    # local: why the worker its view.task_queue names is taken as gone (nothing ran there
    # for workflows.common.WORKER_GONE_TIMEOUT); its activities are then not sent there.
    worker_gone: str | None = None


class AppliedState(BaseModel):
    """What the last `stack apply` brought: the spec and what was read for it."""

    spec: StackSpec | None = None
    source_file: str | None = None
    cookbooks: ResolvedCookbooks | None = None
    # rds entry name -> what AWS said of its instance at the last apply.
    rds: dict[str, RdsInfo] = Field(default_factory=dict)
    # Registered hosts (from the file or `instance register`), their host keys pinned.
    registered: dict[str, RegisteredHostSpec] = Field(default_factory=dict)


class MembersState(BaseModel):
    """The instances as they last reported, and the configure rounds they caused."""

    instances: dict[str, InstanceView] = Field(default_factory=dict)
    configure_pending: bool = False
    configure_rounds: int = 0
    # Configuration generation: moves on with every change a run's configuration shows
    # (spec, cookbooks, any instance's status or address); `snapshot` is the newest
    # published to the artifact store.
    generation: int = 0
    snapshot: SnapshotRef | None = None


class CommandsState(BaseModel):
    """Commands and deployments started, and the app releases they made current."""

    deployment_seq: int = 0
    deployments: list[DeploymentSummary] = Field(default_factory=list)
    # Each app's release now current (what a new instance gets after its setup).
    apps: dict[str, AppRelease] = Field(default_factory=dict)
    # Releases of deployments still running (a deploy's new one, a rollback's earlier one):
    # they become current when they succeed.
    pending_releases: dict[str, AppRelease] = Field(default_factory=dict)
    # Each app's releases that deploys made current, oldest first, the newest KEEP_RELEASES
    # (what instances keep): what a rollback makes current again.
    history: dict[str, list[AppRelease]] = Field(default_factory=dict)

    def remember(self, summary: DeploymentSummary) -> None:
        """Add or update one deployment in the bounded history."""
        self.deployments = [d for d in self.deployments if d.id != summary.id] + [summary]
        del self.deployments[:-MAX_DEPLOYMENTS]

    def rollback_target(self, app: str, to: str | None) -> AppRelease | None:
        """The release a rollback of `app` makes current: release `to`, else the one deployed
        before the current one; None when the stack does not know it (deployed before it
        kept a history, or gone past KEEP_RELEASES)."""
        kept = self.history.get(app, [])
        current = self.apps.get(app)
        if to is None:
            if current is None or current.release is None:
                return None
            to = previous_release([r.release for r in kept if r.release], current.release)
        return next((r for r in kept if r.release == to), None)

    def finished(self, summary: DeploymentSummary) -> None:
        """A deployment ended: its release, if it succeeded, is the app's current one (and a
        deploy's joins the history); a successful undeploy leaves the app with none."""
        release = self.pending_releases.pop(summary.id, None)
        if not summary.app or summary.status != DeploymentStatus.SUCCESSFUL:
            return
        if summary.command == "undeploy":
            self.apps.pop(summary.app, None)
            self.history.pop(summary.app, None)
        elif release is not None and summary.command in ("deploy", "rollback"):
            self.apps[summary.app] = release
            if summary.command == "deploy":
                kept = self.history.get(summary.app, [])
                kept = [r for r in kept if r.release != release.release]
                self.history[summary.app] = [*kept, release][-KEEP_RELEASES:]


class LoopsState(BaseModel):
    """What keeps running beside the instances: per-layer loops and schedules."""

    # Layers whose healing loop runs, with the settings it was given.
    healing: dict[str, HealingConfig] = Field(default_factory=dict)
    # Layers whose load-based scaling loop runs, with its settings.
    load_scaling: dict[str, LoadBasedScaling] = Field(default_factory=dict)
    # Instances that are time or load based (absent: always), and the schedules synced.
    scaling: dict[str, Scaling] = Field(default_factory=dict)
    schedules: dict[str, WeeklySchedule] = Field(default_factory=dict)
    # The last start (True) or stop (False) scaling sent to each instance.
    scaled: dict[str, bool] = Field(default_factory=dict)


# The state's parts, and the fields each took from the flat state of earlier versions.
_PARTS: dict[str, type[BaseModel]] = {
    "applied": AppliedState,
    "members": MembersState,
    "commands": CommandsState,
    "loops": LoopsState,
}


class StackState(BaseModel):
    """The stack workflow's whole state, one part per concern."""

    # Servers without opsflow's search attributes (the time-skipping test server) refuse
    # workflows that carry them; everywhere else runs are tagged for the UI's filters.
    tag_runs: bool = True
    max_history_events: int | None = Field(
        default=None, description="continue-as-new past this; None: when the server suggests"
    )
    deleting: bool = False
    events: list[StackEvent] = Field(default_factory=list)
    applied: AppliedState = Field(default_factory=AppliedState)
    members: MembersState = Field(default_factory=MembersState)
    commands: CommandsState = Field(default_factory=CommandsState)
    loops: LoopsState = Field(default_factory=LoopsState)

    @model_validator(mode="before")
    @classmethod
    def _lift_flat_state(cls, data: Any) -> Any:
        """A run continued as new by an earlier version hands over the flat state (every
        field at the top): each field goes to its part."""
        if not isinstance(data, dict):
            return data
        nested = dict(data)
        for part, model in _PARTS.items():
            flat = {key: nested.pop(key) for key in model.model_fields if key in nested}
            if flat:
                nested[part] = {**flat, **nested.get(part, {})}
        return nested

    def record(self, event: StackEvent) -> None:
        self.events.append(event)
        del self.events[:-MAX_EVENTS]

"""Each long-lived workflow keeps all it knows in one model, handed whole to continue-as-new."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from opsflow.messages import (
    AppRelease,
    DeploymentSummary,
    Ec2Resources,
    HealingConfig,
    InstanceCommand,
    InstanceCommandResult,
    InstanceView,
    RdsInfo,
    ResolvedCookbooks,
    StackEvent,
)
from opsflow.spec import (
    LoadBasedScaling,
    Provider,
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

    @property
    def provider(self) -> Provider:
        return self.view.provider


class StackState(BaseModel):
    # Servers without opsflow's search attributes (the time-skipping test server) refuse
    # workflows that carry them; everywhere else runs are tagged for the UI's filters.
    tag_runs: bool = True
    max_history_events: int | None = Field(
        default=None, description="continue-as-new past this; None: when the server suggests"
    )
    spec: StackSpec | None = None
    cookbooks: ResolvedCookbooks | None = None
    # rds entry name -> what AWS said of its instance at the last apply.
    rds: dict[str, RdsInfo] = Field(default_factory=dict)
    source_file: str | None = None
    instances: dict[str, InstanceView] = Field(default_factory=dict)
    configure_pending: bool = False
    configure_rounds: int = 0
    deployment_seq: int = 0
    deleting: bool = False
    events: list[StackEvent] = Field(default_factory=list)
    # Each app's release now current (what a new instance gets after its setup).
    apps: dict[str, AppRelease] = Field(default_factory=dict)
    deployments: list[DeploymentSummary] = Field(default_factory=list)
    # Releases of deployments still running: they become current when they succeed.
    pending_releases: dict[str, AppRelease] = Field(default_factory=dict)
    # Layers whose healing loop runs, with the settings it was given.
    healing: dict[str, HealingConfig] = Field(default_factory=dict)
    # Layers whose load-based scaling loop runs, with its settings.
    load_scaling: dict[str, LoadBasedScaling] = Field(default_factory=dict)
    # Instances that are time or load based (absent: always), and the schedules synced.
    scaling: dict[str, Scaling] = Field(default_factory=dict)
    schedules: dict[str, WeeklySchedule] = Field(default_factory=dict)
    # The last start (True) or stop (False) scaling sent to each instance.
    scaled: dict[str, bool] = Field(default_factory=dict)
    # Registered hosts (from the file or `instance register`), their host keys pinned.
    registered: dict[str, RegisteredHostSpec] = Field(default_factory=dict)

    def remember_deployment(self, summary: DeploymentSummary) -> None:
        """Add or update one deployment in the bounded history."""
        self.deployments = [d for d in self.deployments if d.id != summary.id] + [summary]
        del self.deployments[:-MAX_DEPLOYMENTS]

    def record(self, event: StackEvent) -> None:
        self.events.append(event)
        del self.events[:-MAX_EVENTS]

"""Deployments: commands across instances (deploy, rollback, run), their inputs, progress
and summaries."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from opsflow.messages.apps import AppAction, AppRelease
from opsflow.messages.stack import CUSTOM_JSON_HELP, ORIGIN_HELP, InstanceCommandResult
from opsflow.origin import ClientOrigin
from opsflow.rollout import Strategy
from opsflow.spec import (
    HealthCheckSpec,
)


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

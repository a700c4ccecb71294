"""Apps and what recipe runs read: app releases and their databases, RDS, health checks,
cookbook sources and configuration snapshots."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from opsflow.messages.machines import InstanceView, SshEndpoint
from opsflow.secrets import SecureValue
from opsflow.spec import (
    ConfigurationManager,
    CookbookSource,
    HealthCheckSpec,
    StackSpec,
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

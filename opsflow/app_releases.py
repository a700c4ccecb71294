"""An app's release as the stack hands it to a deployment or a new instance (pure): its
code, environment and database, as the stack file and the last apply's RDS lookup say."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from opsflow.errors import NotFound
from opsflow.messages import AppAction, AppDatabase, AppRelease, RdsInfo, ResolvedCookbooks
from opsflow.releases import release_name
from opsflow.spec import AppSpec, StackSpec


def app_of(spec: StackSpec, name: str) -> AppSpec:
    app = spec.app(name)
    if app is None:
        known = ", ".join(a.name for a in spec.apps) or "none"
        raise NotFound(f"stack {spec.name} has no app {name!r} (apps: {known})")
    return app


def database_for(spec: StackSpec, rds: Mapping[str, RdsInfo], app: AppSpec) -> AppDatabase | None:
    """The app's `deploy.{app}.database`: its data_source's RDS instance as AWS
    described it at the last apply, with the user and the (still encrypted) password."""
    if app.data_source is None:
        return None
    entry = spec.rds_entry(app.data_source)
    info = rds.get(app.data_source)
    if entry is None or info is None:
        return None
    return AppDatabase(
        engine=info.engine,
        host=info.address,
        port=info.port,
        database=entry.database_name or info.database_name,
        username=entry.username,
        password=entry.password,
    )


def current_releases(
    spec: StackSpec,
    apps: Mapping[str, AppRelease],
    rds: Mapping[str, RdsInfo],
    layers: Sequence[str],
) -> list[AppRelease]:
    """The current release of every app on any of `layers` (once each): a new instance
    gets them after setup."""
    return [
        # With the database as the stack registers it now (it may have changed since).
        release.model_copy(update={"database": database_for(spec, rds, app)})
        for name, release in sorted(apps.items())
        if (app := spec.app(name)) is not None and set(layers) & set(app.layers)
    ]


def deploy_release(
    spec: StackSpec,
    rds: Mapping[str, RdsInfo],
    app: AppSpec,
    number: int,
    revision: str | None,
    code: ResolvedCookbooks | None,
) -> AppRelease:
    """Deployment `number` of `app`: named after the revision (or the code's digest)."""
    return AppRelease(
        app=app.name,
        action=AppAction.DEPLOY,
        release=release_name(number, revision or (code.digest[:12] if code else None)),
        revision=revision,
        source_dir=code.directory if code else None,
        source_digest=code.digest if code else None,
        source_blob=code.blob if code else None,
        deploy_to=app.deploy_to,
        environment=app.environment,
        database=database_for(spec, rds, app),
    )


def command_release(
    spec: StackSpec,
    rds: Mapping[str, RdsInfo],
    app: AppSpec,
    action: AppAction,
    release: str | None,
) -> AppRelease:
    """An app command other than deploy (rollback, undeploy, start, stop, restart)."""
    return AppRelease(
        app=app.name,
        action=action,
        release=release,
        deploy_to=app.deploy_to,
        environment=app.environment,
        database=database_for(spec, rds, app),
    )

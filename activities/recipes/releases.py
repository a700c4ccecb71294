"""App releases on an instance, OpsWorks style: the checked app a run deploys, rolls back,
starts, stops or undeploys, its `deploy.{app}` attributes, and the values of its release step
in the run script (scripts/app.sh; see the package docstring for the layout under
deploy_to)."""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from activities.recipes.layout import Layout
from activities.recipes.payload import DIGEST
from activities.remote_script import Value
from opsflow import settings
from opsflow.messages import AppAction, AppRelease, RecipeRunInput
from opsflow.releases import KEEP_RELEASES
from opsflow.secrets import SecureValue, decrypt
from workflows.failures import invalid

APP_NAME = re.compile(r"^[a-z][a-z0-9-]{0,38}$")
# Release names (opsflow.releases.release_name) are directory names, sorted by name.
RELEASE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class App:
    """A checked AppRelease: every value that reaches the run script is safe or quoted."""

    name: str
    action: AppAction
    release: str  # deploy: the new release; else "" (found on the instance)
    revision: str | None
    source_dir: str | None
    source_digest: str | None
    deploy_to: str
    environment: dict[str, str]
    secrets: list[str]  # the decrypted secure values: redacted from everything reported
    database: dict[str, Any] | None = None  # deploy.{app}.database, password in plaintext
    source_blob: str | None = None  # the code in the artifact store (activities/recipes/trees.py)

    @property
    def releases(self) -> str:
        return posixpath.join(self.deploy_to, "releases")

    @property
    def current(self) -> str:
        return posixpath.join(self.deploy_to, "current")


def check_app(request: RecipeRunInput) -> App | None:
    app: AppRelease | None = request.app
    if app is None:
        return None
    if not APP_NAME.fullmatch(app.app):
        raise invalid(f"invalid app name {app.app!r}: expected [a-z][a-z0-9-]{{0,38}}")
    if request.stage_only:
        raise invalid(f"app {app.app}: a stage-only run cannot {app.action.value} an app")
    release = ""
    if app.action == AppAction.DEPLOY:
        if app.release is None or not RELEASE.fullmatch(app.release):
            raise invalid(
                f"app {app.app}: invalid release name {app.release!r} "
                "(see opsflow.releases.release_name)"
            )
        release = app.release
        # With a blob, source_dir is where the fetching worker had it: not looked at here.
        local = None if app.source_blob is not None else app.source_dir
        if local is not None and not Path(local).is_dir():
            raise invalid(f"app {app.app}: {app.source_dir} does not exist on this worker")
    elif app.action == AppAction.ROLLBACK and app.release is not None:
        # rollback --to RELEASE: that release, if the instance still has it.
        if not RELEASE.fullmatch(app.release):
            raise invalid(f"app {app.app}: invalid release name {app.release!r}")
        release = app.release
    if app.source_digest is not None and not DIGEST.fullmatch(app.source_digest):
        raise invalid(f"app {app.app}: invalid source digest {app.source_digest!r}")
    deploy_to = app.deploy_to or posixpath.join(request.root, "srv/www", app.app)
    if (
        not posixpath.isabs(deploy_to)
        or posixpath.normpath(deploy_to) != deploy_to
        or deploy_to == "/"
        or any(ord(c) < 32 or c == "\x7f" for c in deploy_to)
    ):
        raise invalid(f"app {app.app}: deploy_to must be a plain absolute path: {deploy_to!r}")
    bad = [name for name in app.environment if not ENV_NAME.fullmatch(name)]
    if bad:
        raise invalid(f"app {app.app}: invalid environment variable name(s) {sorted(bad)}")
    environment, secrets = _reveal(app)
    if any("\0" in value for value in environment.values()):
        raise invalid(f"app {app.app}: an environment value holds a NUL byte")
    database = None
    if app.database is not None:
        # Decrypted here too, on the worker; it only goes into the attributes (0600).
        password = decrypt(settings.secret_key(), app.database.password)
        database = {**app.database.model_dump(mode="json"), "password": password}
        secrets = [*secrets, password]
    return App(
        name=app.app,
        action=app.action,
        release=release,
        revision=app.revision,
        source_dir=app.source_dir if app.action == AppAction.DEPLOY else None,
        source_digest=app.source_digest,
        deploy_to=deploy_to,
        environment=environment,
        secrets=secrets,
        database=database,
        source_blob=app.source_blob if app.action == AppAction.DEPLOY else None,
    )


def _reveal(app: AppRelease) -> tuple[dict[str, str], list[str]]:
    """The app's environment in plaintext, and which values were secure. Decrypted here, on
    the worker, so workflow history only ever holds their ciphertext."""
    plain: dict[str, str] = {}
    secure: list[str] = []
    for name, value in app.environment.items():
        if isinstance(value, SecureValue):
            plain[name] = decrypt(settings.secret_key(), value)
            secure.append(plain[name])
        else:
            plain[name] = value
    return plain, secure


def _tokens(nonce: str) -> tuple[str, str, str]:
    """Placeholders in the attributes for what only the instance knows (the release, the
    previous one, the release path); unguessable, so no custom JSON value can clash."""
    return f"opsflow-{nonce}-release", f"opsflow-{nonce}-previous", f"opsflow-{nonce}-path"


def deploy_attributes(app: App, nonce: str) -> dict[str, Any]:
    """The `deploy.{app}` entry of the attributes (OpsWorks' `node[:deploy][app]`); the
    run script fills in the release, the previous one and the release path."""
    release, previous, path = _tokens(nonce)
    entry = {
        "application": app.name,
        "action": app.action.value,
        "revision": app.revision,
        "release": release,
        "release_path": path,
        "deploy_to": app.deploy_to,
        "current_path": app.current,
        "previous_release": previous,
        "environment": app.environment,
    }
    if app.database is not None:
        entry["database"] = app.database
    return {"deploy": {app.name: entry}}


def _sed_replacement(text: str) -> str:
    return text.replace("\\", "\\\\").replace("&", "\\&").replace("|", "\\|")


def script_values(
    app: App, request: RecipeRunInput, layout: Layout, nonce: str
) -> dict[str, Value]:
    """The values of the app's release step in the run script (scripts/app.sh)."""
    tok_release, tok_previous, tok_path = _tokens(nonce)
    return {
        "OPSFLOW_APP_NAME": app.name,
        "OPSFLOW_APP_HOST": request.hostname,
        "OPSFLOW_APP_DEPLOY_TO": app.deploy_to,
        "OPSFLOW_APP_RELEASES": app.releases,
        "OPSFLOW_APP_RELEASE": app.release,
        "OPSFLOW_APP_CODE": layout.app_code or "",
        "OPSFLOW_KEEP_RELEASES": KEEP_RELEASES,
        "OPSFLOW_TOKEN_RELEASE": tok_release,
        "OPSFLOW_TOKEN_PREVIOUS": tok_previous,
        "OPSFLOW_TOKEN_PATH": tok_path,
        "OPSFLOW_PATH_PREFIX": _sed_replacement(json.dumps(app.releases + "/")[1:-1]),
    }

"""App releases on an instance, OpsWorks style: the checked app a run deploys, rolls back,
starts, stops or undeploys, its `deploy.{app}` attributes, and its release step in the
run script (see the package docstring for the layout under deploy_to)."""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from activities.recipes.errors import invalid
from activities.recipes.layout import Layout
from activities.recipes.payload import DIGEST
from activities.ssh import quote
from opsflow import settings
from opsflow.messages import AppAction, AppRelease, RecipeRunInput
from opsflow.releases import KEEP_RELEASES
from opsflow.secrets import SecureValue, decrypt

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
    if not APP_NAME.match(app.app):
        raise invalid(f"invalid app name {app.app!r}: expected [a-z][a-z0-9-]{{0,38}}")
    if request.stage_only:
        raise invalid(f"app {app.app}: a stage-only run cannot {app.action.value} an app")
    release = ""
    if app.action == AppAction.DEPLOY:
        if app.release is None or not RELEASE.match(app.release):
            raise invalid(
                f"app {app.app}: invalid release name {app.release!r} "
                "(see opsflow.releases.release_name)"
            )
        release = app.release
        if app.source_dir is not None and not Path(app.source_dir).is_dir():
            raise invalid(f"app {app.app}: {app.source_dir} does not exist on this worker")
    elif app.action == AppAction.ROLLBACK and app.release is not None:
        # rollback --to RELEASE: that release, if the instance still has it.
        if not RELEASE.match(app.release):
            raise invalid(f"app {app.app}: invalid release name {app.release!r}")
        release = app.release
    if app.source_digest is not None and not DIGEST.match(app.source_digest):
        raise invalid(f"app {app.app}: invalid source digest {app.source_digest!r}")
    deploy_to = app.deploy_to or posixpath.join(request.root, "srv/www", app.app)
    if (
        not posixpath.isabs(deploy_to)
        or posixpath.normpath(deploy_to) != deploy_to
        or deploy_to == "/"
        or any(ord(c) < 32 or c == "\x7f" for c in deploy_to)
    ):
        raise invalid(f"app {app.app}: deploy_to must be a plain absolute path: {deploy_to!r}")
    bad = [name for name in app.environment if not ENV_NAME.match(name)]
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


def app_steps(layout: Layout, request: RecipeRunInput, app: App, nonce: str) -> tuple[str, str]:
    """The app's release step in the run script: what runs before the recipes (decide the
    release and the previous one, create or switch to the release, fill in the
    attributes, export OPSFLOW_APP...) and after them (deploy: switch `current`, prune;
    undeploy: remove `current` and the releases). `app_fail MESSAGE` ends the run with
    the message; `app_failed` (called by finish on any failure) removes a release this
    run created that is not current. The decision (release, previous) is written to the
    run directory first, so a run started afresh after a lost attempt reuses it (a
    rollback never goes back two releases)."""
    tok_release, tok_previous, tok_path = _tokens(nonce)
    path_prefix = _sed_replacement(json.dumps(app.releases + "/")[1:-1])
    code = layout.app_code or ""
    what = f"app {app.name}"
    head = f"""# ---- {what}: {app.action.value}
app_dir={quote(app.deploy_to)}
app_releases={quote(app.releases)}
APP_REL={quote(app.release)} APP_PREV= app_new= app_decision=
app_fail() {{
  printf '%s\\n' "$1" > app_error; : > recipe; say "$1"; finish 1
}}
app_current() {{
  t=$(readlink "$app_dir/current" 2>/dev/null) || return 0
  r=${{t##*/}}
  case $r in '' | .* | *[!A-Za-z0-9._-]*) return 0 ;; esac
  [ ! -d "$app_releases/$r" ] || printf '%s\\n' "$r"
}}
app_list() {{
  ls -1 "$app_releases" 2>/dev/null | grep -E '^[A-Za-z0-9][A-Za-z0-9._-]*$' | LC_ALL=C sort
}}
app_before() {{
  {{ app_list; printf '%s\\n' "$1"; }} | LC_ALL=C sort -u |
    awk -v c="$1" '($0 "") == (c "") {{ print p; exit }} {{ p = $0 }}'
}}
app_switch() {{
  ln -sfn "releases/$1" "$app_dir/.current.$$" && mv -T "$app_dir/.current.$$" "$app_dir/current"
}}
app_decide() {{ printf 'APP_REL=%s\\nAPP_PREV=%s\\n' "$APP_REL" "$APP_PREV" > app; }}
for f in ../{quote(request.run_id)}.lost-*/app; do [ -f "$f" ] && app_decision=$f; done
"""
    if app.action == AppAction.DEPLOY:
        decide = f"""if [ -n "$app_decision" ]; then
  . "$app_decision"; say "{what}: as decided by an earlier attempt: previous ${{APP_PREV:-none}}"
else
  APP_PREV=$(app_current)
  [ "$APP_PREV" != "$APP_REL" ] || APP_PREV=$(app_before "$APP_REL")
fi
app_decide
if [ "$(app_current)" = "$APP_REL" ]; then
  say "{what}: release $APP_REL is already current"
else
  new="$app_releases/.$APP_REL.new"
  mkdir -p "$app_releases" && rm -rf "$new" "$app_releases/$APP_REL" && mkdir "$new" ||
    app_fail "{what}: cannot create release $APP_REL in $app_releases"
  if [ -n {quote(code)} ]; then
    cp -a {quote(code)}/. "$new/" || app_fail "{what}: cannot copy its code into $new"
  fi
  mv -T "$new" "$app_releases/$APP_REL" || app_fail "{what}: cannot create release $APP_REL"
  app_new=$APP_REL
  say "{what}: release $APP_REL created (previous ${{APP_PREV:-none}})"
fi
app_failed() {{
  if [ -n "$app_new" ] && [ "$(app_current)" != "$app_new" ]; then
    rm -rf "${{app_releases:?}}/$app_new"
    say "{what}: release $app_new removed; current stays ${{APP_PREV:-unset}}"
    app_new=
  fi
}}
"""
        after = f"""app_switch "$APP_REL" ||
  app_fail "{what}: cannot switch $app_dir/current to $APP_REL"
app_new=
say "{what}: current -> releases/$APP_REL"
rels=$(app_list) i=0 cur=$(app_current)
set -- $rels; total=$#
for r in $rels; do
  i=$((i + 1)); [ $i -le $((total - {KEEP_RELEASES})) ] || break
  [ "$r" = "$cur" ] && continue
  rm -rf "${{app_releases:?}}/$r" &&
    say "{what}: release $r removed (the newest {KEEP_RELEASES} are kept)"
done
printf '%s\\n' "$APP_REL" > app_release; printf '%s\\n' "$APP_PREV" > app_previous
"""
    elif app.action == AppAction.ROLLBACK:
        decide = f"""if [ -n "$app_decision" ]; then
  . "$app_decision"; say "{what}: as decided by an earlier attempt: back to $APP_REL"
else
  APP_PREV=$(app_current)
  if [ -n "$APP_REL" ]; then
    [ -d "$app_releases/$APP_REL" ] ||
      app_fail "no release $APP_REL of {app.name} on {request.hostname} to roll back to"
  else
    [ -z "$APP_PREV" ] || APP_REL=$(app_before "$APP_PREV")
  fi
  [ -n "$APP_REL" ] ||
    app_fail {quote(f"no earlier release of {app.name} on {request.hostname} to roll back to")}
fi
app_decide
app_switch "$APP_REL" || app_fail "{what}: cannot switch $app_dir/current to $APP_REL"
say "{what}: rolled back: current -> releases/$APP_REL (was $APP_PREV)"
"""
        after = """printf '%s\\n' "$APP_REL" > app_release
printf '%s\\n' "$APP_PREV" > app_previous
"""
    elif app.action in (AppAction.START, AppAction.STOP, AppAction.RESTART):
        nothing = f"{app.name} is not deployed on {request.hostname}: nothing to {app.action}"
        decide = f"""APP_PREV=$(app_current) APP_REL=$(app_current)
[ -n "$APP_REL" ] || app_fail {quote(nothing)}
"""
        after = """printf '%s\\n' "$APP_REL" > app_release
printf '%s\\n' "$APP_PREV" > app_previous
"""
    else:
        decide = """APP_PREV=$(app_current) APP_REL=$(app_current)
"""
        after = f"""rm -f "$app_dir/current" && rm -rf "$app_releases" ||
  app_fail "{what}: cannot remove $app_dir/current and $app_releases"
rmdir "$app_dir" 2>/dev/null
say "{what}: undeployed (was ${{APP_PREV:-not deployed}})"
: > app_release; printf '%s\\n' "$APP_PREV" > app_previous
"""
    fill = f"""app_json() {{ if [ -n "$1" ]; then printf '"%s"' "$1"; else printf null; fi; }}
app_path() {{
  if [ -n "$1" ]; then printf '"%s%s"' {quote(path_prefix)} "$1"; else printf null; fi
}}
for f in attributes.json node.json; do
  [ -f "$f" ] || continue
  ( umask 077 && sed -e "s|\\"{tok_release}\\"|$(app_json "$APP_REL")|g" \\
      -e "s|\\"{tok_previous}\\"|$(app_json "$APP_PREV")|g" \\
      -e "s|\\"{tok_path}\\"|$(app_path "$APP_REL")|g" "$f" > "$f.tmp" ) &&
    mv "$f.tmp" "$f" || app_fail "{what}: cannot write $f"
done
export OPSFLOW_APP={quote(app.name)} OPSFLOW_DEPLOY_TO={quote(app.deploy_to)}
export OPSFLOW_RELEASE="$APP_REL" OPSFLOW_PREVIOUS_RELEASE="$APP_PREV" OPSFLOW_RELEASE_PATH=
[ -z "$APP_REL" ] || OPSFLOW_RELEASE_PATH="$app_releases/$APP_REL"
# ---- recipes
"""
    return head + decide + fill, after

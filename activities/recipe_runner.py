"""The recipe runner: `cookbook::recipe` run over SSH with shell, Puppet or Chef.

The configuration manager is the run context's (`RunContext.configuration_manager`); the
recipe files follow opsflow.recipes.recipe_file:

    shell   {cookbooks}/c/r.sh                run with `sh` (or its shebang when executable)
    puppet  {cookbooks}/m/manifests/r.pp      `puppet apply --detailed-exitcodes -e 'include
                                              m::r'` (0 and 2 succeed), the cookbooks dir
                                              is the modulepath
    chef    {cookbooks}/c/recipes/r.rb        `cinc-client`/`chef-client -z` (client.rb) or
                                              `chef-solo` (solo.rb), `-o 'recipe[c::r]'`,
                                              the cookbooks dir is the cookbook_path

One tool invocation per recipe, in order, in the instance root, stdin from /dev/null; the
first recipe that fails ends the run and is recorded as the failed one.

On the instance, under `{root}/var/lib/opsflow/`:

    cookbooks/{sha256}/   the worker's cookbooks directory, staged once per content hash
    nap.fifo              a FIFO nobody writes to: waits pause on it (see _nap)
    runs/{run_id}/        one run: run.sh, attributes.json, recipes, manager, owner, pid,
                          log, started, finished, recipe (the one running, or the one that
                          failed), exit, cancelled (marker); puppet: hiera.yaml; chef:
                          node.json, client.rb, solo.rb, chef-nodes/
    puppet/               Puppet's confdir, vardir, codedir, logdir, rundir, publicdir
    chef/                 Chef's cache, backups, repo paths and keys

Every instance (several local instances share a host) has its own Puppet and Chef state:
nothing is read from or written to /etc/puppet, /var/lib/puppet, /etc/chef or ~/.chef.

What a recipe sees, for every manager: the environment OPSFLOW_ATTRIBUTES (the stack
configuration JSON file), OPSFLOW_EVENT, OPSFLOW_INSTANCE, OPSFLOW_ROOT, OPSFLOW_RUN_ID,
OPSFLOW_STACK. Puppet also: facts opsflow_stack, opsflow_instance, opsflow_event,
opsflow_root, opsflow_attributes (FACTER_* variables), and Hiera (hiera.yaml in the run
directory, Hiera 5, one level: attributes.json with the json_data backend), so a manifest
reads `lookup('opsflow.layers')`, `lookup('opsflow.instance.hostname')`,
`lookup('shop.greeting')`. Beware: Hiera interpolates `%{...}` in those values. Chef: the
document is the node JSON (`node['opsflow']`, and `node['opsworks']` as an alias for
ported OpsWorks cookbooks: opsflow's keys with any custom `opsworks` keys on top);
node_path is per run, so no attribute survives from one run to the next.

Exactly once, even when the worker dies or the connection drops mid-run: the run is
claimed by an atomic `mkdir runs/{run_id}` and started detached (setsid nohup), so it
survives both; a retried activity (same run_id) finds the directory and re-attaches to
the run instead of starting it again. A run directory without `exit` whose process is
gone died before it could finish: it is renamed to `{run_id}.lost-N` and the run starts
afresh (recipes are expected to be idempotent). Each new claim removes finished run
directories beyond the newest KEEP_REMOTE_RUNS.

Cancellation: only a cancellation that was requested (the workflow cancelled the
activity) stops the run on the instance: its process group gets TERM, then KILL after
CANCEL_GRACE_SECONDS; `exit` says 130 and a `cancelled` marker is left; the log is saved
and the cancellation re-raised. A worker shutting down, a heartbeat timeout or a task
cancelled otherwise leaves the run going: the next attempt re-attaches to it.

SSH round trips: one command per run, normally. Its stdin is a tar of the run
files, never the command line (an argv string is limited to 128 KiB; attributes may be
larger); it is extracted aside under `tmp/`, then:
1. if the payload carries `cookbooks/` and `cookbooks/{sha256}` is missing, it is staged
   (renamed into place: all or nothing);
2. if the cookbooks are still missing it prints `staged=0` and stops, before claiming;
3. it claims the run directory, or finds an earlier attempt's (done, running: re-attach;
   lost: renamed aside, claimed afresh); only a fresh claim moves the run files in and
   starts run.sh; a re-attach writes nothing;
4. it waits for `exit` for up to 30 s and prints the outcome and the WHOLE log (the
   worker keeps it, see activities.run_logs; the tail is cut locally).
The cookbooks ride along when this worker has not seen them staged on the instance yet
and their payload is at most SPECULATIVE_STAGE_BYTES; otherwise a `staged=0` answer
costs one more command that carries them. A run still going after 30 s costs one more
command per 30 s chunk. So: staged and fresh, 1 command; first run of small cookbooks,
1; of big ones, 2; a retry, 1 (plus the chunks); no SFTP. `stage_only` (for
update_custom_cookbooks) is steps 1-2 alone: 1 command (2 for big unseen cookbooks).
The content hash is RunContext.cookbooks_digest when the stack knows it, else the worker
hashes the tree.

Apps (RecipeRunInput.app, an AppRelease), OpsWorks style, inside the same run (one
exec, exactly once; the release step is part of run.sh). On the instance:

    {root}/var/lib/opsflow/apps/{sha256}/   the app's code from the worker
                                            (AppRelease.source_dir), staged once per
                                            content hash like the cookbooks (`app/` in
                                            the payload; `app=0` asks for it)
    {deploy_to}/releases/{release}/         one release: a copy (cp -a) of the staged code
    {deploy_to}/current -> releases/{release}  relative symlink, switched atomically (ln
                                            -sfn to a temp name, mv -T)

deploy_to defaults to {root}/srv/www/{app}. Releases sort by name
(opsflow.releases.release_name).
- deploy: create releases/{release} (an empty one without source_dir), run the recipes,
  and only when every one succeeded switch `current` to it and remove the releases
  beyond the newest KEEP_RELEASES (never the current one). A failure (or cancellation)
  leaves `current` alone and removes the new release.
- rollback: switch `current` to the release before it by name, then run the recipes
  against it (a recipe failure leaves it switched); with no earlier release the run
  fails: "no earlier release of APP on HOST to roll back to".
- undeploy: run the recipes, then remove `current` and every release.
Recipes see OPSFLOW_APP, OPSFLOW_DEPLOY_TO, OPSFLOW_RELEASE, OPSFLOW_RELEASE_PATH,
OPSFLOW_PREVIOUS_RELEASE (empty when none) and the app's environment (exported, quoted;
opsflow's own names win a clash), and the attributes carry `deploy.{app}`: application,
action, revision, release, release_path, deploy_to, current_path, previous_release,
environment, and for an app with a data_source `database` (type, engine, host, port,
database, username, password: OpsWorks' `node[:deploy][app][:database]`). Release,
previous release and release path are only known on the instance: the worker writes
unguessable placeholders that run.sh fills in. The decision (release,
previous) is kept in the run directory (`app`), so a run started afresh after a lost
attempt reuses it: a rollback never goes back twice. The result says which release is now
current (`release`) and which was (`previous_release`); an app step that fails is a
RecipeFailed whose message is the step's own.

Secrets: the app's secure environment values and its database password are plaintext
on the instance, where recipes need them: in run.sh, attributes.json and node.json, all
mode 0600 (owner only) in the run directory (kept with the newest KEEP_REMOTE_RUNS runs).
Everything the runner returns or keeps (the saved log, the log tail, failure messages)
passes through opsflow.secrets.redact: each value shows as `******`. A value printed
across several lines is stamped line by line and may escape redaction.

What can go wrong: a recipe fails or does not exist, or its tool (puppet, chef) is not
on the instance (RecipeFailed, non-retryable, message naming stack/instance/recipe with
the tool's own error line, the log tail as first detail); a bad recipe name, run id,
digest, app name, release name, deploy_to or environment variable name (InvalidInput,
non-retryable); SSH trouble (see activities.ssh: retryable unless
the host key does not match); the run process vanished without an exit code (RunLost,
retryable: the next attempt starts it afresh).

The instance needs a POSIX sh with GNU coreutils/util-linux (setsid, mkfifo, mv -T,
mktemp, tar with gzip) and /proc: any mainstream Linux; plus puppet or chef for those.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import gzip
import hashlib
import io
import json
import logging
import os
import posixpath
import re
import stat
import tarfile
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from opentelemetry import trace
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import names, ssh
from activities.ssh import quote
from opsflow import settings
from opsflow.attributes import deep_merge
from opsflow.errors import INVALID_INPUT_TYPE, RECIPE_FAILED_TYPE
from opsflow.messages import AppAction, AppRelease, RecipeRunInput, RecipeRunResult, RunContext
from opsflow.names import RECIPE
from opsflow.recipes import recipe_file
from opsflow.releases import KEEP_RELEASES
from opsflow.secrets import SecureValue, decrypt
from opsflow.secrets import redact as _redact
from opsflow.spec import ConfigurationManager
from runtime import run_logs

RUN_LOST_TYPE = "RunLost"
RUN_SETUP_FAILED_TYPE = "RunSetupFailed"

STATE_DIR = "var/lib/opsflow"
TAIL_LINES = 40
HEARTBEAT_SECONDS = 2.0
# One remote command waits at most this long, then the next one takes over: bounds how
# long an abandoned activity's thread lingers.
WAIT_CHUNK_SECONDS = 30
POLL_SECONDS = 0.05
# Most recipe runs are short: the first half second is polled finely, for latency.
FAST_POLL_SECONDS = 0.01
FAST_POLLS = 50
COMMAND_TIMEOUT = 120.0
# Cookbooks this worker has not seen staged on an instance go with the first command when
# their payload is at most this big (else only after the instance says it lacks them).
SPECULATIVE_STAGE_BYTES = 1 << 20
# A cancelled run's processes get TERM, then KILL after this long.
CANCEL_GRACE_SECONDS = 5.0
CANCELLED_EXIT_CODE = 130
# Finished run directories kept on an instance (the worker keeps their logs too).
KEEP_REMOTE_RUNS = 30
RUN_ID = run_logs.RUN_ID
DIGEST = re.compile(r"^[0-9a-f]{16,128}$")
APP_NAME = re.compile(r"^[a-z][a-z0-9-]{0,38}$")
# Release names (opsflow.releases.release_name) are directory names, sorted by name.
RELEASE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PUPPET_FALLBACK = "/opt/puppetlabs/bin/puppet"
# A failed puppet/chef run prints many lines; these start the one worth a message.
_ERROR_LINE = re.compile(r"^(Error|ERROR|FATAL)\b")

# Each run in progress holds a thread waiting on its remote command: the default executor
# (cores + 4 threads) would make runs on many instances queue behind each other.
_SSH_THREADS = ThreadPoolExecutor(max_workers=200, thread_name_prefix="opsflow-ssh")

_tracer = trace.get_tracer("opsflow")
_log = logging.getLogger("opsflow.runner")

# (host, port, root, cookbooks digest) this worker process has seen staged: a hint only,
# the remote command checks for itself.
_staged: set[tuple[str, int, str, str]] = set()

ContextSource = Callable[[RecipeRunInput], Awaitable[RunContext]]

# Whether a pid runs; a zombie nobody reaped yet counts as dead.
# Shell builtins only (no fork): it runs in every wait loop on every instance.
_ALIVE = (
    'alive() { kill -0 "$1" 2>/dev/null || return 1; '
    's=; read -r s 2>/dev/null < "/proc/$1/stat"; s=${s##*) }; '
    '[ "${s%% *}" != Z ]; }'
)
# `readf NAME FILE`: NAME= the file's first line, or empty (a builtin, unlike $(cat FILE)).
_READF = 'readf() { eval "$1="; [ -f "$2" ] && IFS= read -r "$1" < "$2"; return 0; }'
_HELPERS = f"{_READF}\n{_ALIVE}"
# Whether any live (not zombie) process is in process group $1: fields 3 and 5 of
# /proc/*/stat, after the command name (which may hold spaces and parentheses).
_GROUP_ALIVE = (
    'group_alive() { [ -n "$1" ] && cat /proc/[0-9]*/stat 2>/dev/null | '
    "sed -n 's/^.*) [^Z] [0-9]* \\([0-9]*\\) .*$/\\1/p' | grep -qx \"$1\"; }"
)


class RecipeActivities:
    """The run_recipes activity; `context_source` supplies the stack's freshest context
    (in production a query of the stack workflow)."""

    def __init__(self, context_source: ContextSource) -> None:
        self._context_source = context_source

    @activity.defn(name=names.RUN_RECIPES)
    async def run_recipes(self, request: RecipeRunInput) -> RecipeRunResult:
        started = time.monotonic()
        _check_run_id(request.run_id)
        app = _check_app(request)
        context = await self._context_source(request)
        if request.stage_only:
            recipes: list[str] = []
        else:
            recipes = request.recipes if request.recipes is not None else context.recipes
        _check_context(context, recipes)
        if not recipes and not request.stage_only and app is None:
            return RecipeRunResult(run_id=request.run_id, exit_code=0, log_tail="")
        # One span for the remote run, under the activity's span from TracingInterceptor;
        # it carries names and numbers only, never the attributes (they may hold secrets).
        with _tracer.start_as_current_span(
            "ssh recipes",
            attributes={
                "opsflow.stack": request.stack,
                "opsflow.instance": request.hostname,
                "opsflow.event": request.event,
                "opsflow.recipes": recipes,
                "opsflow.run_id": request.run_id,
                "opsflow.configuration_manager": context.configuration_manager.value,
                "opsflow.stage_only": request.stage_only,
                "opsflow.app": app.name if app else "",
                "opsflow.app_action": app.action.value if app else "",
                "server.address": request.ssh.host,
                "server.port": request.ssh.port,
            },
        ) as span:
            run = _Run(request, context, recipes, app)
            secrets = app.secrets if app else []
            try:
                outcome = await (run.stage() if request.stage_only else run.run())
            except asyncio.CancelledError:
                if run.launched and _cancel_requested():
                    span.set_attribute("opsflow.cancelled", True)
                    stopped = await run.stop()
                    if stopped is not None:
                        stopped = stopped.redacted(secrets)
                        await _save_log(request, context, recipes, stopped)
                raise
            except ApplicationError as err:
                raise _redacted_error(err, secrets) from None
            outcome = outcome.redacted(secrets)
            span.set_attribute("opsflow.exit_code", outcome.exit_code)
            span.set_attribute("opsflow.attached", outcome.attached)
        await _save_log(request, context, recipes, outcome)
        if outcome.exit_code != 0:
            raise _recipe_failed(request, outcome)
        return RecipeRunResult(
            run_id=request.run_id,
            recipes=outcome.recipes,
            exit_code=0,
            log_tail=outcome.log_tail,
            attached=outcome.attached,
            seconds=round(time.monotonic() - started, 3),
            release=outcome.release or None,
            previous_release=outcome.previous_release or None,
        )


def _cancel_requested() -> bool:
    """Whether the workflow asked for this cancellation: not a worker shutting down (a
    restarted worker re-attaches), not a timeout, pause or reset."""
    if not activity.in_activity() or activity.is_worker_shutdown():
        return False
    details = activity.cancellation_details()
    return details is not None and details.cancel_requested and not details.worker_shutdown


# ---- checks -----------------------------------------------------------------------------


def _invalid(message: str) -> ApplicationError:
    return ApplicationError(message, type=INVALID_INPUT_TYPE, non_retryable=True)


def _check_run_id(run_id: str) -> None:
    if not RUN_ID.match(run_id):
        raise _invalid(f"invalid run id {run_id!r}")


@dataclass(frozen=True)
class _App:
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


def _check_app(request: RecipeRunInput) -> _App | None:
    app: AppRelease | None = request.app
    if app is None:
        return None
    if not APP_NAME.match(app.app):
        raise _invalid(f"invalid app name {app.app!r}: expected [a-z][a-z0-9-]{{0,38}}")
    if request.stage_only:
        raise _invalid(f"app {app.app}: a stage-only run cannot {app.action.value} an app")
    release = ""
    if app.action == AppAction.DEPLOY:
        if app.release is None or not RELEASE.match(app.release):
            raise _invalid(
                f"app {app.app}: invalid release name {app.release!r} "
                "(see opsflow.releases.release_name)"
            )
        release = app.release
        if app.source_dir is not None and not Path(app.source_dir).is_dir():
            raise _invalid(f"app {app.app}: {app.source_dir} does not exist on this worker")
    elif app.action == AppAction.ROLLBACK and app.release is not None:
        # rollback --to RELEASE: that release, if the instance still has it.
        if not RELEASE.match(app.release):
            raise _invalid(f"app {app.app}: invalid release name {app.release!r}")
        release = app.release
    if app.source_digest is not None and not DIGEST.match(app.source_digest):
        raise _invalid(f"app {app.app}: invalid source digest {app.source_digest!r}")
    deploy_to = app.deploy_to or posixpath.join(request.root, "srv/www", app.app)
    if (
        not posixpath.isabs(deploy_to)
        or posixpath.normpath(deploy_to) != deploy_to
        or deploy_to == "/"
        or any(ord(c) < 32 or c == "\x7f" for c in deploy_to)
    ):
        raise _invalid(f"app {app.app}: deploy_to must be a plain absolute path: {deploy_to!r}")
    bad = [name for name in app.environment if not ENV_NAME.match(name)]
    if bad:
        raise _invalid(f"app {app.app}: invalid environment variable name(s) {sorted(bad)}")
    environment, secrets = _reveal(app)
    if any("\0" in value for value in environment.values()):
        raise _invalid(f"app {app.app}: an environment value holds a NUL byte")
    database = None
    if app.database is not None:
        # Decrypted here too, on the worker; it only goes into the attributes (0600).
        password = decrypt(settings.secret_key(), app.database.password)
        database = {**app.database.model_dump(mode="json"), "password": password}
        secrets = [*secrets, password]
    return _App(
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


def _redacted_error(err: ApplicationError, secrets: list[str]) -> ApplicationError:
    if not any(secrets):
        return err
    details = [_redact(d, secrets) if isinstance(d, str) else d for d in err.details]
    return ApplicationError(
        _redact(err.message, secrets),
        *details,
        type=err.type,
        non_retryable=err.non_retryable,
    )


def _check_context(context: RunContext, recipes: list[str]) -> None:
    if context.configuration_manager not in _STEPS:
        raise _invalid(f"cannot run {context.configuration_manager!s} recipes")
    # Names reach paths, class names, run lists and the run script: only cookbook::recipe
    # of safe characters, for every manager.
    bad = [recipe for recipe in recipes if not RECIPE.match(recipe)]
    if bad:
        raise _invalid(f"invalid recipe name(s) {bad}: expected cookbook::recipe")
    digest = context.cookbooks_digest
    if digest is not None and not DIGEST.match(digest):
        raise _invalid(f"invalid cookbooks digest {digest!r}: expected lowercase hex")


# ---- cookbooks --------------------------------------------------------------------------


def _tree(directory: str | None) -> list[Path]:
    if directory is None:
        return []
    top = Path(directory)
    if not top.is_dir():
        raise _invalid(f"cookbooks directory {directory} does not exist on this worker")
    return sorted(top.rglob("*"))


def cookbooks_digest(directory: str | None) -> str:
    """sha256 of the tree: relative paths, modes, file contents and link targets."""
    digest = hashlib.sha256()
    for path in _tree(directory):
        info = path.lstat()
        relative = path.relative_to(directory or "").as_posix()
        digest.update(f"{relative}\0{info.st_mode:o}\0".encode())
        if stat.S_ISLNK(info.st_mode):
            digest.update(os.readlink(path).encode())
        elif stat.S_ISREG(info.st_mode):
            digest.update(f"{info.st_size}\0".encode())
            digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


# Run files that may hold secrets (the app's environment): readable by their owner only.
_PRIVATE_FILES = frozenset({"run.sh", "attributes.json", "node.json"})


def _payload(
    files: dict[str, bytes], cookbooks: str | None, *, stage: bool, app: str | None = None
) -> bytes:
    """A command's stdin: a tar of the run files under `run/`, plus `cookbooks/` when
    staging, plus `app/` (the tree `app`) when staging an app's code; gzipped only when
    it carries trees (a few KB of run files are not worth a gzip process each run)."""
    buffer = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"run/{name}")
            info.size, info.mtime = len(data), now
            info.mode = 0o600 if name in _PRIVATE_FILES else 0o644
            tar.addfile(info, io.BytesIO(data))
        if stage:
            _add_cookbooks(tar, cookbooks)
        if app is not None:
            tar.add(app, arcname="app")
    # Without the padding to a whole 10 KiB record, which tar does not need.
    data = buffer.getvalue()[: tar.offset]
    return gzip.compress(data, compresslevel=6) if _compressed(stage=stage, app=app) else data


def _compressed(*, stage: bool, app: str | None) -> bool:
    return stage or app is not None


def _add_cookbooks(tar: tarfile.TarFile, directory: str | None) -> None:
    """The cookbooks tree as `cookbooks/` (an empty directory when there is none)."""
    if directory is not None:
        tar.add(directory, arcname="cookbooks")
        return
    info = tarfile.TarInfo("cookbooks")
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, time.time()
    tar.addfile(info)


# ---- one run ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """Paths of one run on the instance."""

    root: str
    run_id: str
    digest: str
    app_digest: str | None = None  # the app code this run needs staged

    @property
    def state(self) -> str:
        return posixpath.join(self.root, STATE_DIR)

    @property
    def app_code(self) -> str | None:
        if self.app_digest is None:
            return None
        return posixpath.join(self.state, "apps", self.app_digest)

    @property
    def cookbooks(self) -> str:
        return posixpath.join(self.state, "cookbooks", self.digest)

    @property
    def runs(self) -> str:
        return posixpath.join(self.state, "runs")

    @property
    def run(self) -> str:
        return posixpath.join(self.runs, self.run_id)

    @property
    def tmp(self) -> str:
        return posixpath.join(self.state, "tmp")

    def in_run(self, name: str) -> str:
        return posixpath.join(self.run, name)

    def tool_state(self, tool: str, name: str) -> str:
        """A private directory of puppet's or chef's, shared by this instance's runs only."""
        return posixpath.join(self.state, tool, name)


@dataclass(frozen=True)
class _Outcome:
    exit_code: int
    recipe: str
    recipes: list[str]
    log: str
    attached: bool
    manager: str = ""
    started: str = ""
    finished: str = ""
    cancelled: bool = False
    release: str = ""
    previous_release: str = ""
    app_error: str = ""

    @property
    def log_tail(self) -> str:
        return "\n".join(self.log.rstrip("\n").splitlines()[-TAIL_LINES:])

    def redacted(self, secrets: list[str]) -> _Outcome:
        if not any(secrets):
            return self
        return dataclasses.replace(
            self, log=_redact(self.log, secrets), app_error=_redact(self.app_error, secrets)
        )


class _Run:
    """Claims, starts or re-attaches to, waits for and (on request) stops one run."""

    def __init__(
        self,
        request: RecipeRunInput,
        context: RunContext,
        recipes: list[str],
        app: _App | None = None,
    ) -> None:
        self.request = request
        self.context = context
        self.recipes = recipes
        self.app = app
        self.manager = context.configuration_manager
        self.endpoint = request.ssh
        # Marks the attempt that claimed the run directory: only it may start the run.
        self.nonce = uuid.uuid4().hex
        self.layout: _Layout | None = None
        # Whether a command that may start the run was sent (cancelling then stops it).
        self.launched = False

    async def _layout(self) -> _Layout:
        _mark_used(self.context.cookbooks_dir)
        digest = self.context.cookbooks_digest
        if digest is None:
            digest = await asyncio.to_thread(cookbooks_digest, self.context.cookbooks_dir)
        app_digest = None
        if self.app is not None and self.app.source_dir is not None:
            app_digest = self.app.source_digest
            if app_digest is None:
                app_digest = await asyncio.to_thread(cookbooks_digest, self.app.source_dir)
        self.layout = _Layout(self.request.root, self.request.run_id, digest, app_digest)
        return self.layout

    async def _send(self, layout: _Layout, script: str, files: dict[str, bytes]) -> str:
        """Send `script` with `files`, staging the cookbooks (and the app's code) first if
        needed. They go with it unless this worker saw them staged there already (or they
        are big); if the instance lacks them all the same, it says so before doing
        anything else, and a second command carries what it lacks."""
        where = (self.endpoint.host, self.endpoint.port, layout.root)
        cookbooks_key = (*where, layout.digest)
        app_key = (*where, f"app:{layout.app_digest}")
        first_app = layout.app_digest is not None and app_key not in _staged
        output = await _heartbeating(
            self._start,
            script,
            files,
            stage=cookbooks_key not in _staged,
            app=first_app,
            speculative=True,
        )
        fields = _fields(_head(output))
        if fields.get("staged") == "0":
            output = await _heartbeating(
                self._start,
                script,
                files,
                stage=fields.get("cookbooks") == "0",
                app=fields.get("app") == "0",
                speculative=False,
            )
            fields = _fields(_head(output))
        if fields.get("staged") == "1":
            _staged.add(cookbooks_key)
            if layout.app_digest is not None:
                _staged.add(app_key)
        return output

    async def run(self) -> _Outcome:
        layout = await self._layout()
        # One command stages (if it carries the cookbooks), claims, writes the run files,
        # launches and waits.
        self.launched = True
        script = _stage_script(layout) + _claim_script(layout, self.nonce) + _wait_body(layout)
        output = await self._send(layout, script, self._run_files(layout))
        fields = _fields(_head(output))
        claim = fields.get("claim")
        if fields.get("staged") != "1" or claim not in ("new", "running", "done"):
            raise ApplicationError(
                f"{self._where()}: run {self.request.run_id} could not be started "
                f"(staged={fields.get('staged')}, claim={claim}); another attempt may be "
                "claiming it",
                type=RUN_SETUP_FAILED_TYPE,
            )
        return await self._wait(layout, output, attached=claim != "new")

    async def stage(self) -> _Outcome:
        """Stage the cookbooks only (update_custom_cookbooks): no run directory, no run."""
        started = _utc_now()
        layout = await self._layout()
        output = await self._send(layout, _stage_script(layout) + 'rm -rf "$in"\n', {})
        fields = _fields(_head(output))
        if fields.get("staged") != "1":
            raise ApplicationError(
                f"{self._where()}: cookbooks {layout.digest} could not be staged",
                type=RUN_SETUP_FAILED_TYPE,
            )
        how = "staged" if fields.get("new") == "1" else "already staged"
        line = f"{started} opsflow: cookbooks {layout.digest} {how} at {layout.cookbooks}\n"
        return _Outcome(
            exit_code=0,
            recipe="",
            recipes=[],
            log=line,
            attached=False,
            manager=self.manager.value,
            started=started,
            finished=_utc_now(),
        )

    async def stop(self) -> _Outcome | None:
        """Stop the run on the instance (TERM, then KILL its process group); its outcome,
        or None when the instance could not be told."""
        if self.layout is None:
            return None
        try:
            output = await _heartbeating(self._exec, _stop_script(self.layout))
        except asyncio.CancelledError:
            return None  # cancelled again while stopping: give up waiting
        except ApplicationError as err:
            _log.warning("%s: could not stop run %s: %s", self._where(), self.request.run_id, err)
            return None
        return _outcome(output, attached=False)

    async def _wait(self, layout: _Layout, output: str, *, attached: bool) -> _Outcome:
        while True:
            state = _fields(_head(output)).get("state")
            if state == "done":
                return _outcome(output, attached=attached)
            if state == "died":
                raise ApplicationError(
                    f"{self._where()}: run {self.request.run_id} vanished without an exit "
                    "code; the next attempt starts it afresh",
                    type=RUN_LOST_TYPE,
                )
            # Still running after one wait chunk: the next command takes over.
            output = await _heartbeating(self._exec, _wait_script(layout))

    def _run_files(self, layout: _Layout) -> dict[str, bytes]:
        configuration = self.context.configuration
        if self.app is not None:
            configuration = deep_merge(configuration, _deploy_attributes(self.app, self.nonce))
        files = {
            "attributes.json": _json(configuration),
            "recipes": (" ".join(self.recipes) + "\n").encode(),
            "manager": f"{self.manager.value}\n".encode(),
            "run.sh": _run_script(
                layout, self.request, self.recipes, self.manager, self.app, self.nonce
            ).encode(),
        }
        if self.manager == ConfigurationManager.PUPPET:
            files["hiera.yaml"] = _hiera_config(layout).encode()
        if self.manager == ConfigurationManager.CHEF:
            files["node.json"] = _json(chef_node(configuration))
            files["client.rb"] = _chef_config(layout, self.request, local_mode=True).encode()
            files["solo.rb"] = _chef_config(layout, self.request, local_mode=False).encode()
        return files

    def _start(
        self, script: str, files: dict[str, bytes], *, stage: bool, app: bool, speculative: bool
    ) -> str:
        """One command carrying `files` (and the cookbooks with `stage`, the app's code
        with `app`) on its stdin. `speculative`: they may not be needed, leave them out if
        big."""
        app_dir = self.app.source_dir if self.app is not None and app else None
        payload = _payload(files, self.context.cookbooks_dir, stage=stage, app=app_dir)
        if (stage or app_dir) and speculative and len(payload) > SPECULATIVE_STAGE_BYTES:
            stage, app_dir = False, None
            payload = _payload(files, None, stage=False)
        gzipped = "z" if _compressed(stage=stage, app=app_dir) else ""
        return self._exec(f"z={gzipped}\n{script}", payload)

    def _exec(self, command: str, stdin: bytes | None = None) -> str:
        code, out, err = ssh.run(
            self.endpoint,
            ssh.privileged(self.endpoint, command),
            timeout=WAIT_CHUNK_SECONDS + COMMAND_TIMEOUT,
            stdin=stdin,
        )
        if code != 0:
            raise ApplicationError(
                f"{self._where()}: a remote step of run {self.request.run_id} failed "
                f"({code}): {err.strip() or out.strip()}",
                type=RUN_SETUP_FAILED_TYPE,
            )
        return out

    def _where(self) -> str:
        return f"{self.request.stack}/{self.request.hostname}"


def _json(document: Any) -> bytes:
    return json.dumps(document, indent=2, sort_keys=True).encode()


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _outcome(output: str, *, attached: bool) -> _Outcome:
    """What a remote script printed about a finished run: fields, `---`, the whole log."""
    head, _, log = output.partition("\n---\n")
    fields = _fields(head)
    return _Outcome(
        exit_code=int(fields.get("exit") or 1),
        recipe=fields.get("recipe", ""),
        recipes=fields.get("recipes", "").split(),
        log=log,
        attached=attached,
        manager=fields.get("manager", ""),
        started=fields.get("started", ""),
        finished=fields.get("finished", ""),
        cancelled=fields.get("cancelled") == "1",
        release=fields.get("release", ""),
        previous_release=fields.get("previous_release", ""),
        app_error=fields.get("app_error", ""),
    )


async def _save_log(
    request: RecipeRunInput, context: RunContext, recipes: list[str], outcome: _Outcome
) -> None:
    """Keep the run's whole log on the worker (activities.run_logs); never fails the run."""
    now = _utc_now()
    meta = {
        "stack": request.stack,
        "hostname": request.hostname,
        "run_id": request.run_id,
        "command_id": request.command_id,
        "event": request.event,
        "recipes": outcome.recipes or recipes,
        "configuration_manager": outcome.manager or context.configuration_manager.value,
        "exit_code": outcome.exit_code,
        "failed_recipe": (outcome.recipe or None) if outcome.exit_code != 0 else None,
        "started": outcome.started or now,
        "finished": outcome.finished or now,
        "attached": outcome.attached,
        "cancelled": outcome.cancelled,
        "stage_only": request.stage_only,
    }
    try:
        await asyncio.to_thread(run_logs.save_run_log, meta, outcome.log, keep=run_logs.KEEP_RUNS)
    except (OSError, ValueError) as err:
        _log.warning("could not save the log of run %s: %s", request.run_id, err)


def _mark_used(directory: str | None) -> None:
    """Fetched cookbooks in the worker's cache are pruned when unused for days: a run that
    uses them counts as a use (a user's own directory is left untouched)."""
    if directory is None:
        return
    path = Path(directory)
    if path.is_relative_to(settings.cookbooks_cache_dir()):
        with contextlib.suppress(OSError):
            os.utime(path)


def _recipe_failed(request: RecipeRunInput, outcome: _Outcome) -> ApplicationError:
    # The first line says what failed and why; the last lines of the log follow, so the
    # Temporal UI's failure message alone is enough to start on (the details hold more).
    said = [line for line in outcome.log_tail.splitlines() if line.partition(" ")[2].strip()]
    last = said[-FAILURE_LINES:]
    if outcome.app_error:  # the app's release step failed, not a recipe
        first = f"{request.stack}/{request.hostname}: {outcome.app_error}"
    else:
        first = (
            f"{request.stack}/{request.hostname}: recipe {outcome.recipe or '?'} failed with "
            f"exit code {outcome.exit_code}: {_failure_line(outcome)}"
        )
    return ApplicationError(
        first + "".join(f"\n| {line}" for line in last),
        outcome.log_tail,
        type=RECIPE_FAILED_TYPE,
        non_retryable=True,
    )


FAILURE_LINES = 5


def _failure_line(outcome: _Outcome) -> str:
    """The line that says why: among the failed recipe's lines, the tool's last error line
    (puppet `Error:`, chef `FATAL:`/`ERROR:`), else the last line. Timestamps dropped."""
    texts = [line.partition(" ")[2].strip() for line in outcome.log.splitlines()]
    marker = f"opsflow: running {outcome.recipe}"
    starts = [i for i, text in enumerate(texts) if text == marker]
    own = [text for text in texts[starts[-1] + 1 if starts else 0 :] if text]
    errors = [text for text in own if _ERROR_LINE.match(text)]
    return (errors or own or ["no output"])[-1]


def _head(output: str) -> str:
    """The `key=value` part of a remote script's output, before the log."""
    return output.partition("\n---\n")[0]


def _fields(output: str) -> dict[str, str]:
    """`key=value` lines printed by the remote scripts."""
    pairs = (line.split("=", 1) for line in output.splitlines() if "=" in line)
    return {key: value for key, value in pairs}


_P = ParamSpec("_P")
_T = TypeVar("_T")


async def _heartbeating(fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Run blocking `fn` in a thread, heartbeating meanwhile so Temporal notices a dead worker."""
    call = functools.partial(fn, *args, **kwargs)
    task = asyncio.get_running_loop().run_in_executor(_SSH_THREADS, call)
    while True:
        _heartbeat()
        try:
            done, _ = await asyncio.wait({task}, timeout=HEARTBEAT_SECONDS)
        except asyncio.CancelledError:
            # A thread cannot be stopped: it ends with its command (one wait chunk at most).
            task.add_done_callback(lambda finished: finished.exception())
            raise
        if done:
            return task.result()


def _heartbeat() -> None:
    if activity.in_activity():
        activity.heartbeat()


# ---- configuration managers -------------------------------------------------------------


def chef_node(configuration: dict[str, Any]) -> dict[str, Any]:
    """The node JSON: the attributes, plus `opsworks` as an alias of `opsflow` (with any
    `opsworks` keys of the custom JSON on top), for cookbooks ported from OpsWorks."""
    alias = deep_merge(configuration.get("opsflow") or {}, configuration.get("opsworks") or {})
    return {**configuration, "opsworks": alias}


def _ruby(value: str) -> str:
    """A single-quoted Ruby string: no interpolation, only \\\\ and \\' are escapes."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _chef_config(layout: _Layout, request: RecipeRunInput, *, local_mode: bool) -> str:
    """client.rb (`local_mode`) or solo.rb: everything under this instance's state dir."""
    state = functools.partial(layout.tool_state, "chef")
    settings = {
        "chef_repo_path": _ruby(state("repo")),
        "cookbook_path": f"[{_ruby(layout.cookbooks)}]",
        "cache_path": _ruby(state("cache")),
        "file_cache_path": _ruby(state("cache")),
        "file_backup_path": _ruby(state("backup")),
        # Per run: normal attributes saved with the node never outlive the run.
        "node_path": _ruby(layout.in_run("chef-nodes")),
        "client_key": _ruby(state("client.pem")),
        "validation_key": _ruby(state("validation.pem")),
        "node_name": _ruby(request.hostname),
        "log_location": "STDOUT",
        "chef_license": _ruby("accept-silent"),
    }
    lines = [f"# opsflow run {request.run_id} (generated)"]
    if local_mode:
        lines.append("local_mode true")
    lines += [f"{key} {value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def _hiera_config(layout: _Layout) -> str:
    """Hiera 5, one level: the run's attributes.json (JSON strings are YAML strings)."""
    return f"""---
version: 5
defaults:
  datadir: {json.dumps(layout.run)}
  data_hash: json_data
hierarchy:
  - name: "opsflow run attributes"
    path: "attributes.json"
"""


def _shell_steps(layout: _Layout) -> str:
    return """missing=
invoke() { if [ -x "$2" ]; then exec "$2"; else exec sh "$2"; fi; }"""


def _puppet_steps(layout: _Layout) -> str:
    state = functools.partial(layout.tool_state, "puppet")
    dirs = [("confdir", "conf"), ("vardir", "var"), ("codedir", "code"), ("logdir", "log")]
    dirs += [("rundir", "run"), ("publicdir", "public")]
    options = " ".join(f"--{option}={quote(state(name))}" for option, name in dirs)
    return f"""PUPPET=$(command -v puppet 2>/dev/null) || PUPPET=
[ -n "$PUPPET" ] || [ ! -x {PUPPET_FALLBACK} ] || PUPPET={PUPPET_FALLBACK}
missing=
[ -n "$PUPPET" ] || missing="no puppet on this instance (not on PATH=$PATH, nor {PUPPET_FALLBACK})"
# --detailed-exitcodes: 0 nothing changed, 2 changes made, anything else a failure.
invoke() {{
  "$PUPPET" apply --detailed-exitcodes --color=false --modulepath={quote(layout.cookbooks)} \\
    {options} \\
    --hiera_config={quote(layout.in_run("hiera.yaml"))} -e "$3"
  rc=$?
  case $rc in 0 | 2) return 0 ;; *) return $rc ;; esac
}}"""


def _chef_steps(layout: _Layout) -> str:
    client, solo = quote(layout.in_run("client.rb")), quote(layout.in_run("solo.rb"))
    node = quote(layout.in_run("node.json"))
    return f"""CHEF= CHEF_MODE=
for c in cinc-client chef-client; do
  if [ -z "$CHEF" ] && p=$(command -v "$c" 2>/dev/null); then CHEF=$p CHEF_MODE=client; fi
done
if [ -z "$CHEF" ] && p=$(command -v chef-solo 2>/dev/null); then CHEF=$p CHEF_MODE=solo; fi
missing=
[ -n "$CHEF" ] ||
  missing="no chef-client, cinc-client or chef-solo found on this instance (PATH=$PATH)"
# One invocation per recipe, so the failing one is known.
invoke() {{
  if [ "$CHEF_MODE" = client ]; then
    exec "$CHEF" -z --no-color -F doc -c {client} -j {node} -o "$3"
  fi
  exec "$CHEF" --no-color -F doc -c {solo} -j {node} -o "$3"
}}"""


# Per manager: the run script's tool setup (sets `missing` when the tool is absent and
# defines `invoke NAME FILE TARGET`), and a recipe's TARGET argument.
_STEPS: dict[ConfigurationManager, Callable[[_Layout], str]] = {
    ConfigurationManager.SHELL: _shell_steps,
    ConfigurationManager.PUPPET: _puppet_steps,
    ConfigurationManager.CHEF: _chef_steps,
}
_TARGET: dict[ConfigurationManager, Callable[[str], str]] = {
    ConfigurationManager.SHELL: lambda recipe: "",
    ConfigurationManager.PUPPET: lambda recipe: f"include {recipe}",
    ConfigurationManager.CHEF: lambda recipe: f"recipe[{recipe}]",
}


# ---- remote scripts (every interpolated value is quoted) --------------------------------


def _stage_script(layout: _Layout) -> str:
    """Read the payload (stdin) aside into $in; stage the cookbooks (and the app's code)
    if it has them and they are missing; say whether they are staged (stop there if
    not: `cookbooks=0`/`app=0` say which is missing)."""
    cookbooks = quote(layout.cookbooks)
    dirs = " ".join(
        quote(d) for d in (layout.runs, layout.tmp, posixpath.dirname(layout.cookbooks))
    )
    app = ""
    if layout.app_code is not None:
        code = quote(layout.app_code)
        app = f"""mkdir -p {quote(posixpath.dirname(layout.app_code))} || exit 90
if [ ! -d {code} ] && [ -d "$in/app" ]; then
  mv -T "$in/app" {code} 2>/dev/null && echo app_new=1
fi
[ -d {code} ] || {{ echo app=0; s=0; }}
"""
    return f"""{_HELPERS}
mkdir -p {dirs} || exit 90
in=$(mktemp -d {quote(layout.tmp)}/in.XXXXXX) || exit 90
tar -x${{z:-}}f - -C "$in" --no-same-owner || {{ rm -rf "$in"; exit 92; }}
if [ ! -d {cookbooks} ] && [ -d "$in/cookbooks" ]; then
  mv -T "$in/cookbooks" {cookbooks} 2>/dev/null && echo new=1
fi
s=1
[ -d {cookbooks} ] || {{ echo cookbooks=0; s=0; }}
{app}if [ $s = 0 ]; then rm -rf "$in"; echo staged=0; exit 0; fi
echo staged=1
"""


def _claim_script(layout: _Layout, nonce: str) -> str:
    """Claim the run directory or say what state an earlier attempt left it in; if
    claimed, move the run files in, start run.sh detached and prune old runs. The wait
    (`_wait_body`) follows in the same command."""
    run, owner = quote(layout.run), quote(layout.in_run("owner"))
    exit_file, pid = quote(layout.in_run("exit")), quote(layout.in_run("pid"))
    return f"""claim() {{ mkdir {run} 2>/dev/null && printf '%s\\n' {quote(nonce)} > {owner}; }}
if claim; then c=new
elif [ -e {exit_file} ]; then c=done
elif readf p {pid} && alive "$p"; then c=running
elif [ -e {exit_file} ]; then c=done
else
  n=1; while [ -e {run}.lost-$n ]; do n=$((n + 1)); done
  mv -T {run} {run}.lost-$n && echo lost=$n
  if claim; then c=new; else c=busy; fi
fi
echo claim=$c
if [ $c = new ]; then
  mv "$in"/run/* {run}/ || {{ rm -rf "$in"; exit 92; }}
  # Finished (or lost) runs beyond the newest {KEEP_REMOTE_RUNS} go; run ids have no spaces.
  set -- {quote(layout.runs)}/*
  [ $# -le {KEEP_REMOTE_RUNS} ] ||
  ( cd {quote(layout.runs)} && ls -1t | tail -n +{KEEP_REMOTE_RUNS + 1} | while read -r d; do
      case $d in *.lost-*) ;; *) [ -e "$d/exit" ] || continue ;; esac
      rm -rf -- "$d"
    done ) 2>/dev/null
fi
rm -rf "$in"
[ $c != busy ] || exit 0
cd {run} || exit 91
if [ $c = new ] && [ ! -e pid ]; then
  : >> log
  ( setsid nohup sh ./run.sh </dev/null >/dev/null 2>&1 & echo $! > pid.tmp ) && mv pid.tmp pid
fi
"""


def _wait_script(layout: _Layout) -> str:
    """Wait on a run already started (the start command's wait chunk ran out)."""
    return f"""{_HELPERS}
cd {quote(layout.run)} || exit 91
{_wait_body(layout)}"""


def _report() -> str:
    """In the run directory, once `exit` exists: the outcome, `---`, the whole log."""
    return """echo state=done
for f in exit recipe recipes manager started finished; do readf v $f; echo "$f=$v"; done
if [ -e cancelled ]; then echo cancelled=1; fi
if [ -e app_release ]; then readf v app_release; echo "release=$v"; fi
if [ -e app_previous ]; then readf v app_previous; echo "previous_release=$v"; fi
if [ -e app_error ]; then readf v app_error; echo "app_error=$v"; fi
echo ---
cat log 2>/dev/null
exit 0
"""


# A pause between polls. `sleep` is a fork and an exec per poll: with many instances
# waiting on one small machine, that alone can take the CPU. Under bash (the usual login
# shell, which runs this command) a timed `read` on a FIFO nobody writes to pauses without
# either; the instance keeps one FIFO for every run (made once, so no fork per run).
def _nap(layout: _Layout) -> str:
    fifo = quote(posixpath.join(layout.state, "nap.fifo"))
    return f"""nap() {{ sleep "$1"; }}
if [ -n "${{BASH_VERSION:-}}" ] && {{ [ -p {fifo} ] || mkfifo -m 600 {fifo} 2>/dev/null ||
  [ -p {fifo} ]; }} && exec 9<>{fifo}; then
  nap() {{ read -r -t "$1" -u 9 _ 2>/dev/null; return 0; }}
fi"""


def _wait_body(layout: _Layout) -> str:
    """In the run directory: poll for `exit` for one chunk, then report."""
    slow = int((WAIT_CHUNK_SECONDS - FAST_POLLS * FAST_POLL_SECONDS) / POLL_SECONDS)
    return f"""{_nap(layout)}
i=0 d={FAST_POLL_SECONDS}
while [ ! -e exit ]; do
  [ $i -lt {FAST_POLLS + slow} ] || {{ echo state=pending; exit 0; }}
  if [ $((i % 20)) -eq 0 ] && readf p pid && ! alive "$p" && [ ! -e exit ]; then
    echo state=died; exit 0
  fi
  [ $i -lt {FAST_POLLS} ] || d={POLL_SECONDS}
  nap $d; i=$((i + 1))
done
{_report()}"""


def _stop_script(layout: _Layout) -> str:
    """Stop a run: leave the `cancelled` marker (run.sh checks it before each recipe),
    TERM its process group, KILL what is left after the grace period, make sure `exit`
    says 130, then report. A run never claimed is claimed as cancelled, so an attempt
    still on its way cannot start it."""
    grace_polls = max(int(CANCEL_GRACE_SECONDS / POLL_SECONDS), 1)
    return f"""{_HELPERS}
{_GROUP_ALIVE}
note() {{ printf '%s opsflow: %s\\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" >> log; }}
ended() {{
  [ -e exit ] && return 0
  date -u +%Y-%m-%dT%H:%M:%SZ > finished
  printf '%s\\n' {CANCELLED_EXIT_CODE} > exit.tmp && mv exit.tmp exit
}}
mkdir -p {quote(layout.runs)} || exit 90
if mkdir {quote(layout.run)} 2>/dev/null; then
  cd {quote(layout.run)} || exit 91
  : > cancelled; note "cancelled before it started"; ended
fi
cd {quote(layout.run)} || exit 91
if [ ! -e exit ]; then
  : > cancelled
  i=0; while [ ! -s pid ] && [ ! -e exit ] && [ $i -lt 200 ]; do sleep 0.01; i=$((i + 1)); done
  readf pid pid
  if [ ! -e exit ] && group_alive "$pid"; then
    note "cancel requested: stopping the run (TERM to process group $pid)"
    kill -s TERM -- "-$pid" 2>/dev/null
    i=0
    while group_alive "$pid" && [ $i -lt {grace_polls} ]; do
      sleep {POLL_SECONDS}; i=$((i + 1))
    done
    if group_alive "$pid"; then
      note "still running after {CANCEL_GRACE_SECONDS:g}s: KILL to process group $pid"
      kill -s KILL -- "-$pid" 2>/dev/null
      i=0; while group_alive "$pid" && [ $i -lt 100 ]; do sleep 0.02; i=$((i + 1)); done
    fi
  fi
  if [ ! -e exit ]; then note "cancelled"; ended; fi
fi
{_report()}"""


def _run_script(
    layout: _Layout,
    request: RecipeRunInput,
    recipes: list[str],
    manager: ConfigurationManager,
    app: _App | None = None,
    nonce: str = "",
) -> str:
    """The detached script: run each recipe in order with the manager's tool, log with
    timestamps, write `exit`; TERM (a cancellation) ends it with 130. With an app: its
    release step before the recipes and after them (see _app_steps)."""
    attributes = layout.in_run("attributes.json")
    env = {
        "OPSFLOW_ATTRIBUTES": attributes,
        "OPSFLOW_EVENT": request.event,
        "OPSFLOW_INSTANCE": request.hostname,
        "OPSFLOW_ROOT": layout.root,
        "OPSFLOW_RUN_ID": request.run_id,
        "OPSFLOW_STACK": request.stack,
    }
    if manager == ConfigurationManager.PUPPET:
        env |= {
            "FACTER_opsflow_stack": request.stack,
            "FACTER_opsflow_instance": request.hostname,
            "FACTER_opsflow_event": request.event,
            "FACTER_opsflow_root": layout.root,
            "FACTER_opsflow_attributes": attributes,
        }
    # The app's variables first: opsflow's own win a clash.
    app_env = app.environment if app is not None else {}
    exports = "\n".join(f"export {name}={quote(value)}" for name, value in (app_env | env).items())
    before, after = _app_steps(layout, request, app, nonce) if app else ("", "")
    steps = "\n".join(
        f"step {quote(recipe)} {quote(_recipe_path(layout, manager, recipe))}"
        f" {quote(_TARGET[manager](recipe))} || finish $?"
        for recipe in recipes
    )
    return f"""#!/bin/sh
# opsflow run {request.run_id} ({manager.value}, generated): recipes in order, the first
# failure ends it.
cd {quote(layout.run)} || exit 1
{exports}
stamp() {{
  while IFS= read -r line || [ -n "$line" ]; do
    printf '%s %s\\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$line"
  done
}}
say() {{ printf '%s opsflow: %s\\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" >> log; }}
app_failed() {{ :; }}
finish() {{
  [ "$1" = 0 ] || app_failed
  date -u +%Y-%m-%dT%H:%M:%SZ > finished
  printf '%s\\n' "$1" > exit.tmp && mv exit.tmp exit
  exit 0
}}
trap ': > cancelled; say "stopped: the run was cancelled"; finish {CANCELLED_EXIT_CODE}' TERM
date -u +%Y-%m-%dT%H:%M:%SZ > started
{_STEPS[manager](layout)}
n=0
step() {{
  printf '%s\\n' "$1" > recipe
  if [ -e cancelled ]; then say "cancelled before $1"; finish {CANCELLED_EXIT_CODE}; fi
  say "running $1"
  if [ -n "$missing" ]; then say "$missing"; return 127; fi
  if [ ! -f "$2" ]; then say "recipe $1 not found: no $2 on this instance"; return 127; fi
  n=$((n + 1)); mkfifo "stream.$n" || return 1
  {{ stamp < "stream.$n" >> log; : > "stream.$n.done"; }} &
  ( cd {quote(layout.root)} && invoke "$1" "$2" "$3" ) > "stream.$n" 2>&1 < /dev/null
  rc=$?
  # A daemon the recipe started may hold the stream open: give the stamper 1 s, not more.
  i=0; while [ ! -e "stream.$n.done" ] && [ $i -lt 100 ]; do sleep 0.01; i=$((i + 1)); done
  rm -f "stream.$n"
  return $rc
}}
{before}{steps}
{after}say "done"
finish 0
"""


def _tokens(nonce: str) -> tuple[str, str, str]:
    """Placeholders in the attributes for what only the instance knows (the release, the
    previous one, the release path); unguessable, so no custom JSON value can clash."""
    return f"opsflow-{nonce}-release", f"opsflow-{nonce}-previous", f"opsflow-{nonce}-path"


def _deploy_attributes(app: _App, nonce: str) -> dict[str, Any]:
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


def _app_steps(layout: _Layout, request: RecipeRunInput, app: _App, nonce: str) -> tuple[str, str]:
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


def _recipe_path(layout: _Layout, manager: ConfigurationManager, recipe: str) -> str:
    return posixpath.join(layout.cookbooks, recipe_file(manager, recipe))

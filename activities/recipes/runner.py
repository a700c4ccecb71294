"""The run_recipes activity: claims, starts or re-attaches to, waits for and (on a
requested cancellation) stops one run on an instance (see the package docstring)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from opentelemetry import trace
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import names, remote_script, ssh
from activities.heartbeat import heartbeating
from activities.recipes import remote
from activities.recipes.errors import recipe_failed, redacted_error
from activities.recipes.layout import Layout
from activities.recipes.managers import (
    SCRIPTS,
    chef_config,
    chef_node,
    data_bag_files,
    hiera_config,
)
from activities.recipes.payload import DIGEST, compressed, cookbooks_digest, payload
from activities.recipes.releases import App, check_app, deploy_attributes
from activities.recipes.report import Claim, Outcome, Report, RunState, parse
from activities.recipes.trees import local_trees
from opsflow import settings
from opsflow.attributes import deep_merge
from opsflow.errors import ErrorType, OpsflowError
from opsflow.messages import RecipeRunInput, RecipeRunResult, RunContext
from opsflow.names import RECIPE
from opsflow.secrets import conceal, reveal
from opsflow.spec import ConfigurationManager, Provider, UserSpec
from opsflow.users import users_document, users_to_converge
from runtime import run_logs
from workflows.failures import invalid

HEARTBEAT_SECONDS = 2.0
COMMAND_TIMEOUT = 120.0
# Cookbooks this worker has not seen staged on an instance go with the first command when
# their payload is at most this big (else only after the instance says it lacks them).
SPECULATIVE_STAGE_BYTES = 1 << 20
RUN_ID = run_logs.RUN_ID

# Each run in progress holds a thread waiting on its remote command: the default executor
# (cores + 4 threads) would make runs on many instances queue behind each other.
_SSH_THREADS = ThreadPoolExecutor(max_workers=200, thread_name_prefix="opsflow-ssh")

_tracer = trace.get_tracer("opsflow")
_log = logging.getLogger("opsflow.runner")

# (host, port, root, cookbooks digest) this worker process has seen staged: a hint only,
# the remote command checks for itself.
_staged: set[tuple[str, int, str, str]] = set()

ContextSource = Callable[[RecipeRunInput], Awaitable[RunContext]]


class RecipeActivities:
    """The run_recipes activity; `context_source` supplies the stack's freshest context
    (in production a query of the stack workflow)."""

    def __init__(self, context_source: ContextSource) -> None:
        self._context_source = context_source

    @activity.defn(name=names.RUN_RECIPES)
    async def run_recipes(self, request: RecipeRunInput) -> RecipeRunResult:
        started = time.monotonic()
        _check_run_id(request.run_id)
        app = check_app(request)
        context = await self._context_source(request)
        if request.stage_only:
            recipes: list[str] = []
        else:
            recipes = request.recipes if request.recipes is not None else context.recipes
        _check_context(context, recipes)
        users = _users(request, context, runs_anyway=bool(recipes) or app is not None)
        if not recipes and not request.stage_only and app is None and users is None:
            return RecipeRunResult(run_id=request.run_id, exit_code=0, log_tail="")
        context, app = await local_trees(context, app)
        context, revealed = _revealed(context)
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
            run = _Run(request, context, recipes, app, users)
            secrets = [*(app.secrets if app else []), *revealed, *run.secrets]
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
                raise redacted_error(err, secrets) from None
            outcome = outcome.redacted(secrets)
            span.set_attribute("opsflow.exit_code", outcome.exit_code)
            span.set_attribute("opsflow.attached", outcome.attached)
        await _save_log(request, context, recipes, outcome)
        if outcome.exit_code != 0:
            raise recipe_failed(request, outcome)
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


def _revealed(context: RunContext) -> tuple[RunContext, list[str]]:
    """The context with its secure values (app environments, SSL keys, RDS passwords in
    the attributes and data bags) in plaintext, decrypted here on the worker for the
    run's root-only files, and those plaintexts, redacted from everything reported."""
    sealed = {"configuration": context.configuration, "data_bags": context.data_bags}
    if conceal(sealed) == sealed:
        return context, []  # nothing to decrypt: no key needed
    plain, secrets = reveal(sealed, settings.secret_key())
    return context.model_copy(update=plain), secrets


def _cancel_requested() -> bool:
    """Whether the workflow asked for this cancellation: not a worker shutting down (a
    restarted worker re-attaches), not a timeout, pause or reset."""
    if not activity.in_activity() or activity.is_worker_shutdown():
        return False
    details = activity.cancellation_details()
    return details is not None and details.cancel_requested and not details.worker_shutdown


def _check_run_id(run_id: str) -> None:
    if not RUN_ID.fullmatch(run_id):
        raise invalid(f"invalid run id {run_id!r}")


def _users(
    request: RecipeRunInput, context: RunContext, *, runs_anyway: bool
) -> list[UserSpec] | None:
    """The stack users this run converges the instance to (opsflow.users), or None.

    The second guard of the host's /etc (`stack apply` refuses first): a local instance
    that is not an isolated machine (an sshd process, root not `/`) shares the worker
    host's /etc, so users are never converged there; a stack with users fails the run."""
    if request.stage_only:
        return None
    users = users_to_converge(request.event, context.users, runs_anyway=runs_anyway)
    shares_host = request.instance.provider == Provider.LOCAL and request.root != "/"
    if users is not None and shares_host:
        if users:
            raise invalid(
                f"{request.stack}/{request.hostname}: users: this local instance is not an "
                "isolated machine (an sshd process sharing the worker host's /etc), so "
                "opsflow will not create Unix users on it; run local instances as isolated "
                "machines (OPSFLOW_ISOLATION=auto as root) or remove `users:` from the stack"
            )
        return None
    return users


def _check_context(context: RunContext, recipes: list[str]) -> None:
    if context.configuration_manager not in SCRIPTS:
        raise invalid(f"cannot run {context.configuration_manager!s} recipes")
    # Names reach paths, class names, run lists and the run script: only cookbook::recipe
    # of safe characters, for every manager.
    bad = [recipe for recipe in recipes if not RECIPE.fullmatch(recipe)]
    if bad:
        raise invalid(f"invalid recipe name(s) {bad}: expected cookbook::recipe")
    digest = context.cookbooks_digest
    if digest is not None and not DIGEST.fullmatch(digest):
        raise invalid(f"invalid cookbooks digest {digest!r}: expected lowercase hex")


class _Run:
    """Claims, starts or re-attaches to, waits for and (on request) stops one run."""

    def __init__(
        self,
        request: RecipeRunInput,
        context: RunContext,
        recipes: list[str],
        app: App | None = None,
        users: list[UserSpec] | None = None,
    ) -> None:
        self.request = request
        self.context = context
        self.recipes = recipes
        self.app = app
        self.users = users  # None: no user step in this run
        self.manager = context.configuration_manager
        self.endpoint = request.ssh
        # Marks the attempt that claimed the run directory: only it may start the run.
        self.nonce = uuid.uuid4().hex
        self.layout: Layout | None = None
        # Whether a command that may start the run was sent (cancelling then stops it).
        self.launched = False
        # Chef 12: the data bags' files, secure values revealed (redacted from every log).
        self.data_bags, self.secrets = data_bag_files(context.data_bags)

    async def _layout(self) -> Layout:
        _mark_used(self.context.cookbooks_dir)
        digest = self.context.cookbooks_digest
        if digest is None:
            digest = await asyncio.to_thread(cookbooks_digest, self.context.cookbooks_dir)
        app_digest = None
        if self.app is not None and self.app.source_dir is not None:
            app_digest = self.app.source_digest
            if app_digest is None:
                app_digest = await asyncio.to_thread(cookbooks_digest, self.app.source_dir)
        self.layout = Layout(self.request.root, self.request.run_id, digest, app_digest)
        return self.layout

    async def _send(self, layout: Layout, script: str, files: dict[str, bytes]) -> str:
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
        report = parse(output)
        if report.lacks_staging:
            output = await _heartbeating(
                self._start,
                script,
                files,
                stage=report.cookbooks_missing,
                app=report.app_missing,
                speculative=False,
            )
            report = parse(output)
        if report.is_staged:
            _staged.add(cookbooks_key)
            if layout.app_digest is not None:
                _staged.add(app_key)
        return output

    async def run(self) -> Outcome:
        layout = await self._layout()
        # One command stages (if it carries the cookbooks), claims, writes the run files,
        # launches and waits.
        self.launched = True
        script = remote.start_command(layout, self.nonce)
        output = await self._send(layout, script, self._run_files(layout))
        report = parse(output)
        claim = report.claim
        if not report.is_staged or claim in (None, Claim.BUSY):
            raise ApplicationError(
                f"{self._where()}: run {self.request.run_id} could not be started "
                f"(staged={report.staged}, claim={claim}); another attempt may be "
                "claiming it",
                type=ErrorType.RUN_SETUP_FAILED,
            )
        return await self._wait(layout, report, attached=claim != Claim.NEW)

    async def stage(self) -> Outcome:
        """Stage the cookbooks only (update_custom_cookbooks): no run directory, no run."""
        started = _utc_now()
        layout = await self._layout()
        output = await self._send(layout, remote.stage_command(layout), {})
        report = parse(output)
        if not report.is_staged:
            raise ApplicationError(
                f"{self._where()}: cookbooks {layout.digest} could not be staged",
                type=ErrorType.RUN_SETUP_FAILED,
            )
        how = "staged" if report.newly_staged else "already staged"
        line = f"{started} opsflow: cookbooks {layout.digest} {how} at {layout.cookbooks}\n"
        return Outcome(
            exit_code=0,
            recipe="",
            recipes=[],
            log=line,
            attached=False,
            manager=self.manager.value,
            started=started,
            finished=_utc_now(),
        )

    async def stop(self) -> Outcome | None:
        """Stop the run on the instance (TERM, then KILL its process group); its outcome,
        or None when the instance could not be told."""
        if self.layout is None:
            return None
        try:
            output = await _heartbeating(self._exec, remote.stop_command(self.layout))
        except asyncio.CancelledError:
            return None  # cancelled again while stopping: give up waiting
        except ApplicationError as err:
            _log.warning("%s: could not stop run %s: %s", self._where(), self.request.run_id, err)
            return None
        return parse(output).outcome(attached=False)

    async def _wait(self, layout: Layout, report: Report, *, attached: bool) -> Outcome:
        while True:
            if report.state == RunState.DONE:
                return report.outcome(attached=attached)
            if report.state == RunState.DIED:
                raise ApplicationError(
                    f"{self._where()}: run {self.request.run_id} vanished without an exit "
                    "code; the next attempt starts it afresh",
                    type=ErrorType.RUN_LOST,
                )
            # Still running after one wait chunk: the next command takes over.
            report = parse(await _heartbeating(self._exec, remote.wait_command(layout)))

    def _run_files(self, layout: Layout) -> dict[str, bytes]:
        configuration = self.context.configuration
        if self.app is not None:
            configuration = deep_merge(configuration, deploy_attributes(self.app, self.nonce))
        if self.request.custom_json:
            # The command's own custom JSON, last: over the stack's, the layers' and the
            # deploy attributes (OpsWorks: run > layer > stack).
            configuration = deep_merge(configuration, self.request.custom_json)
        files = {
            "attributes.json": _json(configuration),
            "recipes": (" ".join(self.recipes) + "\n").encode(),
            "manager": f"{self.manager.value}\n".encode(),
            "run.sh": remote.run_script(
                layout,
                self.request,
                self.recipes,
                self.manager,
                self.app,
                self.nonce,
                users=self.users is not None,
            ).encode(),
        }
        if self.users is not None:
            files[remote.USERS_FILE] = users_document(self.users).encode()
        if self.manager == ConfigurationManager.PUPPET:
            files["hiera.yaml"] = hiera_config(layout).encode()
        bags = self.context.data_bags is not None
        if self.manager == ConfigurationManager.CHEF:
            files["node.json"] = _json(chef_node(configuration))
            for name, local in (("client.rb", True), ("solo.rb", False)):
                text = chef_config(layout, self.request, local_mode=local, data_bags=bags)
                files[name] = text.encode()
        files.update(self.data_bags)
        return files

    def _start(
        self, script: str, files: dict[str, bytes], *, stage: bool, app: bool, speculative: bool
    ) -> str:
        """One command carrying `files` (and the cookbooks with `stage`, the app's code
        with `app`) on its stdin. `speculative`: they may not be needed, leave them out if
        big."""
        app_dir = self.app.source_dir if self.app is not None and app else None
        stdin = payload(files, self.context.cookbooks_dir, stage=stage, app=app_dir)
        if (stage or app_dir) and speculative and len(stdin) > SPECULATIVE_STAGE_BYTES:
            stage, app_dir = False, None
            stdin = payload(files, None, stage=False)
        gzipped = "z" if compressed(stage=stage, app=app_dir) else ""
        return self._exec(remote_script.header({"z": gzipped}) + script, stdin)

    def _exec(self, command: str, stdin: bytes | None = None) -> str:
        code, out, err = ssh.run(
            self.endpoint,
            ssh.privileged(self.endpoint, command),
            timeout=remote.WAIT_CHUNK_SECONDS + COMMAND_TIMEOUT,
            stdin=stdin,
        )
        if code != 0:
            raise ApplicationError(
                f"{self._where()}: a remote step of run {self.request.run_id} failed "
                f"({code}): {err.strip() or out.strip()}",
                type=ErrorType.RUN_SETUP_FAILED,
            )
        return out

    def _where(self) -> str:
        return f"{self.request.stack}/{self.request.hostname}"


def _json(document: Any) -> bytes:
    return json.dumps(document, indent=2, sort_keys=True).encode()


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _save_log(
    request: RecipeRunInput, context: RunContext, recipes: list[str], outcome: Outcome
) -> None:
    """Keep the run's whole log in the artifact store (runtime.run_logs); never fails the
    run: a store that cannot be reached costs the saved log, not the run."""
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
        "task_queue": activity.info().task_queue if activity.in_activity() else None,
    }
    try:
        await asyncio.to_thread(run_logs.save_run_log, meta, outcome.log, keep=run_logs.KEEP_RUNS)
    except (OSError, ValueError, OpsflowError) as err:
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


_P = ParamSpec("_P")
_T = TypeVar("_T")


async def _heartbeating(fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Run blocking `fn` in one of the SSH threads, heartbeating meanwhile so Temporal
    notices a dead worker (a run's thread ends with its command: one wait chunk at most)."""
    call = functools.partial(fn, *args, **kwargs)
    work = asyncio.get_running_loop().run_in_executor(_SSH_THREADS, call)
    return await heartbeating(work, every=HEARTBEAT_SECONDS, at_once=True)

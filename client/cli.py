"""The `opsflow` command line: a thin layer over client/api.py and client/dev.py.

Exit codes: 0 done, 1 the operation failed (the message says where to look), 2 bad input.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import gc
import hashlib
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from client import command_logs, output
from client.api import OpsflowClient, ScheduleView, gone, run_url, settled
from client.connect import connect
from client.stackfile import load_stack_file
from opsflow import names, scaling
from opsflow.errors import InvalidInput, OperationFailed, OpsflowError
from opsflow.messages import (
    AddInstanceInput,
    AppAction,
    AppCommandInput,
    DeployInput,
    DeploymentDetail,
    DeploymentResult,
    InstanceActionKind,
    InstanceDeployment,
    InstanceView,
    RegisterInstanceInput,
    RunCommandInput,
    RunCommandResult,
    StackDescription,
    StackEvent,
)
from opsflow.rollout import Strategy, parse_amount
from opsflow.secrets import MASK, SecureValue
from opsflow.spec import WEEKDAYS, HealthCheckSpec, RegisteredHostSpec, WeeklySchedule
from opsflow.status import FAILED

T = TypeVar("T")

output_option = click.option(
    "-o", "--output", "fmt", type=click.Choice(output.FORMATS), default="table", show_default=True
)
wait_option = click.option("--wait", is_flag=True, help="Wait until the operation has finished.")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def _client() -> OpsflowClient:
    from client.telemetry import tracing_interceptors

    return OpsflowClient(await connect(interceptors=tracing_interceptors("opsflow-cli")))


def call_with_client(func: Callable[..., Awaitable[None]], *args: Any, **kwargs: Any) -> None:
    """Run an async command body with a connected client (for commands that check their
    arguments first, so bad input exits 2 before anything connects)."""

    async def body() -> OpsflowError | None:
        try:
            await func(await _client(), *args, **kwargs)
        except OpsflowError as err:
            # Leave no traceback holding the Temporal client: freeing its Rust runtime
            # during interpreter shutdown aborts the process.
            err.__traceback__ = None
            err.__context__ = None
            return err
        return None

    failure = _run(body())
    gc.collect()
    if failure is not None:
        raise failure


def with_client(func: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async command body with a connected client."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        call_with_client(func, *args, **kwargs)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """opsflow: stacks, layers, instances and lifecycle recipes, durably on Temporal."""


# ---- dev ---------------------------------------------------------------------------


@cli.group()
def dev() -> None:
    """The embedded environment: Temporal dev server + UI and one worker."""


def _show_parts(parts: list[Any], fmt: str) -> None:
    if fmt == "json":
        output.emit_json(parts)
        return
    output.emit_table(
        ["PART", "RUNNING", "PID", "ADDRESS", "LOG"],
        [[p.name, "yes" if p.running else "no", p.pid, p.address, p.log_file] for p in parts],
    )


@dev.command("up")
@output_option
def dev_up(fmt: str) -> None:
    """Start whatever part is not running; leave running parts alone."""
    from client import dev as devenv

    parts = devenv.up()
    _show_parts(parts, fmt)
    ui = next((p.ui for p in parts if p.ui), None)
    if fmt != "json" and ui:
        click.echo(f"Temporal UI: {ui}")


@dev.command("down")
@output_option
def dev_down(fmt: str) -> None:
    """Stop the worker and the dev server (local instances keep running)."""
    from client import dev as devenv

    _show_parts(devenv.down(), fmt)


@dev.command("status")
@output_option
def dev_status(fmt: str) -> None:
    """Each part with its process id, address and log file."""
    from client import dev as devenv

    _show_parts(devenv.status(), fmt)


# ---- stack -------------------------------------------------------------------------


@cli.group()
def stack() -> None:
    """Create, change, inspect and delete stacks."""


@stack.command("plan")
@click.argument("file", type=click.Path(dir_okay=False))
@output_option
@with_client
async def stack_plan(client: OpsflowClient, file: str, fmt: str) -> None:
    """Validate FILE and show what apply would change; change nothing."""
    changes = await client.plan(load_stack_file(file))
    if fmt == "json":
        output.emit_json(changes)
    elif not changes:
        click.echo("no changes")
    else:
        for change in changes:
            click.echo(f"  + {change}")


@stack.command("apply")
@click.argument("file", type=click.Path(dir_okay=False))
@wait_option
@output_option
@with_client
async def stack_apply(client: OpsflowClient, file: str, wait: bool, fmt: str) -> None:
    """Create or update a stack from a YAML FILE."""
    spec = load_stack_file(file)
    result = await client.apply(spec, source_file=file)
    if fmt == "json" and not wait:
        output.emit_json(result)
        return
    if fmt != "json":
        for change in result.changes or ["no changes"]:
            click.echo(f"  {change}")
    if not wait:
        click.echo(f"stack {spec.name}: {run_url(names.stack_workflow_id(spec.name))}")
        return
    declared = list(spec.declared_instances())
    found = await client.wait_instances(spec.name, settled, declared)
    if fmt == "json":
        output.emit_json(found.instances)
    else:
        _instance_table(found)
    await _fail_if_failed(client, found, declared)


@stack.command("list")
@output_option
@with_client
async def stack_list(client: OpsflowClient, fmt: str) -> None:
    """Every stack."""
    stacks = await client.list_stacks()
    if fmt == "json":
        output.emit_json(stacks)
        return
    output.emit_table(
        ["STACK", "PROVIDER", "LAYERS", "INSTANCES", "ONLINE", "PROBLEM"],
        [[s.name, s.provider, s.layers, s.instances, s.online, s.problem or ""] for s in stacks],
    )


@stack.command("describe")
@click.argument("name")
@output_option
@with_client
async def stack_describe(client: OpsflowClient, name: str, fmt: str) -> None:
    """A stack's spec, instances and recent events."""
    found = await client.describe(name)
    if fmt == "json":
        output.emit_json(found)
        return
    spec = found.spec
    click.echo(
        f"stack {spec.name}  provider={spec.provider.value}  "
        f"configuration_manager={spec.configuration_manager.value}"
    )
    click.echo(f"source: {found.source_file}   runs: {run_url(names.stack_workflow_id(name))}")
    for layer in spec.layers:
        recipes = ", ".join(
            f"{event}: {' '.join(r)}" for event, r in layer.recipes.model_dump().items() if r
        )
        click.echo(f"layer {layer.name}  auto_healing={layer.auto_healing}  {recipes}")
    for app in spec.apps:
        environment = " ".join(
            f"{var}={MASK if isinstance(value, SecureValue) else value}"
            for var, value in app.environment.items()
        )
        source = app.source.describe() if app.source else "-"
        click.echo(
            f"app {app.name}  layers={','.join(app.layers)}  source: {source}  {environment}"
        )
    _instance_table(found)
    click.echo("recent events:")
    for event in found.events[-10:]:
        click.echo(f"  {event.at:%Y-%m-%d %H:%M:%S}  {event.kind:16} {event.message}")


def _utc(at: datetime) -> str:
    """A moment as UTC ISO 8601 to the second: 2025-01-02T03:04:05Z."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _event_message(event: StackEvent) -> str:
    """The message, and the health check output that triggered the event on lines below."""
    check = event.details.get("check")
    if check is None or str(check).strip() == "":
        return event.message
    lines = str(check).strip().splitlines()
    return "\n".join([event.message, f"  check: {lines[0]}", *(f"    {x}" for x in lines[1:])])


@stack.command("events")
@click.argument("stack_name", metavar="STACK")
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    help="Only events of this kind (e.g. heal_started, instance_status); may be repeated.",
)
@click.option("--instance", "hostname", help="Only events of this instance.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Keep the newest N events (after filtering).",
)
@output_option
@with_client
async def stack_events(
    client: OpsflowClient,
    stack_name: str,
    kinds: tuple[str, ...],
    hostname: str | None,
    limit: int,
    fmt: str,
) -> None:
    """STACK's recent events, oldest first: what happened and why (the stack keeps the
    newest 200)."""
    found = await client.events(stack_name, kinds=kinds, hostname=hostname, limit=limit)
    if fmt == "json":
        output.emit_json(found)
        return
    output.emit_table(
        ["TIME (UTC)", "KIND", "INSTANCE", "MESSAGE"],
        [[_utc(e.at), e.kind, e.hostname or "", _event_message(e)] for e in found],
    )


@stack.command("delete")
@click.argument("name")
@wait_option
@with_client
async def stack_delete(client: OpsflowClient, name: str, wait: bool) -> None:
    """Stop and delete every instance, then the stack."""
    result = await client.delete_stack(name)
    click.echo(f"deleting stack {name} ({len(result.instances)} instance(s))")
    if wait:
        await client.wait_stack_deleted(name)
        click.echo(f"stack {name} deleted")


# ---- instance ----------------------------------------------------------------------


@cli.group()
def instance() -> None:
    """Add, start, stop, delete and list instances."""


def _instance_table(found: StackDescription) -> None:
    output.emit_table(
        ["HOSTNAME", "LAYERS", "STATUS", "SSH", "MESSAGE"],
        [
            [
                v.hostname,
                ",".join(v.layers),
                v.status.value,
                f"{v.ssh.user}@{v.ssh.host}:{v.ssh.port}" if v.ssh else "",
                v.message or "",
            ]
            for v in found.instances
        ],
    )


@instance.command("list")
@click.argument("stack_name", metavar="STACK")
@output_option
@with_client
async def instance_list(client: OpsflowClient, stack_name: str, fmt: str) -> None:
    """The instances of STACK."""
    found = await client.describe(stack_name)
    if fmt == "json":
        output.emit_json(found.instances)
    else:
        _instance_table(found)


@instance.command("add")
@click.argument("stack_name", metavar="STACK")
@click.option("--layer", required=True)
@click.option("--hostname", required=True)
@click.option("--start", is_flag=True, help="Start it right away.")
@wait_option
@with_client
async def instance_add(
    client: OpsflowClient, stack_name: str, layer: str, hostname: str, start: bool, wait: bool
) -> None:
    """Add an instance to a layer of STACK."""
    if not names.HOSTNAME.match(hostname):
        raise InvalidInput(f"--hostname: {hostname!r} must match {names.HOSTNAME.pattern}")
    view = await client.add_instance(
        stack_name, AddInstanceInput(layer=layer, hostname=hostname, start=start)
    )
    click.echo(f"instance {view.hostname} added to layer {layer} ({view.status.value})")
    if start and wait:
        await _wait_for(client, stack_name, hostname, settled)


@instance.command("register")
@click.argument("stack_name", metavar="STACK")
@click.option("--layer", required=True)
@click.option("--host", required=True, help="DNS name or IP address of the existing host.")
@click.option("--port", type=int, default=22, show_default=True)
@click.option("--user", default="root", show_default=True, help="Login user (writes under --root).")
@click.option("--key-file", required=True, help="Private key that logs in as --user.")
@click.option("--hostname", help="Its name in the stack (default: the first label of --host).")
@click.option("--root", default="/", show_default=True, help="Where opsflow keeps its files.")
@click.option("--host-key", help="'<type> <base64>' to pin (default: the key it shows now).")
@click.option("--sudo", is_flag=True, help="Run recipes through `sudo -n` (--user is not root).")
@wait_option
@with_client
async def instance_register(
    client: OpsflowClient,
    stack_name: str,
    layer: str,
    host: str,
    port: int,
    user: str,
    key_file: str,
    hostname: str | None,
    root: str,
    host_key: str | None,
    sudo: bool,
    wait: bool,
) -> None:
    """Bring an existing SSH host into a layer of STACK (OpsWorks' register).

    The worker logs in with the key first; a host that does not answer is not registered.
    Then setup runs and it goes online like any instance. opsflow never stops or
    terminates it: `instance stop` runs the shutdown recipes only, `instance delete`
    deregisters it (shutdown recipes, then the stack forgets it).
    """
    hostname = hostname or _hostname_of(host)
    if not names.HOSTNAME.match(hostname):
        raise InvalidInput(f"--hostname: {hostname!r} must match {names.HOSTNAME.pattern}")
    key_path = os.path.abspath(os.path.expanduser(key_file))
    if not os.path.isfile(key_path) or not os.access(key_path, os.R_OK):
        raise InvalidInput(f"--key-file: {key_file!r} is not a readable file")
    try:
        target = RegisteredHostSpec(
            host=host,
            port=port,
            user=user,
            key_file=key_path,
            host_key=host_key,
            root=root,
            sudo=sudo,
        )
    except ValidationError as err:
        raise InvalidInput("; ".join(_option_problem(e) for e in err.errors())) from None
    registered = await client.register_instance(
        stack_name, RegisterInstanceInput(layer=layer, hostname=hostname, host=target)
    )
    click.echo(
        f"instance {hostname} registered in layer {layer} ({target.where()}, host key "
        f"{_fingerprint(registered.host_key)} pinned)"
    )
    if wait:
        await _wait_for(client, stack_name, hostname, settled, after=registered.view)


def _hostname_of(host: str) -> str:
    label = host.split(".", 1)[0].lower()
    if host.replace(".", "").isdigit() or ":" in host or not names.HOSTNAME.match(label):
        raise InvalidInput(f"--hostname: needed ({host!r} gives no usable name)")
    return label


def _option_problem(error: Mapping[str, Any]) -> str:
    """A RegisteredHostSpec error, as the option that caused it."""
    message = str(error["msg"]).removeprefix("Value error, ")
    field, sep, rest = message.partition(": ")
    location = [str(part) for part in error.get("loc", ())]
    if not sep and location:
        field, rest = location[0], message
    return f"--{field.replace('_', '-')}: {rest}"


def _fingerprint(host_key: str) -> str:
    """`ssh-ed25519 SHA256:...`, as ssh-keygen -l and ssh print it."""
    kind, blob = host_key.split()[:2]
    digest = hashlib.sha256(base64.b64decode(blob)).digest()
    return f"{kind} SHA256:{base64.b64encode(digest).decode().rstrip('=')}"


def _instance_action(action: InstanceActionKind, help_text: str) -> None:
    @instance.command(action.value, help=help_text)
    @click.argument("stack_name", metavar="STACK")
    @click.argument("hostname")
    @wait_option
    @with_client
    async def command(client: OpsflowClient, stack_name: str, hostname: str, wait: bool) -> None:
        view = await client.instance_action(stack_name, hostname, action)
        click.echo(f"{action.value} requested for {hostname} (was {view.status.value})")
        if wait:
            until = gone if action == InstanceActionKind.DELETE else settled
            await _wait_for(client, stack_name, hostname, until, after=view)


_instance_action(InstanceActionKind.START, "Launch the instance, run setup, bring it online.")
_instance_action(InstanceActionKind.STOP, "Run shutdown recipes, then stop the instance.")
_instance_action(InstanceActionKind.DELETE, "Stop (if running) and delete the instance.")


@instance.command("kill")
@click.argument("stack_name", metavar="STACK")
@click.argument("hostname")
@with_client
async def instance_kill(client: OpsflowClient, stack_name: str, hostname: str) -> None:
    """Crash a local instance, for drills: SIGKILL its sshd and every connection it serves.

    opsflow is not told: the stack still shows the instance online until the layer's
    healing loop notices. Run it where the worker runs (local instances live in its
    OPSFLOW_HOME).
    """
    found = await client.kill_instance(stack_name, hostname)
    layers = next(v.layers for v in found.instances if v.hostname == hostname)
    click.echo(f"{hostname}: machine killed (sshd and its connections, SIGKILL)")
    for layer in found.spec.layers:
        if layer.name not in layers:
            continue
        if layer.auto_healing:
            check = layer.health_check
            click.echo(
                f"  layer {layer.name}: its healing loop checks every {check.interval:g}s and "
                f"takes it as lost after {check.unhealthy_threshold} failed check(s) in a row"
            )
        else:
            click.echo(f"  layer {layer.name}: auto_healing is off, nothing will replace it")


async def _wait_for(
    client: OpsflowClient,
    stack_name: str,
    hostname: str,
    until: Callable[[InstanceView | None], bool],
    after: InstanceView | None = None,
) -> None:
    # The command is queued on the instance; a status that settled before it ran is stale.
    stale_at = after.updated_at if after else None

    def fresh(view: InstanceView | None) -> bool:
        if view is not None and stale_at is not None and view.updated_at == stale_at:
            return False
        return until(view)

    found = await client.wait_instances(stack_name, fresh, [hostname])
    view = next((v for v in found.instances if v.hostname == hostname), None)
    click.echo(f"{hostname}: {view.status.value if view else 'deleted'}")
    await _fail_if_failed(client, found, [hostname])


async def _fail_if_failed(
    client: OpsflowClient, found: StackDescription, hostnames: list[str]
) -> None:
    failed = [v for v in found.instances if v.hostname in hostnames and v.status in FAILED]
    if not failed:
        return
    lines = [f"{len(failed)} instance(s) failed:"]
    for view in failed:
        lines.append(f"  {view.hostname}: {view.status.value}: {view.message}")
        tail = await client.last_log_tail(found.name, view.hostname)
        if tail:
            lines.extend(f"    | {line}" for line in tail.splitlines()[-10:])
    workflow_id = names.instance_workflow_id(found.name, failed[0].hostname)
    raise OperationFailed("\n".join(lines), run_url(workflow_id))


# ---- commands ----------------------------------------------------------------------


# App commands take --app and act on the instances of the app's layers.
APP_COMMANDS = ["undeploy", "start", "stop", "restart"]
RUN_COMMANDS = ["setup", "configure", "execute_recipes", "update_custom_cookbooks", *APP_COMMANDS]


def _recipe_list(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str]:
    if not value:
        return []
    recipes = [r.strip() for r in value.split(",") if r.strip()]
    bad = [r for r in recipes if not names.RECIPE.match(r)]
    if bad:
        raise click.BadParameter(f"{', '.join(bad)}: expected cookbook::recipe[,...]")
    return recipes


@cli.command("run")
@click.argument("stack_name", metavar="STACK")
@click.argument("command", type=click.Choice(RUN_COMMANDS))
@click.option("--layer", help="Only the online instances of this layer.")
@click.option("--instance", "hostname", help="Only this instance.")
@click.option(
    "--recipes",
    callback=_recipe_list,
    help="execute_recipes: cookbook::recipe[,cookbook::recipe...], run in this order.",
)
@click.option("--app", help="undeploy|start|stop|restart: the app to act on.")
@wait_option
@output_option
def run_command(
    stack_name: str,
    command: str,
    layer: str | None,
    hostname: str | None,
    recipes: list[str],
    app: str | None,
    wait: bool,
    fmt: str,
) -> None:
    """Run a command (a lifecycle event's recipes, or chosen recipes) on online instances;
    `undeploy --app APP` removes an app from the instances of its layers, and `start`,
    `stop`, `restart --app APP` run its layers' deploy recipes with OPSFLOW_EVENT set to
    the command, on the current release.

    With --wait, Ctrl-C cancels the command: queued runs are dropped and running recipes
    are stopped on the instances.
    """
    if command in APP_COMMANDS:
        if not app:
            raise click.UsageError(f"{command} needs --app APP")
        if layer or hostname or recipes:
            raise click.UsageError(
                f"{command}: --layer, --instance and --recipes do not apply (an app "
                "command acts on every instance of the app's layers)"
            )
        request = AppCommandInput(app=app, action=AppAction(command))
        call_with_client(_app_command, stack_name, request, wait, fmt)
        return
    if app:
        raise click.UsageError(f"--app: only {', '.join(APP_COMMANDS)} take an app, not {command}")
    if layer and hostname:
        raise InvalidInput("--layer and --instance: give one or the other")
    call_with_client(_run_recipes, stack_name, command, layer, hostname, recipes, wait, fmt)


async def _run_recipes(
    client: OpsflowClient,
    stack_name: str,
    command: str,
    layer: str | None,
    hostname: str | None,
    recipes: list[str],
    wait: bool,
    fmt: str,
) -> None:
    started = await client.run_command(
        stack_name,
        RunCommandInput(command=command, layer=layer, instance=hostname, recipes=recipes),
    )
    if fmt != "json":
        click.echo(f"{command} on {', '.join(started.targets)}: {started.deployment_id}")
        click.echo(f"  {run_url(started.deployment_id)}")
    if not wait:
        if fmt == "json":
            output.emit_json(started)
        return
    try:
        result = await client.wait_deployment(started.deployment_id)
    except asyncio.CancelledError:
        # Ctrl-C: asyncio.run cancels this task; stop the command before leaving.
        click.echo(f"cancelling {started.deployment_id} ...", err=True)
        await asyncio.shield(_cancel_and_wait(client, started.deployment_id))
        raise
    if fmt == "json":
        output.emit_json(result)
        return
    for item in result.instances:
        state = "skipped" if item.skipped else ("ok" if item.ok else "failed")
        extra = f" ({item.error})" if item.error else ""
        click.echo(f"  {item.hostname}: {state}{extra}  run {item.run_id or '-'}")


async def _cancel_and_wait(client: OpsflowClient, deployment_id: str) -> None:
    await client.cancel_deployment(deployment_id)
    with contextlib.suppress(OperationFailed):
        await client.wait_deployment(deployment_id)
    click.echo(f"{deployment_id} cancelled", err=True)


# ---- app deployments ---------------------------------------------------------------


class DefaultCommandGroup(click.Group):
    """A group that is also a command: `deploy STACK APP ...` and `deploy approve ID`.

    Routing looks at the first argument only. A subcommand's name (`approve`, `abort`)
    or a help option goes to the group as usual; anything else (a stack name, an option
    such as `--revision`) goes, with every argument, to `default_command`, which parses
    them itself. The default command is not listed among the subcommands; `deploy --help`
    shows its usage and options next to them. A stack that is literally named `approve`
    or `abort` is deployed with `--` first: `opsflow deploy -- approve APP`.

    The default command runs in a context of its own whose parent is the group's parent,
    so its usage and error hints read `opsflow deploy ...` rather than naming a hidden
    subcommand.
    """

    def __init__(self, *args: Any, default_command: click.Command, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.default_command = default_command

    def _routes_to_default(self, ctx: click.Context, args: list[str]) -> bool:
        return bool(args) and args[0] not in self.commands and args[0] not in ctx.help_option_names

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if self._routes_to_default(ctx, args):
            # No subcommand: keep every argument (options included) for the default command.
            ctx._protected_args, ctx.args = [], list(args)
            return ctx.args
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        if ctx._protected_args or not ctx.args:
            return super().invoke(ctx)
        args, ctx.args = ctx.args, []
        with ctx:
            sub_ctx = self.default_command.make_context(ctx.info_name, args, parent=ctx.parent)
            with sub_ctx:
                return sub_ctx.command.invoke(sub_ctx)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        pieces = " ".join(self.default_command.collect_usage_pieces(ctx))
        formatter.write_usage(ctx.command_path, pieces)
        formatter.write_usage(ctx.command_path, "approve|abort DEPLOYMENT_ID", prefix="       ")

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self.default_command.format_options(ctx, formatter)
        self.format_commands(ctx, formatter)


def _amount(allow_zero: bool) -> Callable[[click.Context, click.Parameter, str | None], str | None]:
    """A click callback checking a count (3) or percentage (25%) with the rollout rules."""

    def check(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        if value is None:
            return None
        option = param.opts[0] if param.opts else str(param.name)
        try:
            return str(parse_amount(option, value, allow_zero=allow_zero))
        except InvalidInput as err:
            raise click.BadParameter(str(err).removeprefix(f"{option}: "), ctx, param) from None

    return check


def health_check_of(text: str) -> HealthCheckSpec:
    """`--health-check`: an http(s) URL template is probed over HTTP, anything else is a
    command run on the instance (exit 0 is healthy)."""
    try:
        if text.startswith(("http://", "https://")):
            return HealthCheckSpec(url=text)
        return HealthCheckSpec(command=text)
    except ValidationError as err:
        problems = "; ".join(
            str(e["msg"]).removeprefix("Value error, ").removeprefix("health_check: ")
            for e in err.errors()
        )
        raise click.BadParameter(problems) from None


def _health_check(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> HealthCheckSpec | None:
    if value is None:
        return None
    if not value.strip():
        raise click.BadParameter("give a URL or a command", ctx, param)
    return health_check_of(value)


@click.command(
    "deploy",
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Canary: `opsflow deploy approve|abort DEPLOYMENT_ID` past or at the gate.",
)
@click.argument("stack_name", metavar="STACK")
@click.argument("app")
@click.option("--revision", help="Git branch, tag or commit (git sources).")
@click.option(
    "--strategy",
    type=click.Choice([s.value for s in Strategy]),
    default=Strategy.ALL_AT_ONCE.value,
    show_default=True,
)
@click.option(
    "--batch",
    callback=_amount(allow_zero=False),
    help="rolling/canary: instances per batch, N or P% (canary default: 1).",
)
@click.option(
    "--max-failures",
    callback=_amount(allow_zero=True),
    help="Failed instances tolerated before rolling back, N or P% (default: 0).",
)
@click.option(
    "--bake",
    type=click.FloatRange(min=0, min_open=True),
    help="canary: go on after this many seconds (default: wait for approve).",
)
@click.option(
    "--health-check",
    callback=_health_check,
    help="An http(s):// URL ({private_ip}, {hostname} filled in) or a command on the instance.",
)
@wait_option
@output_option
def deploy_app(
    stack_name: str,
    app: str,
    revision: str | None,
    strategy: str,
    batch: str | None,
    max_failures: str | None,
    bake: float | None,
    health_check: HealthCheckSpec | None,
    wait: bool,
    fmt: str,
) -> None:
    """Deploy APP (from STACK's stack file) to the instances of its layers."""
    if strategy == Strategy.ALL_AT_ONCE.value and batch is not None:
        raise click.UsageError("--batch: an all-at-once deployment has one batch")
    if strategy != Strategy.CANARY.value and bake is not None:
        raise click.UsageError("--bake: only a canary deployment has a bake time")
    if strategy == Strategy.CANARY.value and batch is None:
        batch = "1"
    request = DeployInput(
        app=app,
        revision=revision,
        strategy=strategy,
        batch=batch,
        max_failures=max_failures,
        canary_bake_seconds=bake,
        health_check=health_check,
    )
    call_with_client(_deploy, stack_name, request, wait, fmt)


async def _deploy(
    client: OpsflowClient, stack_name: str, request: DeployInput, wait: bool, fmt: str
) -> None:
    started = await client.deploy(stack_name, request)
    if fmt != "json":
        click.echo(
            f"deploying {request.app} ({request.strategy}) to {', '.join(started.targets)}: "
            f"{started.deployment_id}"
        )
        click.echo(f"  {run_url(started.deployment_id)}")
        if request.strategy == Strategy.CANARY.value and request.canary_bake_seconds is None:
            click.echo(
                f"  after the first batch: opsflow deploy approve|abort {started.deployment_id}"
            )
    await _finish(client, started, wait, fmt)


@cli.group(
    "deploy",
    cls=DefaultCommandGroup,
    default_command=deploy_app,
    invoke_without_command=False,
)
def deploy() -> None:
    """Deploy an app (STACK APP), or approve or abort a canary deployment at its gate.

    \b
    opsflow deploy STACK APP [--strategy rolling --batch 25%] [--wait]
    opsflow deploy approve DEPLOYMENT_ID
    opsflow deploy abort DEPLOYMENT_ID
    """


@deploy.command("approve")
@click.argument("deployment_id", metavar="DEPLOYMENT_ID")
@with_client
async def deploy_approve(client: OpsflowClient, deployment_id: str) -> None:
    """Let a canary deployment go on past its first batch."""
    await client.approve(deployment_id)
    click.echo(f"{deployment_id}: approved")


@deploy.command("abort")
@click.argument("deployment_id", metavar="DEPLOYMENT_ID")
@with_client
async def deploy_abort(client: OpsflowClient, deployment_id: str) -> None:
    """Stop a canary deployment at its gate and roll its first batch back."""
    await client.abort(deployment_id)
    click.echo(f"{deployment_id}: aborted (rolling the first batch back)")


@cli.command("rollback")
@click.argument("stack_name", metavar="STACK")
@click.argument("app")
@click.option("--to", "release", help="The release to go back to (default: the previous one).")
@wait_option
@output_option
@with_client
async def rollback(
    client: OpsflowClient, stack_name: str, app: str, release: str | None, wait: bool, fmt: str
) -> None:
    """Re-activate each instance's previous release of APP (or --to RELEASE)."""
    request = AppCommandInput(app=app, action=AppAction.ROLLBACK, release=release)
    await _app_command(client, stack_name, request, wait, fmt)


async def _app_command(
    client: OpsflowClient, stack_name: str, request: AppCommandInput, wait: bool, fmt: str
) -> None:
    started = await client.app_command(stack_name, request)
    if fmt != "json":
        click.echo(
            f"{request.action.value} {request.app} on {', '.join(started.targets)}: "
            f"{started.deployment_id}"
        )
        click.echo(f"  {run_url(started.deployment_id)}")
    await _finish(client, started, wait, fmt)


async def _finish(client: OpsflowClient, started: RunCommandResult, wait: bool, fmt: str) -> None:
    """Print the started deployment, or follow it to its end (exit 1 if it did not succeed).

    Ctrl-C while following cancels the deployment, as `run --wait` does.
    """
    if not wait:
        if fmt == "json":
            output.emit_json(started)
        return
    try:
        result = await _follow(client, started.deployment_id, fmt)
    except asyncio.CancelledError:
        click.echo(f"cancelling {started.deployment_id} ...", err=True)
        await asyncio.shield(_cancel_and_wait(client, started.deployment_id))
        raise
    if fmt == "json":
        output.emit_json(result)
    else:
        click.echo(f"{started.deployment_id}: {result.status.value}")


POLL_SECONDS = 0.5


async def _follow(client: OpsflowClient, deployment_id: str, fmt: str) -> DeploymentResult:
    """Wait for the deployment, showing its progress meanwhile: a live table on a terminal,
    one line per instance status change otherwise, nothing with `-o json`."""
    waiting = asyncio.ensure_future(client.wait_deployment(deployment_id))
    try:
        if fmt == "json":
            return await waiting
        if sys.stdout.isatty():
            await _live_progress(client, deployment_id, waiting)
        else:
            await _line_progress(client, deployment_id, waiting)
        return await waiting
    finally:
        if not waiting.done():
            waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError, OpsflowError):
                await waiting


async def _details(
    client: OpsflowClient, deployment_id: str, waiting: asyncio.Future[DeploymentResult]
) -> AsyncIterator[DeploymentDetail]:
    """Yield the deployment's detail every POLL_SECONDS until it ends (and once after)."""
    while True:
        try:
            yield await client.deployment_detail(deployment_id)
        except OpsflowError as err:
            # Progress is a courtesy: the result still comes from wait_deployment.
            click.echo(f"(no progress from {deployment_id}: {err})", err=True)
            return
        if waiting.done():
            return
        await asyncio.wait([waiting], timeout=POLL_SECONDS)


async def _line_progress(
    client: OpsflowClient, deployment_id: str, waiting: asyncio.Future[DeploymentResult]
) -> None:
    seen: dict[str, str] = {}
    gate_shown = False
    async for detail in _details(client, deployment_id, waiting):
        for item in detail.instances:
            line = _instance_line(item)
            if seen.get(item.hostname) != line:
                seen[item.hostname] = line
                click.echo(line)
        if detail.awaiting_approval and not gate_shown:
            click.echo(_approval_line(detail))
        gate_shown = detail.awaiting_approval


async def _live_progress(
    client: OpsflowClient, deployment_id: str, waiting: asyncio.Future[DeploymentResult]
) -> None:
    from rich.console import Console
    from rich.live import Live

    with Live(console=Console(), refresh_per_second=1 / POLL_SECONDS, transient=False) as live:
        async for detail in _details(client, deployment_id, waiting):
            live.update(_progress_view(detail), refresh=True)


def _instance_line(item: InstanceDeployment) -> str:
    parts = [f"{item.hostname}: {item.status.value}", f"batch {item.batch + 1}"]
    if item.release:
        parts.append(f"release {item.release}")
    if item.error:
        parts.append(item.error)
    return "  ".join(parts)


def _approval_line(detail: DeploymentDetail) -> str:
    return (
        f"awaiting approval: opsflow deploy approve {detail.id}  "
        f"(or: opsflow deploy abort {detail.id})"
    )


def _elapsed(started: datetime | None, finished: datetime | None) -> str:
    if started is None:
        return ""
    end = finished or datetime.now(started.tzinfo)
    seconds = max(0, int((end - started).total_seconds()))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _progress_view(detail: DeploymentDetail) -> Any:
    from rich.console import Group
    from rich.table import Table

    batches = len(detail.batches)
    title = f"{detail.command} {detail.app or ''} on {detail.stack}: {detail.status}"
    if batches:
        title += f"  (batch {min(detail.current_batch + 1, batches)}/{batches})"
    table = Table(title=title, show_edge=False, header_style="bold")
    for header in ("INSTANCE", "BATCH", "STATUS", "RELEASE", "ELAPSED", "ERROR"):
        table.add_column(header)
    for item in detail.instances:
        table.add_row(
            item.hostname,
            str(item.batch + 1),
            item.status.value,
            item.release or "",
            _elapsed(item.started_at, item.finished_at),
            item.error or "",
        )
    parts: list[Any] = [table]
    if detail.awaiting_approval:
        parts.append(_approval_line(detail))
    parts.append(f"elapsed {_elapsed(detail.started_at, detail.finished_at)}")
    return Group(*parts)


@cli.group("deployments")
def deployments() -> None:
    """App deployments and commands of a stack, and their detail."""


@deployments.command("list")
@click.argument("stack_name", metavar="STACK")
@output_option
@with_client
async def deployments_list(client: OpsflowClient, stack_name: str, fmt: str) -> None:
    """STACK's deployments and commands, newest first."""
    found = await client.deployments(stack_name)
    if fmt == "json":
        output.emit_json(found)
        return
    output.emit_table(
        ["ID", "APP", "COMMAND", "STRATEGY", "STATUS", "RELEASE", "STARTED", "FINISHED"],
        [
            [
                d.id,
                d.app or "",
                d.command,
                d.strategy,
                d.status,
                d.release or "",
                f"{d.started_at:%Y-%m-%d %H:%M:%S}",
                f"{d.finished_at:%Y-%m-%d %H:%M:%S}" if d.finished_at else "",
            ]
            for d in found
        ],
    )


def _stack_of(deployment_id: str) -> str:
    parts = deployment_id.split(":")
    if len(parts) != 3 or parts[0] != "deployment" or not parts[1]:
        raise click.BadParameter(
            f"{deployment_id!r} is not a deployment id (deployment:STACK:N)",
            param_hint="DEPLOYMENT_ID",
        )
    return parts[1]


@deployments.command("describe")
@click.argument("deployment_id", metavar="DEPLOYMENT_ID")
@output_option
@click.option("--logs", is_flag=True, help="Also print each instance's run log.")
def deployments_describe(deployment_id: str, fmt: str, logs: bool) -> None:
    """A deployment's batches and, per instance, status, release and timing."""
    stack_name = _stack_of(deployment_id)
    call_with_client(_describe_deployment, stack_name, deployment_id, fmt, logs)


async def _describe_deployment(
    client: OpsflowClient, stack_name: str, deployment_id: str, fmt: str, logs: bool
) -> None:
    detail = await client.deployment_detail(deployment_id)
    if fmt == "json":
        output.emit_json(detail)
    else:
        click.echo(
            f"{detail.id}  {detail.command} {detail.app or ''}  strategy={detail.strategy}  "
            f"status={detail.status}"
        )
        click.echo(
            f"revision: {detail.revision or '-'}  release: {detail.release or '-'}  "
            f"started: {detail.started_at:%Y-%m-%d %H:%M:%S}  "
            f"elapsed: {_elapsed(detail.started_at, detail.finished_at)}"
        )
        click.echo(f"runs: {run_url(deployment_id)}")
        if detail.awaiting_approval:
            click.echo(_approval_line(detail))
        output.emit_table(
            ["INSTANCE", "BATCH", "STATUS", "RELEASE", "PREVIOUS", "ELAPSED", "ERROR"],
            [
                [
                    i.hostname,
                    i.batch + 1,
                    i.status.value,
                    i.release,
                    i.previous_release,
                    _elapsed(i.started_at, i.finished_at),
                    i.error,
                ]
                for i in detail.instances
            ],
        )
    if logs:
        for item in detail.instances:
            try:
                found = command_logs.logs_of(stack_name, deployment_id, item.hostname)
            except OpsflowError as err:
                click.echo(f"==> {item.hostname}: {err}", err=True)
                continue
            _print_logs(found)


# ---- schedules of time-based instances --------------------------------------------


@cli.group()
def schedule() -> None:
    """The Temporal Schedules that start and stop time-based instances."""


def _hour_ranges(hours: Sequence[int]) -> str:
    """[8, 12, 13] -> "8,12-13" (9-17 runs from 9:00 until 17:59, as in the stack file)."""
    runs: list[list[int]] = []
    for hour in sorted(hours):
        if runs and hour == runs[-1][1] + 1:
            runs[-1][1] = hour
        else:
            runs.append([hour, hour])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def compact_hours(hours: Mapping[str, Sequence[int]]) -> str:
    """Weekday -> hours as "mon-fri 9-17, sat 10": days in a row with the same hours are
    grouped, days off are left out ("never" when every day is)."""
    shown = [_hour_ranges(hours.get(day, [])) for day in WEEKDAYS]
    parts: list[str] = []
    first = 0
    for day in range(len(WEEKDAYS)):
        if day + 1 < len(WEEKDAYS) and shown[day + 1] == shown[first]:
            continue
        if shown[first]:
            days = WEEKDAYS[first][:3] + ("" if first == day else f"-{WEEKDAYS[day][:3]}")
            parts.append(f"{days} {shown[first]}")
        first = day + 1
    return ", ".join(parts) or "never"


def _paused(view: ScheduleView) -> str:
    if not view.paused:
        return "no"
    return f"yes: {view.note}" if view.note else "yes"


@schedule.command("list")
@click.argument("stack_name", metavar="STACK")
@output_option
@with_client
async def schedule_list(client: OpsflowClient, stack_name: str, fmt: str) -> None:
    """STACK's time-based instances: their hours, whether their schedule is paused, when
    it fires next and when it last ran (times in UTC)."""
    views = await client.schedules(stack_name)
    if fmt == "json":
        output.emit_json(views)
        return
    output.emit_table(
        ["HOSTNAME", "STATUS", "TIMEZONE", "HOURS", "PAUSED", "NEXT RUNS (UTC)", "LAST RUN (UTC)"],
        [
            [
                v.hostname,
                v.status.value,
                v.timezone,
                compact_hours(v.hours),
                _paused(v),
                ", ".join(_utc(at) for at in v.next_runs) or "-",
                _utc(v.recent_runs[-1].at) if v.recent_runs else "-",
            ]
            for v in views
        ],
    )


@schedule.command("pause")
@click.argument("stack_name", metavar="STACK")
@click.argument("hostname")
@click.option("--note", help="Why: shown by `schedule list` and on the Temporal UI.")
@with_client
async def schedule_pause(
    client: OpsflowClient, stack_name: str, hostname: str, note: str | None
) -> None:
    """Stop HOSTNAME's schedule from firing: the instance stays as it is (running or not)
    until the schedule is unpaused."""
    before = await client.pause_schedule(
        stack_name, hostname, note or "paused with `opsflow schedule pause`"
    )
    again = " (it was paused already)" if before.paused else ""
    click.echo(f"schedule of {hostname} paused{again}: {before.schedule_id}")


@schedule.command("unpause")
@click.argument("stack_name", metavar="STACK")
@click.argument("hostname")
@click.option("--note", help="Shown by `schedule list` and on the Temporal UI.")
@with_client
async def schedule_unpause(
    client: OpsflowClient, stack_name: str, hostname: str, note: str | None
) -> None:
    """Let HOSTNAME's schedule fire again, from its next on or off moment (the moments
    missed while paused are not caught up: `schedule trigger` matches the hours now)."""
    before = await client.unpause_schedule(
        stack_name, hostname, note or "unpaused with `opsflow schedule unpause`"
    )
    again = " (it was not paused)" if not before.paused else ""
    click.echo(f"schedule of {hostname} unpaused{again}: {before.schedule_id}")


@schedule.command("trigger")
@click.argument("stack_name", metavar="STACK")
@click.argument("hostname")
@with_client
async def schedule_trigger(client: OpsflowClient, stack_name: str, hostname: str) -> None:
    """Run HOSTNAME's schedule now (even paused): the instance is started or stopped as
    its hours say at this moment; nothing changes if it already is."""
    before = await client.trigger_schedule(stack_name, hostname)
    hours = WeeklySchedule.model_validate({"timezone": before.timezone, **before.hours})
    run, reason = scaling.scheduled(hours, hostname, datetime.now(UTC))
    paused = " (paused: a trigger runs anyway)" if before.paused else ""
    click.echo(f"schedule of {hostname} triggered{paused}: {before.schedule_id}")
    click.echo(f"  {reason}: it should be {'running' if run else 'stopped'}")
    click.echo(
        f"  a start or stop shows in `opsflow stack events {stack_name} --instance {hostname} "
        "--kind scaling`"
    )


# ---- command logs ------------------------------------------------------------------


@cli.group()
def command() -> None:
    """Logs and control of commands (runs) on instances."""


@command.command("cancel")
@click.argument("deployment_id", metavar="COMMAND_ID")
@wait_option
@with_client
async def command_cancel(client: OpsflowClient, deployment_id: str, wait: bool) -> None:
    """Cancel a running command (deployment:STACK:N)."""
    await client.cancel_deployment(deployment_id)
    click.echo(f"cancel requested for {deployment_id}")
    if wait:
        with contextlib.suppress(OperationFailed):
            await client.wait_deployment(deployment_id)
        progress = await client.deployment_progress(deployment_id)
        click.echo(f"{deployment_id}: {progress.status.value}")


@command.command("list")
@click.argument("stack_name", metavar="STACK")
@click.option("--instance", "hostname", help="Only this instance.")
@output_option
def command_list(stack_name: str, hostname: str | None, fmt: str) -> None:
    """Recent recipe runs of STACK (the newest 30 per instance are kept)."""
    runs = command_logs.recent_runs(stack_name, hostname)
    if fmt == "json":
        output.emit_json(runs)
        return
    output.emit_table(
        ["RUN", "INSTANCE", "EVENT", "RECIPES", "EXIT", "FINISHED", "COMMAND"],
        [
            [
                r.get("run_id"),
                r.get("hostname"),
                r.get("event"),
                " ".join(r.get("recipes") or []),
                r.get("exit_code"),
                r.get("finished"),
                r.get("command_id"),
            ]
            for r in runs
        ],
    )


@command.command("log")
@click.argument("stack_name", metavar="STACK")
@click.argument("run_id", metavar="RUN_ID")
@click.option("--instance", "hostname", help="Only this instance's run.")
def command_log(stack_name: str, run_id: str, hostname: str | None) -> None:
    """Print the full log of a run: a per-instance run id, or a command (deployment:STACK:N)
    for the runs it made on each instance."""
    _print_logs(command_logs.logs_of(stack_name, run_id, hostname))


def _print_logs(found: list[tuple[dict[str, Any], str]]) -> None:
    for meta, text in found:
        status = "cancelled" if meta.get("cancelled") else f"exit {meta.get('exit_code')}"
        click.echo(
            f"==> {meta.get('hostname')}  run {meta.get('run_id')}  {meta.get('event')}  "
            f"{' '.join(meta.get('recipes') or [])}  ({status})"
        )
        click.echo(text.rstrip("\n"))


def _main() -> int:
    try:
        code = cli.main(standalone_mode=False)
        return code if isinstance(code, int) else 0
    except click.exceptions.Abort:  # click's form of Ctrl-C
        output.error("interrupted")
        return 130
    except click.ClickException as err:
        err.show()
        return 2 if isinstance(err, click.UsageError | click.BadParameter) else err.exit_code
    except OpsflowError as err:
        output.error(str(err))
        return err.exit_code
    except KeyboardInterrupt:
        output.error("interrupted")
        return 130


def main() -> None:
    code = _main()
    from client.telemetry import flush

    flush()
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal client's Rust runtime can abort the interpreter while it shuts down
    # (temporalio/sdk-python#300); everything is flushed and nothing is left to do.
    os._exit(code)


if __name__ == "__main__":
    main()

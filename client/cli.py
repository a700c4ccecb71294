"""The `opsflow` command line: a thin layer over client/api.py and client/dev.py.

Exit codes: 0 done, 1 the operation failed (the message says where to look), 2 bad input.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import click

from client import command_logs, output
from client.api import OpsflowClient, gone, run_url, settled
from client.connect import connect
from client.stackfile import load_stack_file
from opsflow import names
from opsflow.errors import InvalidInput, OperationFailed, OpsflowError
from opsflow.messages import (
    AddInstanceInput,
    InstanceActionKind,
    InstanceView,
    RunCommandInput,
    StackDescription,
)
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


def with_client(func: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async command body with a connected client."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
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
        ["STACK", "PROVIDER", "LAYERS", "INSTANCES", "ONLINE"],
        [[s.name, s.provider, s.layers, s.instances, s.online] for s in stacks],
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
    _instance_table(found)
    click.echo("recent events:")
    for event in found.events[-10:]:
        click.echo(f"  {event.at:%Y-%m-%d %H:%M:%S}  {event.kind:16} {event.message}")


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


RUN_COMMANDS = ["setup", "configure", "execute_recipes", "update_custom_cookbooks"]


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
@wait_option
@output_option
@with_client
async def run_command(
    client: OpsflowClient,
    stack_name: str,
    command: str,
    layer: str | None,
    hostname: str | None,
    recipes: list[str],
    wait: bool,
    fmt: str,
) -> None:
    """Run a command (a lifecycle event's recipes, or chosen recipes) on online instances.

    With --wait, Ctrl-C cancels the command: queued runs are dropped and running recipes
    are stopped on the instances.
    """
    if layer and hostname:
        raise InvalidInput("--layer and --instance: give one or the other")
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
    found = command_logs.logs_of(stack_name, run_id, hostname)
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

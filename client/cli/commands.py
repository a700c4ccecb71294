"""`opsflow run` (a command on online instances) and `opsflow command` (cancel a command,
list and print the logs of the recipe runs it made)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import click

from client.cli import render
from client.cli.deploy import app_command
from client.cli.session import (
    call_with_client,
    cancel_and_wait,
    custom_json_option,
    output_option,
    wait_option,
    with_client,
)
from opsflow import names
from opsflow.errors import InvalidInput, OperationFailed

if TYPE_CHECKING:
    from client.api import OpsflowClient

# App commands take --app and act on the instances of the app's layers.
APP_COMMANDS = ["undeploy", "start", "stop", "restart"]
RUN_COMMANDS = ["setup", "configure", "execute_recipes", "update_custom_cookbooks", *APP_COMMANDS]


def _recipe_list(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str]:
    if not value:
        return []
    recipes = names.split_recipe_list(value)
    problem = names.recipes_problem(recipes)
    if problem is not None:
        raise click.BadParameter(problem)  # click names the option
    return recipes


@click.command("run")
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
@custom_json_option
@wait_option
@output_option
def run_command(
    stack_name: str,
    command: str,
    layer: str | None,
    hostname: str | None,
    recipes: list[str],
    app: str | None,
    custom_json: dict[str, Any] | None,
    wait: bool,
    fmt: str,
) -> None:
    """Run a command (a lifecycle event's recipes, or chosen recipes) on online instances;
    `undeploy --app APP` removes an app from the instances of its layers, and `start`,
    `stop`, `restart --app APP` run its layers' deploy recipes with OPSFLOW_EVENT set to
    the command, on the current release. --custom-json is seen by every recipe of this
    command only, over the stack's and the layers' custom JSON.

    With --wait, Ctrl-C cancels the command: queued runs are dropped and running recipes
    are stopped on the instances.
    """
    if command in APP_COMMANDS:
        from opsflow.messages import AppAction, AppCommandInput

        if not app:
            raise click.UsageError(f"{command} needs --app APP")
        if layer or hostname or recipes:
            raise click.UsageError(
                f"{command}: --layer, --instance and --recipes do not apply (an app "
                "command acts on every instance of the app's layers)"
            )
        request = AppCommandInput(app=app, action=AppAction(command), custom_json=custom_json)
        call_with_client(app_command, stack_name, request, wait, fmt)
        return
    if app:
        raise click.UsageError(f"--app: only {', '.join(APP_COMMANDS)} take an app, not {command}")
    if layer and hostname:
        raise InvalidInput("--layer and --instance: give one or the other")
    call_with_client(
        _run_recipes, stack_name, command, layer, hostname, recipes, custom_json, wait, fmt
    )


async def _run_recipes(
    client: OpsflowClient,
    stack_name: str,
    command: str,
    layer: str | None,
    hostname: str | None,
    recipes: list[str],
    custom_json: dict[str, Any] | None,
    wait: bool,
    fmt: str,
) -> None:
    import asyncio

    from client.api import run_url
    from client.stackfile import repack
    from opsflow.messages import RunCommandInput

    artifact = None
    if command == "update_custom_cookbooks":
        # The cookbooks as they are now, when their directory is on this machine.
        artifact = repack((await client.describe(stack_name)).spec.cookbooks)
    started = await client.run_command(
        stack_name,
        RunCommandInput(
            command=command,
            layer=layer,
            instance=hostname,
            recipes=recipes,
            artifact=artifact,
            custom_json=custom_json,
        ),
    )
    if fmt != "json":
        click.echo(f"{command} on {', '.join(started.targets)}: {started.deployment_id}")
        click.echo(f"  {run_url(started.deployment_id)}")
    if not wait:
        if fmt == "json":
            render.emit_json(started)
        return
    try:
        result = await client.wait_deployment(started.deployment_id)
    except asyncio.CancelledError:
        # Ctrl-C: asyncio.run cancels this task; stop the command before leaving.
        click.echo(f"cancelling {started.deployment_id} ...", err=True)
        await asyncio.shield(cancel_and_wait(client, started.deployment_id))
        raise
    if fmt == "json":
        render.emit_json(result)
        return
    for item in result.instances:
        state = "skipped" if item.skipped else ("ok" if item.ok else "failed")
        extra = f" ({item.error})" if item.error else ""
        click.echo(f"  {item.hostname}: {state}{extra}  run {item.run_id or '-'}")


@click.group()
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
    from client import command_logs

    runs = command_logs.recent_runs(stack_name, hostname)
    if fmt == "json":
        render.emit_json(runs)
        return
    render.emit_table(
        ["RUN", "INSTANCE", "EVENT", "RECIPES", "EXIT", "FINISHED", "COMMAND"],
        [
            [
                r.run_id,
                r.hostname,
                r.event,
                " ".join(r.recipes),
                r.exit_code,
                r.finished,
                r.command_id,
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
    from client import command_logs

    render.print_logs(command_logs.logs_of(stack_name, run_id, hostname))

"""`opsflow stack`: plan, apply, list, describe, events and delete stacks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from client.cli import render
from client.cli.session import (
    call_with_client,
    fail_if_failed,
    output_option,
    wait_option,
    with_client,
)
from opsflow import names
from opsflow.errors import Unreachable

if TYPE_CHECKING:
    from datetime import datetime

    from client.api import OpsflowClient
    from opsflow.messages import InstanceStatusLine
    from opsflow.spec import StackSpec


@click.group()
def stack() -> None:
    """Create, change, inspect and delete stacks."""


@stack.command("plan")
@click.argument("file", type=click.Path(dir_okay=False))
@output_option
def stack_plan(file: str, fmt: str) -> None:
    """Validate FILE and show what apply would change; change nothing.

    FILE is validated first (exit 2 if it is not valid); when no Temporal answers at
    the configured address (TEMPORAL_ADDRESS or a profile), that is all (offline: nothing
    compared, exit 0).
    """
    from client.stackfile import load_stack_file
    from runtime import connection, temporal_config
    from runtime.sealing import Sealer

    # The plan's spec is compared here and never sent: no workers' key is needed.
    spec = load_stack_file(file, Sealer.throwaway())
    _refuse_users_on_this_host(spec, file)
    address = temporal_config.address()
    # Probed first: a Temporal that is certainly not there costs no temporalio import.
    if connection.answers(address):
        try:
            call_with_client(_plan, spec, fmt)
            return
        except Unreachable:
            pass
    note = f"validated offline: Temporal at {address} did not answer, nothing compared"
    if fmt == "json":
        click.echo(note, err=True)
        render.emit_json(None)  # not compared: null, not a list of changes
    else:
        click.echo(note)


async def _plan(client: OpsflowClient, spec: StackSpec, fmt: str) -> None:
    changes = await client.plan(spec)
    if fmt == "json":
        render.emit_json(changes)
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
    from client.api import run_url, settled
    from client.stackfile import load_stack_file
    from runtime.artifacts import open_store

    # The source directories go into the artifact store before the update is sent.
    spec = load_stack_file(file, store=open_store())
    _refuse_users_on_this_host(spec, file)
    if spec.provider == "local":
        _say_if_not_isolated()
    before = await _status_times(client, spec.name) if wait else {}
    result = await client.apply(spec, source_file=file)
    if fmt == "json" and not wait:
        render.emit_json(result)
        return
    if fmt != "json":
        for change in result.changes or ["no changes"]:
            click.echo(f"  {change}")
    if not wait:
        click.echo(f"stack {spec.name}: {run_url(names.stack_workflow_id(spec.name))}")
        return
    declared = list(spec.declared_instances())
    # An instance this apply starts again (stopped, or failed) shows its old, settled
    # status until its start runs: only a status newer than before the apply counts.
    restarted = {h: before[h] for h in result.started if h in before}

    def done(line: InstanceStatusLine | None) -> bool:
        stale = line is not None and restarted.get(line.hostname, False) == line.updated_at
        return not stale and settled(line)

    found = await client.wait_instances(spec.name, done, declared)
    if fmt == "json":
        render.emit_json(found.instances)
    else:
        render.instance_table(found)
    await fail_if_failed(client, found, declared)


async def _status_times(client: OpsflowClient, stack: str) -> dict[str, datetime | None]:
    """Each instance's last status change, before an apply (none for a new stack)."""
    from opsflow.errors import NotFound

    try:
        return {line.hostname: line.updated_at for line in await client.statuses(stack)}
    except NotFound:
        return {}


def _refuse_users_on_this_host(spec: StackSpec, file: str) -> None:
    """A local stack with `users:` where local instances are not isolated machines: they
    would share this host's /etc, and opsflow never makes Unix users on the host itself
    (exit 2, before anything is sent; the runner refuses again on the worker)."""
    from opsflow.errors import InvalidInput
    from opsflow.settings import Isolation, isolation
    from runtime.local_network import isolation_problem

    if spec.provider != "local" or not spec.users:
        return
    if isolation() == Isolation.NONE:
        why = "OPSFLOW_ISOLATION=none"
    elif (problem := isolation_problem()) is not None:
        why = problem
    else:
        return
    raise InvalidInput(
        f"{file}: users: local instances are not isolated machines here ({why}); they "
        "would share this host's /etc, and opsflow does not create Unix users on its own "
        "host. Make local instances isolated machines (OPSFLOW_ISOLATION=auto, as root) "
        "or remove `users:`"
    )


def _say_if_not_isolated() -> None:
    """One line when this host cannot make isolated local instances (the embedded
    default's worker is on this host): recipes will share this host's files."""
    from opsflow.settings import Isolation, isolation
    from runtime.local_network import isolation_problem

    if isolation() != Isolation.NONE and (problem := isolation_problem()) is not None:
        click.echo(
            f"note: local instances are not isolated here ({problem}): they run as sshd "
            "processes sharing this host's files",
            err=True,
        )


@stack.command("list")
@output_option
@with_client
async def stack_list(client: OpsflowClient, fmt: str) -> None:
    """Every stack."""
    stacks = await client.list_stacks()
    if fmt == "json":
        render.emit_json(stacks)
        return
    render.emit_table(
        ["STACK", "PROVIDER", "LAYERS", "INSTANCES", "ONLINE", "PROBLEM"],
        [[s.name, s.provider, s.layers, s.instances, s.online, s.problem or ""] for s in stacks],
    )


@stack.command("describe")
@click.argument("name")
@output_option
@with_client
async def stack_describe(client: OpsflowClient, name: str, fmt: str) -> None:
    """A stack's spec, instances and recent events."""
    from client.api import run_url
    from opsflow.secrets import MASK, SecureValue

    found = await client.describe(name)
    if fmt == "json":
        render.emit_json(found)
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
    render.instance_table(found)
    click.echo("recent events:")
    for event in found.events[-10:]:
        click.echo(f"  {event.at:%Y-%m-%d %H:%M:%S}  {event.kind:16} {event.message}")


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
        render.emit_json(found)
        return
    render.emit_table(
        ["TIME (UTC)", "KIND", "INSTANCE", "MESSAGE"],
        [[render.utc(e.at), e.kind, e.hostname or "", render.event_message(e)] for e in found],
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

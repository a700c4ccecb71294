"""`opsflow deployments`: a stack's deployments and commands, and one's detail."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from client.cli import render
from client.cli.session import call_with_client, output_option, with_client
from opsflow import names
from opsflow.errors import InvalidInput, OpsflowError

if TYPE_CHECKING:
    from client.api import OpsflowClient


@click.group("deployments")
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
        render.emit_json(found)
        return
    render.emit_table(
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
    try:
        stack, _ = names.parse_deployment_id(deployment_id)
    except InvalidInput as err:
        raise click.BadParameter(str(err), param_hint="DEPLOYMENT_ID") from None
    return stack


def deployment_id_argument(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A click callback: DEPLOYMENT_ID is one (deployment:STACK:N), or exit 2 naming it."""
    _stack_of(value)
    return value


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
    from client import command_logs
    from client.api import run_url

    detail = await client.deployment_detail(deployment_id)
    if fmt == "json":
        render.emit_json(detail)
    else:
        click.echo(
            f"{detail.id}  {detail.command} {detail.app or ''}  strategy={detail.strategy}  "
            f"status={detail.status}"
        )
        click.echo(
            f"revision: {detail.revision or '-'}  release: {detail.release or '-'}  "
            f"started: {detail.started_at:%Y-%m-%d %H:%M:%S}  "
            f"elapsed: {render.elapsed(detail.started_at, detail.finished_at)}"
        )
        click.echo(f"runs: {run_url(deployment_id)}")
        if detail.custom_json is not None:
            click.echo(f"custom json: {json.dumps(detail.custom_json, sort_keys=True)}")
        if detail.awaiting_approval:
            click.echo(render.approval_line(detail))
        render.emit_table(
            ["INSTANCE", "BATCH", "STATUS", "RELEASE", "PREVIOUS", "ELAPSED", "ERROR"],
            [
                [
                    i.hostname,
                    i.batch + 1,
                    i.status.value,
                    i.release,
                    i.previous_release,
                    render.elapsed(i.started_at, i.finished_at),
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
            render.print_logs(found)

"""Following a deployment to its end: a live table on a terminal, one line per instance
status change otherwise, nothing with `-o json`; Ctrl-C cancels it."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import click

from client.cli import render
from client.cli.session import cancel_and_wait
from opsflow.errors import OpsflowError

if TYPE_CHECKING:
    import asyncio

    from client.api import OpsflowClient
    from opsflow.messages import DeploymentDetail, DeploymentEnd, DeploymentResult, RunCommandResult

POLL_SECONDS = 0.5


async def finish(client: OpsflowClient, started: RunCommandResult, wait: bool, fmt: str) -> None:
    """Print the started deployment, or follow it to its end (exit 1 if it did not succeed).

    Ctrl-C while following cancels the deployment, as `run --wait` does.
    """
    import asyncio

    if not wait:
        if fmt == "json":
            render.emit_json(started)
        return
    try:
        result = await _follow(client, started.deployment_id, fmt)
    except asyncio.CancelledError:
        click.echo(f"cancelling {started.deployment_id} ...", err=True)
        await asyncio.shield(cancel_and_wait(client, started.deployment_id))
        raise
    if fmt == "json":
        render.emit_json(result)
    else:
        click.echo(f"{started.deployment_id}: {result.status.value}")


async def _follow(client: OpsflowClient, deployment_id: str, fmt: str) -> DeploymentResult:
    """Wait for the deployment, showing its progress meanwhile: a live table on a terminal,
    one line per instance status change otherwise, nothing with `-o json`."""
    import asyncio

    from client.api.deployments import require_success

    # The end comes from the server as soon as it is decided (the `ended` update), not
    # from polling; the progress shown meanwhile is polled.
    waiting = asyncio.ensure_future(client.deployment_end(deployment_id))
    try:
        if fmt != "json":
            if sys.stdout.isatty():
                await _live_progress(client, deployment_id, waiting)
            else:
                await _line_progress(client, deployment_id, waiting)
        return require_success((await waiting).result)
    finally:
        if not waiting.done():
            waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError, OpsflowError):
                await waiting


async def _details(
    client: OpsflowClient, deployment_id: str, waiting: asyncio.Future[DeploymentEnd]
) -> AsyncIterator[DeploymentDetail]:
    """Yield the deployment's detail every POLL_SECONDS until it ends, then its last one:
    from the end itself when it has it (a query of the closed run would replay it)."""
    import asyncio

    while True:
        ended = waiting.done()
        last = waiting.result().detail if _ended(waiting) else None
        if last is not None:
            yield last
            return
        try:
            yield await client.deployment_detail(deployment_id)
        except OpsflowError as err:
            # Progress is a courtesy: the result still comes from deployment_end.
            click.echo(f"(no progress from {deployment_id}: {err})", err=True)
            return
        if ended:
            return
        await asyncio.wait([waiting], timeout=POLL_SECONDS)


def _ended(waiting: asyncio.Future[DeploymentEnd]) -> bool:
    """Whether the end came (not an error: `_follow` raises that)."""
    return waiting.done() and not waiting.cancelled() and waiting.exception() is None


async def _line_progress(
    client: OpsflowClient, deployment_id: str, waiting: asyncio.Future[DeploymentEnd]
) -> None:
    seen: dict[str, str] = {}
    gate_shown = False
    async for detail in _details(client, deployment_id, waiting):
        for item in detail.instances:
            line = render.instance_line(item)
            if seen.get(item.hostname) != line:
                seen[item.hostname] = line
                click.echo(line)
        if detail.awaiting_approval and not gate_shown:
            click.echo(render.approval_line(detail))
        gate_shown = detail.awaiting_approval


async def _live_progress(
    client: OpsflowClient, deployment_id: str, waiting: asyncio.Future[DeploymentEnd]
) -> None:
    from rich.console import Console
    from rich.live import Live

    with Live(console=Console(), refresh_per_second=1 / POLL_SECONDS, transient=False) as live:
        async for detail in _details(client, deployment_id, waiting):
            live.update(render.progress_view(detail), refresh=True)

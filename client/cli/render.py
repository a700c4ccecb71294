"""What the CLI prints: tables for people, JSON for programs, and the shared lines and views
(instances, events, run logs, deployment progress) more than one command shows.

rich and pydantic are imported where a table or a model is rendered, not at import: every
command, `--help` included, would pay for them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from opsflow.messages import (
        DeploymentDetail,
        InstanceDeployment,
        StackDescription,
        StackEvent,
    )
    from opsflow.run_logs import RunLog

FORMATS = ("table", "json")


def as_jsonable(value: Any) -> Any:
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [as_jsonable(v) for v in value]
    return value


def emit_json(value: Any) -> None:
    """`value` as JSON, every secure value (a stack spec's encrypted environment) masked."""
    from opsflow.secrets import conceal

    click.echo(json.dumps(conceal(as_jsonable(value)), indent=2, sort_keys=False))


def emit_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None
) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, show_edge=False, header_style="bold")
    for header in headers:
        table.add_column(header)
    for row in rows:
        # Text, not str: a cell is shown as is, never read as rich markup ("[bold]").
        table.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    Console(soft_wrap=True).print(table)


def error(message: str) -> None:
    click.echo(f"error: {message}", err=True)


def utc(at: datetime) -> str:
    """A moment as UTC ISO 8601 to the second: 2025-01-02T03:04:05Z."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def instance_table(found: StackDescription) -> None:
    emit_table(
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


def event_message(event: StackEvent) -> str:
    """The message, and the health check output that triggered the event on lines below."""
    check = event.details.get("check")
    if check is None or str(check).strip() == "":
        return event.message
    lines = str(check).strip().splitlines()
    return "\n".join([event.message, f"  check: {lines[0]}", *(f"    {x}" for x in lines[1:])])


def print_logs(found: Sequence[RunLog]) -> None:
    for meta, text in found:
        status = "cancelled" if meta.cancelled else f"exit {meta.exit_code}"
        click.echo(
            f"==> {meta.hostname}  run {meta.run_id}  {meta.event}  "
            f"{' '.join(meta.recipes)}  ({status})"
        )
        click.echo(text.rstrip("\n"))


# ---- deployment progress -------------------------------------------------------------


def instance_line(item: InstanceDeployment) -> str:
    parts = [f"{item.hostname}: {item.status.value}", f"batch {item.batch + 1}"]
    if item.release:
        parts.append(f"release {item.release}")
    if item.error:
        parts.append(item.error)
    return "  ".join(parts)


def approval_line(detail: DeploymentDetail) -> str:
    return (
        f"awaiting approval: opsflow deploy approve {detail.id}  "
        f"(or: opsflow deploy abort {detail.id})"
    )


def elapsed(started: datetime | None, finished: datetime | None) -> str:
    if started is None:
        return ""
    end = finished or datetime.now(started.tzinfo)
    seconds = max(0, int((end - started).total_seconds()))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def progress_view(detail: DeploymentDetail) -> Any:
    """The live table `deploy --wait` shows on a terminal (a rich renderable)."""
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
            elapsed(item.started_at, item.finished_at),
            item.error or "",
        )
    parts: list[Any] = [table]
    if detail.awaiting_approval:
        parts.append(approval_line(detail))
    parts.append(f"elapsed {elapsed(detail.started_at, detail.finished_at)}")
    return Group(*parts)

"""`opsflow dev`: the embedded environment (client/dev.py does the work)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from client.cli import render
from client.cli.session import output_option

if TYPE_CHECKING:
    from client.dev import PartStatus


@click.group()
def dev() -> None:
    """The embedded environment: Temporal dev server + UI and one worker."""


def _show_parts(parts: list[PartStatus], fmt: str) -> None:
    if fmt == "json":
        render.emit_json(parts)
        return
    render.emit_table(
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

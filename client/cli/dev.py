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
    """Start whatever part is not running; leave running parts alone. Says in one line
    how local instances are made here (isolated machines, or why not)."""
    from client import dev as devenv
    from runtime.local_network import isolation_summary

    # Before anything starts: a taken or malformed OPSFLOW_NETWORK stops here.
    _, line = isolation_summary(claim=True)
    click.echo(line, err=fmt == "json")
    parts = devenv.up()
    _show_parts(parts, fmt)
    ui = next((p.ui for p in parts if p.ui), None)
    if fmt != "json" and ui:
        click.echo(f"Temporal UI: {ui}")


@dev.command("down")
@output_option
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Also stop every isolated machine of this OPSFLOW_HOME (disks kept) and remove "
    "their namespaces and bridge.",
)
def dev_down(fmt: str, everything: bool) -> None:
    """Stop the worker and the dev server (local instances keep running, unless --all)."""
    from client import dev as devenv

    parts = devenv.down()
    if everything:
        from runtime.local_network import reap_home

        machines = reap_home()
        click.echo(
            f"stopped {len(machines)} isolated machine(s); bridge removed", err=fmt == "json"
        )
    _show_parts(parts, fmt)


@dev.command("status")
@output_option
def dev_status(fmt: str) -> None:
    """Each part with its process id, address and log file."""
    from client import dev as devenv

    _show_parts(devenv.status(), fmt)

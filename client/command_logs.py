"""Find saved recipe-run logs by command or run id (read from the worker's OPSFLOW_HOME).

The embedded worker and the CLI share OPSFLOW_HOME; a worker elsewhere keeps its logs on
its own disk (its Temporal UI failure messages still carry each failed run's tail).
"""

from __future__ import annotations

from typing import Any

from activities import run_logs
from opsflow import names, settings
from opsflow.errors import InvalidInput, NotFound


def _hostnames(stack: str, only: str | None) -> list[str]:
    if not names.STACK_NAME.match(stack):
        raise InvalidInput(f"invalid stack name {stack!r}")
    if only is not None:
        return [only]
    top = settings.run_logs_dir() / stack
    if not top.is_dir():
        return []
    return sorted(d.name for d in top.iterdir() if d.is_dir() and names.HOSTNAME.match(d.name))


def recent_runs(stack: str, hostname: str | None = None) -> list[dict[str, Any]]:
    """Metadata of the saved runs, newest first."""
    runs = [meta for h in _hostnames(stack, hostname) for meta in run_logs.list_run_logs(stack, h)]
    return sorted(runs, key=lambda m: str(m.get("finished") or ""), reverse=True)


def logs_of(
    stack: str, run_or_command: str, hostname: str | None = None
) -> list[tuple[dict[str, Any], str]]:
    """(metadata, log) of one run id, or of every run a command made; NotFound if none."""
    found: list[tuple[dict[str, Any], str]] = []
    for host in _hostnames(stack, hostname):
        for meta in run_logs.list_run_logs(stack, host):
            command = str(meta.get("command_id") or "")
            if meta.get("run_id") == run_or_command or command == f"{run_or_command}:{host}":
                found.append(run_logs.read_run_log(stack, host, str(meta["run_id"])))
    if not found:
        where = f"{stack}/{hostname}" if hostname else stack
        raise NotFound(
            f"no saved log for {run_or_command!r} on {where} (`opsflow command list {stack}` "
            f"shows the saved runs; logs live in {settings.run_logs_dir()} on the worker)"
        )
    return sorted(found, key=lambda pair: str(pair[0].get("hostname")))

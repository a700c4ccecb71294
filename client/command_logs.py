"""Find saved recipe-run logs by command or run id (read from the worker's OPSFLOW_HOME).

The embedded worker and the CLI share OPSFLOW_HOME; a worker elsewhere keeps its logs on
its own disk (its Temporal UI failure messages still carry each failed run's tail).
"""

from __future__ import annotations

from pydantic import ValidationError

from opsflow import names, settings
from opsflow.errors import InvalidInput, NotFound
from opsflow.run_logs import RunLog, RunLogMeta
from runtime import run_logs


def _hostnames(stack: str, only: str | None) -> list[str]:
    if not names.STACK_NAME.fullmatch(stack):
        raise InvalidInput(f"invalid stack name {stack!r}")
    if only is not None:
        return [only]
    top = settings.run_logs_dir() / stack
    if not top.is_dir():
        return []
    return sorted(d.name for d in top.iterdir() if d.is_dir() and names.HOSTNAME.fullmatch(d.name))


def _saved(stack: str, hostname: str) -> list[RunLogMeta]:
    """The instance's saved runs, newest first (a file that is no run's metadata is skipped,
    as one that is no JSON is)."""
    found: list[RunLogMeta] = []
    for fields in run_logs.list_run_logs(stack, hostname):
        try:
            found.append(RunLogMeta.model_validate(fields))
        except ValidationError:
            continue
    return found


def recent_runs(stack: str, hostname: str | None = None) -> list[RunLogMeta]:
    """Metadata of the saved runs, newest first."""
    runs = [meta for h in _hostnames(stack, hostname) for meta in _saved(stack, h)]
    return sorted(runs, key=lambda m: m.finished, reverse=True)


def logs_of(stack: str, run_or_command: str, hostname: str | None = None) -> list[RunLog]:
    """(metadata, log) of one run id, or of every run a command made; NotFound if none."""
    found: list[RunLog] = []
    for host in _hostnames(stack, hostname):
        for meta in _saved(stack, host):
            if meta.run_id == run_or_command or meta.command_id == f"{run_or_command}:{host}":
                fields, text = run_logs.read_run_log(stack, host, meta.run_id)
                found.append((RunLogMeta.model_validate(fields), text))
    if not found:
        where = f"{stack}/{hostname}" if hostname else stack
        raise NotFound(
            f"no saved log for {run_or_command!r} on {where} (`opsflow command list {stack}` "
            f"shows the saved runs; logs live in {settings.run_logs_dir()} on the worker)"
        )
    return sorted(found, key=lambda pair: pair[0].hostname)

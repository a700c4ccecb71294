"""Full logs of recipe runs, kept on the worker: `settings.run_logs_dir()/{stack}/{hostname}/`.

Each run that ends (success, failure, cancellation, also when a retry re-attached to it)
leaves two files there, written by the recipe runner:

    {run_id}.log    the run's whole log, one UTC-timestamped line per output line
    {run_id}.json   what the run was (opsflow.run_logs.RunLogMeta): stack, hostname,
                    run_id, command_id, event, recipes, configuration_manager, exit_code,
                    failed_recipe, started, finished (UTC ISO 8601), attached, cancelled,
                    stage_only

Only the newest KEEP_RUNS runs of an instance are kept (by save time); older pairs are
removed whenever a run is saved. Files are written aside and renamed into place, so a
reader never sees half a file.

Reading (for `opsflow command log STACK RUN_ID [--instance H]`): `read_run_log`,
`list_run_logs`, `find_run_logs` give each file's fields as saved; `RunLogMeta` reads them
(client/command_logs.py), and saving refuses fields it could not read. Names are checked
against opsflow's name rules before they reach a path: a bad one is InvalidInput, a run
without a saved log NotFound. Here because the recipe runner (activities/) writes the files and the
CLI (client/) reads them: neither imports the other.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from opsflow import settings
from opsflow.errors import InvalidInput, NotFound
from opsflow.names import HOSTNAME, STACK_NAME
from opsflow.run_logs import RunLogMeta

KEEP_RUNS = 30
# Run ids name files here and directories on instances: no slash, no leading dot,
# nothing a shell would interpret.
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,199}$")


def _check(stack: str, hostname: str, run_id: str | None = None) -> None:
    if not STACK_NAME.fullmatch(stack):
        raise InvalidInput(f"invalid stack name {stack!r}")
    if not HOSTNAME.fullmatch(hostname):
        raise InvalidInput(f"invalid hostname {hostname!r}")
    if run_id is not None and not RUN_ID.fullmatch(run_id):
        raise InvalidInput(f"invalid run id {run_id!r}")


def instance_dir(stack: str, hostname: str) -> Path:
    """Where the logs of one instance's runs are kept."""
    _check(stack, hostname)
    return settings.run_logs_dir() / stack / hostname


def save_run_log(meta: RunLogMeta | Mapping[str, Any], text: str, *, keep: int = KEEP_RUNS) -> Path:
    """Write one run's log and metadata (a RunLogMeta, or its fields: stack, hostname and
    run_id at least; ValueError if they do not make one), then prune the instance's older
    runs down to `keep`. Returns the .log path."""
    if isinstance(meta, RunLogMeta):
        fields = meta.model_dump(mode="json")
    else:
        RunLogMeta.model_validate(meta)  # what is saved, a reader can read
        fields = dict(meta)
    stack, hostname, run_id = str(fields["stack"]), str(fields["hostname"]), str(fields["run_id"])
    _check(stack, hostname, run_id)
    directory = instance_dir(stack, hostname)
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / f"{run_id}.log"
    _write(log, text.encode())
    info = directory / f"{run_id}.json"
    _write(info, (json.dumps(fields, indent=2, sort_keys=True) + "\n").encode())
    # The save time orders the runs: set it exactly (file times are only as fine as a
    # kernel tick, so runs saved in quick succession could otherwise tie).
    now = time.time_ns()
    os.utime(info, ns=(now, now))
    _prune(directory, keep)
    return log


def _write(path: Path, data: bytes) -> None:
    aside = path.with_name(f".{path.name}.tmp")
    aside.write_bytes(data)
    aside.replace(path)


def _by_age(directory: Path) -> list[Path]:
    """The .json files of `directory`, newest first."""
    entries: list[tuple[int, str, Path]] = []
    for path in directory.glob("*.json"):
        try:
            entries.append((path.stat().st_mtime_ns, path.name, path))
        except FileNotFoundError:  # pruned meanwhile
            continue
    return [path for *_, path in sorted(entries, reverse=True)]


def _prune(directory: Path, keep: int) -> None:
    for info in _by_age(directory)[max(keep, 0) :]:
        info.unlink(missing_ok=True)
        info.with_suffix(".log").unlink(missing_ok=True)


def read_run_log(stack: str, hostname: str, run_id: str) -> tuple[dict[str, Any], str]:
    """(metadata, full log text) of one saved run."""
    _check(stack, hostname, run_id)
    directory = instance_dir(stack, hostname)
    try:
        meta = json.loads((directory / f"{run_id}.json").read_text())
        text = (directory / f"{run_id}.log").read_text(errors="replace")
    except FileNotFoundError:
        raise NotFound(
            f"no saved log of run {run_id} on {stack}/{hostname} (only the newest "
            f"{KEEP_RUNS} runs of an instance are kept, on the worker that ran them)"
        ) from None
    return meta, text


def list_run_logs(stack: str, hostname: str) -> list[dict[str, Any]]:
    """The metadata of every saved run of one instance, newest first."""
    directory = instance_dir(stack, hostname)
    if not directory.is_dir():
        return []
    found: list[dict[str, Any]] = []
    for info in _by_age(directory):
        try:
            found.append(json.loads(info.read_text()))
        except (FileNotFoundError, json.JSONDecodeError):
            continue
    return found


def find_run_logs(stack: str, run_id: str) -> list[dict[str, Any]]:
    """The metadata of run `run_id` on every instance of `stack` that saved it."""
    if not STACK_NAME.fullmatch(stack):
        raise InvalidInput(f"invalid stack name {stack!r}")
    if not RUN_ID.fullmatch(run_id):
        raise InvalidInput(f"invalid run id {run_id!r}")
    top = settings.run_logs_dir() / stack
    if not top.is_dir():
        return []
    found: list[dict[str, Any]] = []
    for directory in sorted(top.iterdir()):
        info = directory / f"{run_id}.json"
        if HOSTNAME.fullmatch(directory.name) and info.is_file():
            found.append(json.loads(info.read_text()))
    return found

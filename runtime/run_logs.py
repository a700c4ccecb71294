"""Full logs of recipe runs, kept in the artifact store (runtime/artifacts.py), so the CLI
finds them from any machine that names the same store (OPSFLOW_ARTIFACTS).

Each run that ends (success, failure, cancellation, also when a retry re-attached to it)
is saved by the recipe runner as:

    blob {sha256}                   the run's whole log, one UTC-timestamped line per
                                    output line, secure values already redacted
    named runs/{stack}/{hostname}.json
                                    the instance's index (opsflow.run_logs): its newest
                                    KEEP_RUNS runs, newest first, each a RunLogMeta (stack,
                                    hostname, run_id, command_id, event, recipes,
                                    configuration_manager, exit_code, failed_recipe,
                                    started, finished, attached, cancelled, stage_only)
                                    and the digest of its log

One index per instance, not one object per run: `command list STACK` then costs one
list_named for the stack and one read per instance, where per-run objects would cost one
read per run (30,000 for a 1000-instance stack). Saving reads, changes and replaces the
index (write_named is atomic, so a reader sees the old index or the new); runs of one
instance are serial (its instance workflow's queue), so an index has one writer at a time.

The blobs of runs cut from an index are left to the store's pruning, not deleted here:
a blob is named by its bytes, so another run's log (two empty logs) or another artifact
may be the same blob, and only the store's pruning sees every reference.

Logs saved before the store, as files on the worker's disk
(`settings.run_logs_dir()/{stack}/{hostname}/{run_id}.log|.json`), are still read, after
the store's, by a CLI on that machine; nothing writes them any more.

`read_run_log`, `list_run_logs`, `find_run_logs` give each run's fields as saved;
`RunLogMeta` reads them (client/command_logs.py), and saving refuses fields it could not
read. Names are checked against opsflow's name rules before they reach a store name or a
path: a bad one is InvalidInput, a run without a saved log NotFound. Here because the
recipe runner (activities/) writes the logs and the CLI (client/) reads them: neither
imports the other.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from opsflow import settings
from opsflow.errors import InvalidInput, NotFound
from opsflow.names import HOSTNAME, STACK_NAME
from opsflow.run_logs import RunLogMeta, SavedRun, index_document, parse_index, with_run
from runtime.artifacts import ArtifactStore, open_store

KEEP_RUNS = 30
# Run ids name store objects, files here and directories on instances: no slash, no
# leading dot, nothing a shell would interpret.
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,199}$")
_INDEX_SUFFIX = ".json"


def _check(stack: str, hostname: str | None = None, run_id: str | None = None) -> None:
    if not STACK_NAME.fullmatch(stack):
        raise InvalidInput(f"invalid stack name {stack!r}")
    if hostname is not None and not HOSTNAME.fullmatch(hostname):
        raise InvalidInput(f"invalid hostname {hostname!r}")
    if run_id is not None and not RUN_ID.fullmatch(run_id):
        raise InvalidInput(f"invalid run id {run_id!r}")


def index_name(stack: str, hostname: str) -> str:
    """The store name of an instance's run index."""
    _check(stack, hostname)
    return f"runs/{stack}/{hostname}{_INDEX_SUFFIX}"


@dataclass(frozen=True)
class Saved:
    """A saved run and where its log is: a blob in the store, or (saved before the store)
    a file on this machine's disk."""

    meta: RunLogMeta
    fields: dict[str, Any]  # as saved, for readers that want them untyped
    digest: str | None = None
    path: Path | None = None


def save_run_log(
    meta: RunLogMeta | Mapping[str, Any],
    text: str,
    *,
    keep: int = KEEP_RUNS,
    store: ArtifactStore | None = None,
) -> str:
    """Put one run's log in the store and its metadata (a RunLogMeta, or its fields: stack,
    hostname and run_id at least; ValueError if they do not make one) first in its
    instance's index, cut to the newest `keep`. Returns the log's digest."""
    typed = meta if isinstance(meta, RunLogMeta) else RunLogMeta.model_validate(meta)
    _check(typed.stack, typed.hostname, typed.run_id)
    store = store or open_store()
    digest = store.put(text.encode())
    name = index_name(typed.stack, typed.hostname)
    runs, _ = with_run(_index(store, name), SavedRun(meta=typed, log=digest), keep)
    store.write_named(name, index_document(runs))
    return digest


def _index(store: ArtifactStore, name: str) -> list[SavedRun]:
    data = store.read_named(name)
    return [] if data is None else parse_index(data)


def hostnames(stack: str, store: ArtifactStore | None = None) -> list[str]:
    """The instances of `stack` with saved runs (in the store or, from before, on disk)."""
    _check(stack)
    store = store or open_store()
    prefix = f"runs/{stack}/"
    found = {
        host
        for name in store.list_named(prefix)
        if HOSTNAME.fullmatch(host := name[len(prefix) :].removesuffix(_INDEX_SUFFIX))
        and name.endswith(_INDEX_SUFFIX)
    }
    top = settings.run_logs_dir() / stack
    if top.is_dir():
        found.update(d.name for d in top.iterdir() if d.is_dir() and HOSTNAME.fullmatch(d.name))
    return sorted(found)


def saved_runs(stack: str, hostname: str, store: ArtifactStore | None = None) -> list[Saved]:
    """The instance's saved runs, newest first: the store's, then those on this machine's
    disk from before that the store does not have. A run's metadata that is no RunLogMeta
    is skipped."""
    _check(stack, hostname)
    store = store or open_store()
    found = [
        Saved(run.meta, run.meta.model_dump(mode="json"), digest=run.log)
        for run in _index(store, index_name(stack, hostname))
    ]
    known = {s.meta.run_id for s in found}
    return found + [s for s in _on_disk(stack, hostname) if s.meta.run_id not in known]


def read_text(saved: Saved, store: ArtifactStore | None = None) -> str:
    """The whole log of a saved run (NotFound when its blob or file is gone)."""
    where = f"{saved.meta.stack}/{saved.meta.hostname}"
    if saved.digest is not None:
        data = (store or open_store()).get(saved.digest)
        return data.decode(errors="replace")
    assert saved.path is not None
    try:
        return saved.path.read_text(errors="replace")
    except FileNotFoundError:
        raise NotFound(f"the log of run {saved.meta.run_id} on {where} is gone") from None


def read_run_log(
    stack: str, hostname: str, run_id: str, store: ArtifactStore | None = None
) -> tuple[dict[str, Any], str]:
    """(metadata, full log text) of one saved run."""
    _check(stack, hostname, run_id)
    store = store or open_store()
    for saved in saved_runs(stack, hostname, store):
        if saved.meta.run_id == run_id:
            return saved.fields, read_text(saved, store)
    raise NotFound(
        f"no saved log of run {run_id} on {stack}/{hostname} (only the newest {KEEP_RUNS} "
        f"runs of an instance are kept, in the artifact store {store.location})"
    )


def list_run_logs(
    stack: str, hostname: str, store: ArtifactStore | None = None
) -> list[dict[str, Any]]:
    """The metadata of every saved run of one instance, newest first."""
    return [saved.fields for saved in saved_runs(stack, hostname, store)]


def find_run_logs(
    stack: str, run_id: str, store: ArtifactStore | None = None
) -> list[dict[str, Any]]:
    """The metadata of run `run_id` on every instance of `stack` that saved it."""
    _check(stack, run_id=run_id)
    store = store or open_store()
    return [
        saved.fields
        for host in hostnames(stack, store)
        for saved in saved_runs(stack, host, store)
        if saved.meta.run_id == run_id
    ]


# -- logs saved before the store: files on this machine's disk, read only --------------


def instance_dir(stack: str, hostname: str) -> Path:
    """Where one instance's run logs were kept on the worker's disk before the store."""
    _check(stack, hostname)
    return settings.run_logs_dir() / stack / hostname


def _on_disk(stack: str, hostname: str) -> list[Saved]:
    """The runs saved as files in instance_dir, newest first (by the metadata file's time,
    which the old saver set exactly)."""
    directory = instance_dir(stack, hostname)
    if not directory.is_dir():
        return []
    entries: list[tuple[int, str, Path]] = []
    for path in directory.glob("*.json"):
        try:
            entries.append((path.stat().st_mtime_ns, path.name, path))
        except FileNotFoundError:
            continue
    found: list[Saved] = []
    for *_, info in sorted(entries, reverse=True):
        try:
            fields = json.loads(info.read_text())
            meta = RunLogMeta.model_validate(fields)
        except (FileNotFoundError, json.JSONDecodeError, ValidationError):
            continue
        if RUN_ID.fullmatch(meta.run_id) and info.stem == meta.run_id:
            found.append(Saved(meta, fields, path=info.with_suffix(".log")))
    return found

"""Find saved recipe-run logs by command or run id, in the artifact store the worker saved
them to (runtime/run_logs.py): any machine naming the same store (OPSFLOW_ARTIFACTS) finds
them. Logs saved on this machine's disk before the store are found too."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from opsflow import names
from opsflow.errors import InvalidInput, NotFound
from opsflow.run_logs import RunLog, RunLogMeta
from runtime import run_logs
from runtime.artifacts import ArtifactStore, open_store

# Indexes read at once for a whole stack: a remote store answers each in a round trip.
_READERS = 16


def _hostnames(stack: str, only: str | None, store: ArtifactStore) -> list[str]:
    if not names.STACK_NAME.fullmatch(stack):
        raise InvalidInput(f"invalid stack name {stack!r}")
    return [only] if only is not None else run_logs.hostnames(stack, store)


def _saved_of(stack: str, hosts: list[str], store: ArtifactStore) -> list[run_logs.Saved]:
    if len(hosts) <= 1:
        return [s for h in hosts for s in run_logs.saved_runs(stack, h, store)]
    with ThreadPoolExecutor(min(_READERS, len(hosts))) as pool:
        per_host = pool.map(lambda h: run_logs.saved_runs(stack, h, store), hosts)
        return [s for saved in per_host for s in saved]


def recent_runs(stack: str, hostname: str | None = None) -> list[RunLogMeta]:
    """Metadata of the saved runs, newest first."""
    store = open_store()
    saved = _saved_of(stack, _hostnames(stack, hostname, store), store)
    return sorted((s.meta for s in saved), key=lambda m: m.finished, reverse=True)


def logs_of(stack: str, run_or_command: str, hostname: str | None = None) -> list[RunLog]:
    """(metadata, log) of one run id, or of every run a command made; NotFound if none."""
    store = open_store()
    found: list[RunLog] = []
    for saved in _saved_of(stack, _hostnames(stack, hostname, store), store):
        meta = saved.meta
        if meta.run_id == run_or_command or meta.command_id == f"{run_or_command}:{meta.hostname}":
            found.append((meta, run_logs.read_text(saved, store)))
    if not found:
        where = f"{stack}/{hostname}" if hostname else stack
        raise NotFound(
            f"no saved log for {run_or_command!r} on {where} (`opsflow command list {stack}` "
            f"shows the saved runs, the newest {run_logs.KEEP_RUNS} per instance, kept in "
            f"the artifact store {store.location})"
        )
    return sorted(found, key=lambda pair: pair[0].hostname)

"""Pruning the artifact store: the references stacks hold, and the prune a worker runs
after a fetch, at most daily (opsflow/artifact_pruning.py decides what goes).

Live references, gathered from the named objects at each prune:
- `refs/<stack>/<source key>`: the blobs a stack's cookbooks or an app's code resolved to,
  newest first, the newest KEEP_RELEASES (written by fetch_cookbooks: so the code of the
  kept releases stays fetchable for a rollback or a heal);
- `snapshots/<stack>`: the stack's live configuration snapshot;
- `runs/<stack>/<hostname>.json`: the logs of the retained runs (runtime/run_logs.py).
Blobs none of them names are deleted once stored longer ago than the retention period:
OPSFLOW_ARTIFACTS_RETENTION_DAYS, default 30 (a run or deployment in flight that still
holds an older snapshot or tree has that long to finish).
"""

from __future__ import annotations

import hashlib
import logging
import os
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from opsflow.artifact_pruning import DEFAULT_RETENTION, due, prunable, with_reference
from opsflow.errors import InvalidInput, OpsflowError
from opsflow.run_logs import parse_index
from runtime.artifacts import ArtifactStore, check_digest

REFS = "refs/"
SNAPSHOTS = "snapshots/"  # opsflow/snapshots.py POINTER: one digest per stack
RUN_INDEXES = "runs/"  # runtime/run_logs.py: one index per instance
LAST_PRUNE = "prune/last"
RETENTION_VARIABLE = "OPSFLOW_ARTIFACTS_RETENTION_DAYS"

_log = logging.getLogger(__name__)


@runtime_checkable
class PrunableStore(ArtifactStore, Protocol):
    """Both backends: a store that lists its blobs with the time each was stored."""

    def list_blobs(self) -> dict[str, datetime]: ...


def retention() -> timedelta:
    """OPSFLOW_ARTIFACTS_RETENTION_DAYS (a whole number of days, at least 1); default 30."""
    value = (os.environ.get(RETENTION_VARIABLE) or "").strip()
    if not value:
        return DEFAULT_RETENTION
    if not value.isdigit() or int(value) < 1:
        raise InvalidInput(f"{RETENTION_VARIABLE}: {value!r} is not a whole number of days >= 1")
    return timedelta(days=int(value))


def reference_name(stack: str, source_key: str) -> str:
    """The named object holding a stack's reference to the blob of one source."""
    return f"{REFS}{stack}/{hashlib.sha256(source_key.encode()).hexdigest()[:24]}"


def record_reference(store: ArtifactStore, stack: str, source_key: str, digest: str) -> None:
    """`digest` is now the newest blob of the stack's source (fetches of one stack's
    sources are serial: its workflow runs them one at a time)."""
    name = reference_name(stack, source_key)
    held = _digests(store.read_named(name))
    refs = with_reference(held, check_digest(digest))
    store.write_named(name, "".join(f"{d}\n" for d in refs).encode())


def live_references(store: ArtifactStore) -> set[str]:
    """Every digest a stack still needs: its sources' kept blobs, its live snapshot, the
    logs of its retained runs."""
    live: set[str] = set()
    for name in [*store.list_named(REFS), *store.list_named(SNAPSHOTS)]:
        live.update(_digests(store.read_named(name)))
    for name in store.list_named(RUN_INDEXES):
        data = store.read_named(name)
        if data is not None:
            live.update(run.log for run in parse_index(data))
    return live


def _digests(data: bytes | None) -> list[str]:
    """The digests a reference or pointer object holds, one per line; words that are no
    digest are skipped, so a damaged object costs only itself."""
    if data is None:
        return []
    words = data.decode(errors="replace").split()
    return [w for w in words if len(w) == 64 and all(c in "0123456789abcdef" for c in w)]


def prune(
    store: PrunableStore, *, now: datetime | None = None, keep_for: timedelta | None = None
) -> list[str]:
    """Delete the blobs opsflow.artifact_pruning.prunable picks; the digests deleted."""
    now = now or datetime.now(UTC)
    stored = store.list_blobs()
    doomed = prunable(stored, live_references(store), now=now, retention=keep_for or retention())
    for digest in doomed:
        store.delete(digest)
    return doomed


def prune_if_due(store: ArtifactStore, *, now: datetime | None = None) -> list[str]:
    """`prune` when the last prune (any worker's) is a day old; best effort: problems are
    logged, never raised (a fetch must not fail because pruning did)."""
    if not isinstance(store, PrunableStore):
        return []
    now = now or datetime.now(UTC)
    try:
        last = store.read_named(LAST_PRUNE)
        if not due(_parse_time(last), now=now):
            return []
        store.write_named(LAST_PRUNE, now.isoformat().encode())
        return prune(store, now=now)
    except (OpsflowError, OSError) as err:
        _log.warning("artifact store %s: pruning skipped: %s", store.location, err)
        return []


def _parse_time(data: bytes | None) -> datetime | None:
    if data is None:
        return None
    try:
        return datetime.fromisoformat(data.decode())
    except (UnicodeDecodeError, ValueError):
        return None

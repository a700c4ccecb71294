"""Pruning the artifact store: the references stacks hold, and the prune a worker runs
after a fetch, at most daily (opsflow/artifact_pruning.py decides what goes).

A live reference is a named object `refs/<stack>/<source key>` holding the digest of the
blob a stack's cookbooks or an app's code last resolved to (written by fetch_cookbooks).
Blobs no reference names are deleted once stored longer ago than the retention period:
OPSFLOW_ARTIFACTS_RETENTION_DAYS, default 30.
"""

from __future__ import annotations

import hashlib
import logging
import os
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from opsflow.artifact_pruning import DEFAULT_RETENTION, due, prunable
from opsflow.errors import InvalidInput, OpsflowError
from runtime.artifacts import ArtifactStore, check_digest

REFS = "refs/"
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
    store.write_named(reference_name(stack, source_key), check_digest(digest).encode())


def live_references(store: ArtifactStore) -> set[str]:
    live: set[str] = set()
    for name in store.list_named(REFS):
        data = store.read_named(name)
        if data is not None:
            live.add(data.decode(errors="replace").strip())
    return live


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

"""Pruning the artifact store, on both backends: what no stack references goes once old."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opsflow.errors import InvalidInput
from runtime import run_logs
from runtime.artifact_pruning import (
    PrunableStore,
    live_references,
    prune,
    prune_if_due,
    record_reference,
    retention,
)
from runtime.artifacts import ArtifactStore

LATER = timedelta(days=31)


def prunable_store(store: ArtifactStore) -> PrunableStore:
    assert isinstance(store, PrunableStore)
    return store


def test_old_blobs_no_stack_references_are_deleted(store: ArtifactStore) -> None:
    used = store.put(b"the stack's cookbooks")
    unused = store.put(b"last month's cookbooks")
    record_reference(store, "shop", '{"git": "repo"}', used)
    assert live_references(store) == {used}
    now = datetime.now(UTC)
    assert prune(prunable_store(store), now=now + timedelta(days=1)) == []  # recent: kept
    assert prune(prunable_store(store), now=now + LATER) == [unused]
    assert store.has(used) and not store.has(unused)


def test_a_source_keeps_the_blobs_of_its_newest_releases(store: ArtifactStore) -> None:
    versions = [store.put(f"v{n}".encode()) for n in range(1, 8)]
    for digest in versions:
        record_reference(store, "shop", "app site", digest)
    record_reference(store, "shop", "app site", versions[3])  # a redeploy of v4: newest again
    # Kept: v4 and the four before it by recency (v7, v6, v5, v3); v1 and v2 are gone.
    assert sorted(prune(prunable_store(store), now=datetime.now(UTC) + LATER)) == sorted(
        versions[:2]
    )
    assert all(store.has(d) for d in versions[2:])


def test_live_snapshots_and_retained_run_logs_are_kept(store: ArtifactStore) -> None:
    snapshot = store.put(b"the live configuration")
    store.write_named("snapshots/shop", snapshot.encode())
    log = store.put(b"a retained run's log")
    meta = {"stack": "shop", "hostname": "web1", "run_id": "r1"}
    run_logs.save_run_log(meta, "a retained run's log", store=store)
    stale = store.put(b"a snapshot nothing names any more")
    assert live_references(store) == {snapshot, log}
    assert prune(prunable_store(store), now=datetime.now(UTC) + LATER) == [stale]


def test_a_prune_runs_at_most_daily(store: ArtifactStore) -> None:
    digest = store.put(b"unreferenced")
    now = datetime.now(UTC) + LATER
    assert prune_if_due(store, now=now - timedelta(hours=1)) == [digest]
    again = store.put(b"unreferenced")
    assert prune_if_due(store, now=now) == []  # an hour later: not due
    assert store.has(again)


def test_retention_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPSFLOW_ARTIFACTS_RETENTION_DAYS", raising=False)
    assert retention() == timedelta(days=30)
    monkeypatch.setenv("OPSFLOW_ARTIFACTS_RETENTION_DAYS", "2")
    assert retention() == timedelta(days=2)
    monkeypatch.setenv("OPSFLOW_ARTIFACTS_RETENTION_DAYS", "soon")
    with pytest.raises(InvalidInput, match="OPSFLOW_ARTIFACTS_RETENTION_DAYS: 'soon'"):
        retention()


def test_storing_a_blob_again_restarts_its_retention(dir_store: ArtifactStore) -> None:
    digest = dir_store.put(b"reverted to")
    path = Path(dir_store.location, "blobs", "sha256", digest[:2], digest)
    old = time.time() - 40 * 86400
    os.utime(path, (old, old))
    dir_store.put(b"reverted to")  # the CLI uploads it for an apply
    assert prune(prunable_store(dir_store), now=datetime.now(UTC)) == []

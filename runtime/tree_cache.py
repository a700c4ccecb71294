"""This machine's unpacked trees (cookbooks, app code), by the digest of their packed blob
in the artifact store: `$OPSFLOW_HOME/cache/trees/<digest>/`, complete or absent.

A missing tree is fetched from the store (verified against its digest before it is
unpacked), unpacked aside and renamed into place, so any worker can run any run: none
needs the machine that packed or fetched the tree.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from opsflow import settings
from runtime.artifacts import ArtifactStore, check_digest, corrupt, file_digest
from runtime.packing import extract, pack_to

STAGING_PREFIX = ".staging-"
MAX_AGE = timedelta(days=7)  # unused this long: removed (it refills from the store)
STAGING_MAX_AGE = timedelta(hours=1)

_log = logging.getLogger(__name__)


def trees_dir() -> Path:
    return settings.opsflow_home() / "cache" / "trees"


def tree(store: ArtifactStore, digest: str, *, archive: Path | None = None) -> Path:
    """The unpacked tree of blob `digest`; fetched from `store` unless this machine has it
    (or from `archive`, a local copy of that blob the caller has just packed).

    Raises what the store raises (NotFound, StoreCorrupt, StoreUnavailable) and InvalidInput
    for a blob that is not a safe .tar.gz.
    """
    entry = trees_dir() / check_digest(digest)
    if entry.is_dir():
        os.utime(entry)  # its age is the time since its last use
        return entry
    entry.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=entry.parent))
    try:
        blob = staging / "blob.tar.gz"
        if archive is not None:
            shutil.copyfile(archive, blob)
            if file_digest(blob) != digest:
                raise corrupt(digest, str(archive), file_digest(blob))
        else:
            store.get_to(digest, blob)
        unpacked = staging / "tree"
        extract(blob, unpacked)
        try:
            unpacked.rename(entry)
        except OSError:
            if not entry.is_dir():
                raise  # not another process that placed the same tree meanwhile
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return entry


def publish(store: ArtifactStore, directory: Path, *, cache: bool = True) -> str:
    """Pack `directory` (runtime/packing.py), put it in `store`; the blob's digest. With
    `cache`, this machine's tree cache gets the unpacked blob too (no download later).

    Raises InvalidInput for what cannot be packed (a link leading out, a fifo), and what
    the store raises.
    """
    with tempfile.TemporaryDirectory(prefix="opsflow-pack-") as temp:
        archive = Path(temp, "tree.tar.gz")
        pack_to(directory, archive)
        digest = store.put_file(archive)
        if cache:
            tree(store, digest, archive=archive)
    return digest


def prune(*, max_age: timedelta = MAX_AGE, now: float | None = None) -> list[Path]:
    """Remove trees unused for `max_age` (each `tree` call is a use) and staging left by a
    crash; best effort: problems are logged, never raised. Returns what was removed."""
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        entries = list(trees_dir().iterdir())
    except OSError:
        return removed
    for entry in entries:
        limit = STAGING_MAX_AGE if entry.name.startswith(STAGING_PREFIX) else max_age
        try:
            stale = now - entry.lstat().st_mtime > limit.total_seconds()
            if stale:
                # Renamed aside first: a reader finds the tree whole or not at all.
                aside = entry.with_name(f"{STAGING_PREFIX}removed-{uuid.uuid4().hex}")
                entry.rename(aside)
                shutil.rmtree(aside)
                removed.append(entry)
        except OSError as error:
            _log.warning("could not remove cached tree %s: %s", entry, error)
    return removed

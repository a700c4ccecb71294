"""Trees by blob digest, unpacked from the artifact store into this machine's cache."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from opsflow.errors import NotFound
from runtime.artifacts import StoreCorrupt, open_store
from runtime.packing import pack_to
from runtime.tree_cache import prune, tree, trees_dir


def packed_blob(tmp_path: Path) -> Path:
    source = tmp_path / "src"
    (source / "cb" / "recipes").mkdir(parents=True)
    (source / "cb" / "recipes" / "default.sh").write_text("echo hi\n")
    archive = tmp_path / "src.tar.gz"
    pack_to(source, archive)
    return archive


def test_a_tree_is_fetched_unpacked_and_kept(opsflow_home: Path, tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "store"))
    digest = store.put_file(packed_blob(tmp_path))
    found = tree(store, digest)
    assert found == trees_dir() / digest
    assert (found / "cb" / "recipes" / "default.sh").read_text() == "echo hi\n"
    store.delete(digest)  # kept here: no second fetch
    assert tree(store, digest) == found
    assert [p.name for p in trees_dir().iterdir()] == [digest]  # no staging left


def test_a_corrupt_blob_is_never_unpacked(opsflow_home: Path, tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "store"))
    digest = store.put_file(packed_blob(tmp_path))
    blob = tmp_path / "store" / "blobs" / "sha256" / digest[:2] / digest
    blob.chmod(0o644)
    blob.write_bytes(b"garbage")
    with pytest.raises(StoreCorrupt):
        tree(store, digest)
    assert list(trees_dir().iterdir()) == []


def test_a_missing_blob_is_not_found(opsflow_home: Path, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        tree(open_store(str(tmp_path / "store")), "0" * 64)


def test_a_local_archive_must_match_its_digest(opsflow_home: Path, tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "store"))
    archive = packed_blob(tmp_path)
    with pytest.raises(StoreCorrupt):
        tree(store, "1" * 64, archive=archive)


def test_trees_unused_for_a_week_are_pruned_and_refill(opsflow_home: Path, tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "store"))
    digest = store.put_file(packed_blob(tmp_path))
    found = tree(store, digest)
    assert prune() == []
    old = time.time() - 8 * 86400
    os.utime(found, (old, old))
    assert prune() == [found]
    assert list(trees_dir().iterdir()) == []
    assert tree(store, digest) == found  # fetched again from the store

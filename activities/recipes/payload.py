"""What a command carries on its stdin: a tar of the run files, and the cookbooks (or an
app's code) when they are to be staged; and the content hash that names a staged tree."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import stat
import tarfile
import time
from pathlib import Path, PurePosixPath

from workflows.failures import invalid

DIGEST = re.compile(r"^[0-9a-f]{16,128}$")
# Run files that may hold secrets (the app's environment): readable by their owner only;
# so is everything under a run file's directory (data_bags/BAG/ITEM.json: 0700 dirs).
_PRIVATE_FILES = frozenset({"run.sh", "attributes.json", "node.json"})


def _private(name: str) -> bool:
    return name in _PRIVATE_FILES or "/" in name


def _tree(directory: str | None) -> list[Path]:
    if directory is None:
        return []
    top = Path(directory)
    if not top.is_dir():
        raise invalid(f"cookbooks directory {directory} does not exist on this worker")
    return sorted(top.rglob("*"))


def cookbooks_digest(directory: str | None) -> str:
    """sha256 of the tree: relative paths, modes, file contents and link targets."""
    digest = hashlib.sha256()
    for path in _tree(directory):
        info = path.lstat()
        relative = path.relative_to(directory or "").as_posix()
        digest.update(f"{relative}\0{info.st_mode:o}\0".encode())
        if stat.S_ISLNK(info.st_mode):
            digest.update(os.readlink(path).encode())
        elif stat.S_ISREG(info.st_mode):
            digest.update(f"{info.st_size}\0".encode())
            digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def payload(
    files: dict[str, bytes], cookbooks: str | None, *, stage: bool, app: str | None = None
) -> bytes:
    """A command's stdin: a tar of the run files under `run/` (a name may hold `/`: its
    directories come first, owner only; a name ending in `/` is a directory alone), plus
    `cookbooks/` when staging, plus `app/` (the tree `app`) when staging an app's code;
    gzipped only when it carries trees (a few KB of run files are not worth a gzip
    process each run)."""
    buffer = io.BytesIO()
    now = time.time()
    directories: set[str] = set()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            # `NAME/` is a directory of its own (an empty data bag, say): no file.
            entry = PurePosixPath(name)
            parents = [entry, *entry.parents[:-1]] if name.endswith("/") else entry.parents[:-1]
            for parent in reversed(parents):
                if parent.as_posix() not in directories:  # before its files, owner only
                    directories.add(parent.as_posix())
                    folder = tarfile.TarInfo(f"run/{parent.as_posix()}")
                    folder.type, folder.mode, folder.mtime = tarfile.DIRTYPE, 0o700, now
                    tar.addfile(folder)
            if name.endswith("/"):
                continue
            info = tarfile.TarInfo(f"run/{name}")
            info.size, info.mtime = len(data), now
            info.mode = 0o600 if _private(name) else 0o644
            tar.addfile(info, io.BytesIO(data))
        if stage:
            add_cookbooks(tar, cookbooks)
        if app is not None:
            tar.add(app, arcname="app")
    # Without the padding to a whole 10 KiB record, which tar does not need.
    data = buffer.getvalue()[: tar.offset]
    return gzip.compress(data, compresslevel=6) if compressed(stage=stage, app=app) else data


def compressed(*, stage: bool, app: str | None) -> bool:
    return stage or app is not None


def add_cookbooks(tar: tarfile.TarFile, directory: str | None) -> None:
    """The cookbooks tree as `cookbooks/` (an empty directory when there is none)."""
    if directory is not None:
        tar.add(directory, arcname="cookbooks")
        return
    info = tarfile.TarInfo("cookbooks")
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, time.time()
    tar.addfile(info)

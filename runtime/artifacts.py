"""The artifact store: content-addressed blobs and small named objects, shared by the CLI
and every worker, so a run does not depend on which machine has which files.

Blobs are named by the sha256 hex digest of their bytes: written once, never changed, and
verified on every read (bytes that do not match their digest raise StoreCorrupt and are
never returned). Named objects are small and mutable (indexes, pointers, published keys),
replaced atomically.

Two backends behind one Protocol, chosen by `settings.artifacts_location()`:

- a directory (`DirectoryStore`, here): `blobs/sha256/ab/<digest>` and `named/<name>`,
  each written aside in `tmp/`, fsynced and renamed into place, blob files read-only;
- `s3://bucket/prefix` (`S3Store`, runtime/artifacts_s3.py, which alone imports boto3):
  keys `<prefix>/blobs/sha256/<digest>` and `<prefix>/named/<name>`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Protocol

from opsflow import settings
from opsflow.errors import InvalidInput, NotFound, OpsflowError

CHUNK = 1024 * 1024
_DIGEST = re.compile(r"[0-9a-f]{64}")
_WORD = re.compile(r"[A-Za-z0-9._:@-]+")


class StoreUnavailable(OpsflowError):
    """The store cannot be used: unreachable after retries, a missing bucket, access
    denied, a directory that cannot be written. The message names the store."""


class StoreCorrupt(OpsflowError):
    """A blob whose bytes do not match its digest (refused, never returned)."""


class ArtifactStore(Protocol):
    location: str  # exactly settings.artifacts_location()'s text: a path or s3://bucket/prefix

    def put(self, data: bytes) -> str:
        """Store `data`; its digest. Nothing is written when the blob is already there."""
        ...

    def put_file(self, path: Path) -> str:
        """Store the file at `path`, streamed (it must not change meanwhile); its digest."""
        ...

    def get(self, digest: str) -> bytes:
        """The blob's bytes, verified: StoreCorrupt on a mismatch, NotFound when absent."""
        ...

    def get_to(self, digest: str, path: Path) -> None:
        """The blob streamed into `path` (written aside, renamed once verified)."""
        ...

    def has(self, digest: str) -> bool: ...

    def write_named(self, name: str, data: bytes) -> None:
        """Replace the named object atomically (readers see the old bytes or the new)."""
        ...

    def read_named(self, name: str) -> bytes | None:
        """The named object's bytes; None when absent."""
        ...

    def list_named(self, prefix: str) -> list[str]:
        """The names starting with `prefix` (text, as S3 lists), sorted."""
        ...

    def delete_named(self, name: str) -> None:
        """Remove the named object; absent is fine."""
        ...

    def delete(self, digest: str) -> None:
        """Remove a blob (pruning only: blobs are otherwise never removed); absent is fine."""
        ...


def open_store(location: str | None = None) -> ArtifactStore:
    """The store at `location` (default settings.artifacts_location()): a DirectoryStore
    for a path, an S3Store for s3://bucket/prefix (boto3's standard configuration:
    AWS_ENDPOINT_URL, AWS_REGION, credentials)."""
    where = settings.artifacts_location() if location is None else location
    if where.startswith("s3://"):
        from runtime.artifacts_s3 import S3Store  # boto3 only when S3 is used

        return S3Store(where)
    if not where.startswith("/"):
        raise InvalidInput(f"artifact store {where!r}: not an absolute path nor s3://bucket/prefix")
    return DirectoryStore(where)


def shared_store() -> ArtifactStore:
    """The store at settings.artifacts_location(), opened once per process and location
    (an S3 client is thread-safe and worth keeping)."""
    return _opened(settings.artifacts_location())


@functools.lru_cache(maxsize=4)
def _opened(location: str) -> ArtifactStore:
    return open_store(location)


# -- checks and hashing, shared by both backends ----------------------------------------


def check_digest(digest: str) -> str:
    if not _DIGEST.fullmatch(digest):
        raise InvalidInput(f"artifact digest {digest!r}: not a sha256 hex digest (64 of 0-9a-f)")
    return digest


def check_name(name: str) -> str:
    """A named object's name: '/'-separated words of [A-Za-z0-9._:@-], no '.' or '..'."""
    words = name.split("/")
    if not name or any(not _WORD.fullmatch(w) or w in (".", "..") for w in words):
        raise InvalidInput(
            f"artifact name {name!r}: must be '/'-separated words of A-Z a-z 0-9 . _ : @ -, "
            "without '..' or a leading '/'"
        )
    return name


def check_prefix(prefix: str) -> str:
    """A list prefix: empty, or a name, or a name followed by '/'."""
    if prefix:
        check_name(prefix.removesuffix("/"))
    return prefix


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_digest(path: Path) -> str:
    with path.open("rb") as source:
        return hashlib.file_digest(source, "sha256").hexdigest()


def copy_verified(source: BinaryIO, target: Path, digest: str, location: str) -> None:
    """Stream `source` into `target`, written aside and renamed once its sha256 is
    `digest`; StoreCorrupt (and nothing left behind) otherwise."""
    hasher = hashlib.sha256()
    with _aside(target) as temp:
        with temp.open("wb") as out:
            while chunk := source.read(CHUNK):
                hasher.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if hasher.hexdigest() != digest:
            raise corrupt(digest, location, hasher.hexdigest())
        temp.replace(target)


def corrupt(digest: str, location: str, actual: str) -> StoreCorrupt:
    return StoreCorrupt(
        f"artifact store {location}: blob {digest} is corrupt (its bytes hash to {actual}); "
        "it was not used: delete it so it can be stored again"
    )


def missing(digest: str, location: str) -> NotFound:
    return NotFound(f"artifact store {location}: blob {digest} is not there")


@contextlib.contextmanager
def _aside(target: Path) -> Iterator[Path]:
    """A temporary path next to `target` (same filesystem, so a rename is atomic),
    removed unless the caller renamed it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(fd)
    temp = Path(name)
    try:
        yield temp
    finally:
        temp.unlink(missing_ok=True)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- the directory backend --------------------------------------------------------------


class DirectoryStore:
    """A store in a directory (local, or one every machine mounts)."""

    def __init__(self, location: str) -> None:
        self.location = location
        self._root = Path(location)

    def _blob(self, digest: str) -> Path:
        return self._root / "blobs" / "sha256" / digest[:2] / check_digest(digest)

    def _named(self, name: str) -> Path:
        return self._root / "named" / check_name(name)

    @contextlib.contextmanager
    def _io(self, doing: str) -> Iterator[None]:
        try:
            yield
        except OSError as err:
            raise StoreUnavailable(
                f"artifact store {self.location}: cannot {doing}: {err.strerror or err}"
            ) from err

    def _install(self, temp: Path, target: Path, *, read_only: bool) -> None:
        """fsync `temp`, then rename it to `target` and fsync the directory."""
        if read_only:
            temp.chmod(0o444)
        with temp.open("rb") as handle:
            os.fsync(handle.fileno())
        temp.replace(target)
        _fsync_directory(target.parent)

    def put(self, data: bytes) -> str:
        digest = digest_of(data)
        target = self._blob(digest)
        with self._io(f"store blob {digest}"):
            if target.exists():
                os.utime(target)  # stored again: its retention starts afresh
            else:
                with _aside(self._root / "tmp" / digest) as temp:
                    temp.write_bytes(data)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    self._install(temp, target, read_only=True)
        return digest

    def put_file(self, path: Path) -> str:
        with self._io(f"store {path}"), path.open("rb") as source:
            hasher = hashlib.sha256()
            with _aside(self._root / "tmp" / "upload") as temp:
                with temp.open("wb") as out:
                    while chunk := source.read(CHUNK):
                        hasher.update(chunk)
                        out.write(chunk)
                digest = hasher.hexdigest()
                target = self._blob(digest)
                if target.exists():
                    os.utime(target)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    self._install(temp, target, read_only=True)
        return digest

    def get(self, digest: str) -> bytes:
        path = self._blob(digest)
        with self._io(f"read blob {digest}"):
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                raise missing(digest, self.location) from None
        actual = digest_of(data)
        if actual != digest:
            raise corrupt(digest, self.location, actual)
        return data

    def get_to(self, digest: str, path: Path) -> None:
        blob = self._blob(digest)
        with self._io(f"copy blob {digest} to {path}"):
            try:
                source = blob.open("rb")
            except FileNotFoundError:
                raise missing(digest, self.location) from None
            with source:
                copy_verified(source, path, digest, self.location)

    def has(self, digest: str) -> bool:
        with self._io(f"look for blob {digest}"):
            return self._blob(digest).is_file()

    def delete(self, digest: str) -> None:
        with self._io(f"delete blob {digest}"):
            self._blob(digest).unlink(missing_ok=True)

    def list_blobs(self) -> dict[str, datetime]:
        """Every blob's digest and when it was last stored (for pruning)."""
        found: dict[str, datetime] = {}
        with self._io("list blobs"):
            for path in (self._root / "blobs" / "sha256").glob("??/*"):
                if _DIGEST.fullmatch(path.name):
                    found[path.name] = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        return found

    def write_named(self, name: str, data: bytes) -> None:
        target = self._named(name)
        with self._io(f"write {name}"), _aside(self._root / "tmp" / "named") as temp:
            temp.write_bytes(data)
            target.parent.mkdir(parents=True, exist_ok=True)
            self._install(temp, target, read_only=False)

    def read_named(self, name: str) -> bytes | None:
        with self._io(f"read {name}"):
            try:
                return self._named(name).read_bytes()
            except FileNotFoundError:
                return None

    def list_named(self, prefix: str) -> list[str]:
        check_prefix(prefix)
        top = self._root / "named"
        # Walk only the deepest directory the prefix names in full.
        start = top / prefix.rpartition("/")[0] if "/" in prefix else top
        found: list[str] = []
        with self._io(f"list {prefix or 'named objects'}"):
            for directory, _, files in os.walk(start):
                relative = Path(directory).relative_to(top).as_posix()
                for file in files:
                    name = file if relative == "." else f"{relative}/{file}"
                    if name.startswith(prefix):
                        found.append(name)
        return sorted(found)

    def delete_named(self, name: str) -> None:
        with self._io(f"delete {name}"):
            self._named(name).unlink(missing_ok=True)

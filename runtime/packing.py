"""A directory as a deterministic .tar.gz, and such an archive safely unpacked.

Packing: members sorted, mtime 0, uid/gid 0, owner names empty, modes kept (exec bits),
gzip's own mtime 0 and no file name: the same tree gives the same bytes, so the same
sha256 (the artifact store's name for it) on any machine. Links inside the tree stay links;
a link leading out of it (absolute, or `..` beyond the top), a device, fifo or socket is
refused with InvalidInput naming the path.

Unpacking checks every member before anything is written (no absolute path, no `..`, no
link leading out, no device, fifo or other special file, at most `max_bytes` and
`max_members` in all), then extracts with tarfile's `data` filter as a second line of
defence.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import posixpath
import stat
import tarfile
import zlib
from pathlib import Path, PurePosixPath
from typing import BinaryIO, cast

from opsflow.errors import InvalidInput

MAX_EXTRACTED_BYTES = 2 * 1024 * 1024 * 1024
MAX_MEMBERS = 200_000


def pack(directory: Path, out: BinaryIO) -> None:
    """Write the tree under `directory` to `out` as a deterministic .tar.gz."""
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        for relative in _members(directory):
            path = directory / relative
            info = path.lstat()
            member = tarfile.TarInfo(relative)
            member.mode = stat.S_IMODE(info.st_mode)
            member.mtime, member.uid, member.gid, member.uname, member.gname = 0, 0, 0, "", ""
            if stat.S_ISLNK(info.st_mode):
                member.type, member.linkname = tarfile.SYMTYPE, _inside_link(path, relative)
                tar.addfile(member)
            elif stat.S_ISDIR(info.st_mode):
                member.type = tarfile.DIRTYPE
                tar.addfile(member)
            elif stat.S_ISREG(info.st_mode):
                member.size = info.st_size
                with path.open("rb") as content:
                    tar.addfile(member, content)
            else:
                raise InvalidInput(f"{path}: a device, fifo or socket cannot be packed")


def pack_to(directory: Path, target: Path) -> None:
    """`pack` into the file `target` (removed again if packing fails)."""
    try:
        with target.open("wb") as out:
            pack(directory, out)
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def tree_digest(directory: Path) -> str:
    """The sha256 of what `pack` writes for `directory`, without keeping the bytes."""
    sink = _HashingSink()
    pack(directory, cast(BinaryIO, sink))
    return sink.hasher.hexdigest()


class _HashingSink:
    def __init__(self) -> None:
        self.hasher = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.hasher.update(data)
        return len(data)

    def flush(self) -> None:
        pass


def _members(directory: Path) -> list[str]:
    """Every path under `directory`, relative, sorted (links not followed)."""
    found: list[str] = []
    for top, directories, files in os.walk(directory, onerror=_raise):
        relative = Path(top).relative_to(directory).as_posix()
        for name in (*directories, *files):
            found.append(name if relative == "." else f"{relative}/{name}")
    return sorted(found)


def _raise(error: OSError) -> None:
    raise error


def _inside_link(path: Path, relative: str) -> str:
    target = os.readlink(path)
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(relative), target))
    if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
        raise InvalidInput(f"{path}: a link leading out of the tree (to {target})")
    return target


def extract(
    archive: Path,
    into: Path,
    *,
    max_bytes: int = MAX_EXTRACTED_BYTES,
    max_members: int = MAX_MEMBERS,
) -> None:
    """Extract the .tar.gz `archive` into the new directory `into`, every member checked
    first. InvalidInput for an unsafe member, too much, or what is not a .tar.gz."""
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            members = _checked_members(tar, max_bytes, max_members)
            into.mkdir(parents=True)
            tar.extractall(into, members=members, filter="data")
    except tarfile.FilterError as error:
        raise InvalidInput(f"unsafe archive member: {error}") from error
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise InvalidInput(f"not a .tar.gz archive: {error}") from error


def _checked_members(
    tar: tarfile.TarFile, max_bytes: int, max_members: int
) -> list[tarfile.TarInfo]:
    members: list[tarfile.TarInfo] = []
    total = 0
    for member in tar:
        check_member(member)
        total += member.size if member.isreg() else 0
        members.append(member)
        if total > max_bytes or len(members) > max_members:
            raise InvalidInput(
                f"archive holds more than {max_bytes} bytes or {max_members} members"
            )
    return members


def check_member(member: tarfile.TarInfo) -> None:
    """InvalidInput unless the member stays inside and is a file, directory or link."""
    name = member.name
    if name.startswith("/") or ".." in PurePosixPath(name).parts:
        raise InvalidInput(f"unsafe archive member {name!r}: its path leads outside")
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
        raise InvalidInput(f"unsafe archive member {name!r}: a device, fifo or special file")
    if member.issym():
        target = posixpath.normpath(posixpath.join(posixpath.dirname(name), member.linkname))
        if member.linkname.startswith("/") or target == ".." or target.startswith("../"):
            raise InvalidInput(f"unsafe archive member {name!r}: a link leading outside")
    if member.islnk() and (
        member.linkname.startswith("/") or ".." in PurePosixPath(member.linkname).parts
    ):
        raise InvalidInput(f"unsafe archive member {name!r}: a link leading outside")

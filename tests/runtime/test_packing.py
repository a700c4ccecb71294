"""Deterministic packing (same tree, same bytes, same digest) and safe unpacking."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from opsflow.errors import InvalidInput
from runtime.packing import extract, pack, pack_to


def make_tree(root: Path) -> Path:
    (root / "cb" / "recipes").mkdir(parents=True)
    (root / "cb" / "recipes" / "default.sh").write_text("echo hi\n")
    (root / "cb" / "recipes" / "default.sh").chmod(0o755)
    (root / "cb" / "README").write_text("read me\n")
    (root / "cb" / "README").chmod(0o644)
    (root / "cb" / "link").symlink_to("recipes/default.sh")
    return root


def packed(directory: Path) -> bytes:
    out = io.BytesIO()
    pack(directory, out)
    return out.getvalue()


def test_the_same_tree_gives_the_same_bytes_wherever_and_whenever(tmp_path: Path) -> None:
    first = make_tree(tmp_path / "one")
    second = make_tree(tmp_path / "two")
    os.utime(second / "cb" / "README", (1, 1))  # other mtimes, other place, other order
    assert packed(first) == packed(second)
    (second / "cb" / "README").write_text("changed\n")
    assert hashlib.sha256(packed(first)).digest() != hashlib.sha256(packed(second)).digest()


def test_members_are_sorted_owned_by_nobody_with_modes_kept(tmp_path: Path) -> None:
    data = packed(make_tree(tmp_path / "t"))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == sorted(m.name for m in members)
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members} == {(0, 0, "", "", 0)}
    by_name = {m.name: m for m in members}
    assert by_name["cb/recipes/default.sh"].mode == 0o755
    assert by_name["cb/README"].mode == 0o644
    assert by_name["cb/link"].issym() and by_name["cb/link"].linkname == "recipes/default.sh"
    assert data[4:8] == b"\0\0\0\0"  # gzip's mtime


def test_a_packed_tree_unpacks_to_the_same_tree(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "t")
    archive = tmp_path / "t.tar.gz"
    pack_to(source, archive)
    extract(archive, tmp_path / "out")
    out = tmp_path / "out"
    assert (out / "cb" / "recipes" / "default.sh").read_text() == "echo hi\n"
    assert os.access(out / "cb" / "recipes" / "default.sh", os.X_OK)
    assert os.readlink(out / "cb" / "link") == "recipes/default.sh"
    assert packed(out) == packed(source)


@pytest.mark.parametrize("target", ["/etc/passwd", "../../outside", "recipes/../../../x"])
def test_a_link_leading_out_of_the_tree_is_refused_naming_it(tmp_path: Path, target: str) -> None:
    tree = make_tree(tmp_path / "t")
    (tree / "cb" / "escape").symlink_to(target)
    archive = tmp_path / "t.tar.gz"
    with pytest.raises(InvalidInput, match=f"{tree / 'cb' / 'escape'}: a link leading out"):
        pack_to(tree, archive)
    assert not archive.exists()


def test_a_link_up_but_inside_the_tree_is_kept(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "t")
    (tree / "cb" / "recipes" / "up").symlink_to("../README")
    assert b"up" in gzip_members(packed(tree))


def gzip_members(data: bytes) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return "\n".join(tar.getnames()).encode()


def test_a_fifo_is_refused_naming_it(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "t")
    os.mkfifo(tree / "cb" / "pipe")
    with pytest.raises(InvalidInput, match="pipe: a device, fifo or socket"):
        packed(tree)


def evil_archive(path: Path, member: tarfile.TarInfo) -> Path:
    with tarfile.open(path, mode="w:gz") as tar:
        tar.addfile(member, io.BytesIO(b"x" * member.size) if member.isreg() else None)
    return path


@pytest.mark.parametrize(
    ("name", "kind", "link", "problem"),
    [
        ("../evil", tarfile.REGTYPE, "", "leads outside"),
        ("/abs", tarfile.REGTYPE, "", "leads outside"),
        ("l", tarfile.SYMTYPE, "../../x", "a link leading outside"),
        ("dev", tarfile.CHRTYPE, "", "a device, fifo"),
    ],
)
def test_unsafe_members_are_refused_before_anything_is_written(
    tmp_path: Path, name: str, kind: bytes, link: str, problem: str
) -> None:
    member = tarfile.TarInfo(name)
    member.type, member.linkname = kind, link
    archive = evil_archive(tmp_path / "evil.tar.gz", member)
    with pytest.raises(InvalidInput, match=problem):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_what_is_not_a_tar_gz_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "not.tar.gz"
    archive.write_bytes(b"plain text")
    with pytest.raises(InvalidInput, match=r"not a \.tar\.gz"):
        extract(archive, tmp_path / "out")

"""The stand-in for other machines hides what it should, and leaves no mount behind."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.machines import namespaces_work, on_another_machine

pytestmark = pytest.mark.skipif(
    not namespaces_work(), reason="mount namespaces need root and unshare"
)


def test_a_hidden_directory_is_empty_there_and_untouched_here(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "secret.txt").write_text("only here")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "seen.txt").write_text("everyone")

    there = subprocess.run(
        on_another_machine(
            ["sh", "-c", f"ls -A {mine}; cat {shared}/seen.txt; touch {mine}/x"], [mine]
        ),
        capture_output=True,
        text=True,
    )
    assert there.stdout == "everyone"  # the hidden directory lists as empty
    assert there.returncode != 0  # and cannot be written to: read-only
    assert sorted(p.name for p in mine.iterdir()) == ["secret.txt"]
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(mine) not in mounts  # the mount lived and died with that namespace


def test_only_directories_can_be_hidden(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="existing directory"):
        on_another_machine(["true"], [tmp_path / "absent"])

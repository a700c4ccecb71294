"""Fixtures for the shared runtime modules."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def opsflow_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "opsflow home"  # a space: every path must be quoted on its way
    monkeypatch.setenv("OPSFLOW_HOME", str(home))
    return home

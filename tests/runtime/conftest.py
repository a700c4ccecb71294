"""Fixtures for the shared runtime modules."""

from __future__ import annotations

from pathlib import Path

import pytest

# The real moto server and fault proxy of tests/aws, for the S3 artifact store's tests.
from tests.aws.conftest import aws_env, fault_proxy, moto_reset, moto_server

__all__ = ["aws_env", "fault_proxy", "moto_reset", "moto_server"]


@pytest.fixture
def opsflow_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "opsflow home"  # a space: every path must be quoted on its way
    monkeypatch.setenv("OPSFLOW_HOME", str(home))
    return home

"""Local instances for the activity tests: real sshd's in a temporary OPSFLOW_HOME."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from activities import local_provider, ssh
from opsflow.messages import LaunchInput, LaunchResult, MachineInput
from opsflow.spec import Provider

STACK = "shop"

Launcher = Callable[[str], LaunchResult]


@pytest.fixture
def opsflow_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "opsflow home"  # a space: every path must be quoted on its way
    monkeypatch.setenv("OPSFLOW_HOME", str(home))
    return home


@pytest.fixture
def launch(opsflow_home: Path) -> Iterator[Launcher]:
    """Launch local instances; every sshd started is terminated at the end, whatever happens."""
    launched: list[str] = []

    def _launch(hostname: str) -> LaunchResult:
        launched.append(hostname)
        return local_provider.launch(
            LaunchInput(stack=STACK, hostname=hostname, provider=Provider.LOCAL)
        )

    try:
        yield _launch
    finally:
        ssh.close_all()
        for hostname in launched:
            local_provider.terminate(
                MachineInput(stack=STACK, hostname=hostname, provider=Provider.LOCAL)
            )


@pytest.fixture
def instance(launch: Launcher) -> LaunchResult:
    return launch("web1")

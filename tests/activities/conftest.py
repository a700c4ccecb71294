"""Local instances for the activity tests (real sshd's in a temporary OPSFLOW_HOME), and
helpers to run recipes on them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities import local_provider, ssh
from activities.recipes.runner import RecipeActivities
from opsflow.messages import (
    InstanceView,
    LaunchInput,
    LaunchResult,
    MachineInput,
    RecipeRunInput,
    RecipeRunResult,
    RunContext,
)
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


# ---- recipe runs ------------------------------------------------------------------------

Runner = Callable[..., RecipeRunInput]


@pytest.fixture
def request_for(instance: LaunchResult) -> Runner:
    """A RecipeRunInput for web1 (layer `web`); keyword arguments override fields."""

    def make(
        run_id: str, recipes: list[str] | None = None, event: str = "setup", **fields: Any
    ) -> RecipeRunInput:
        return RecipeRunInput(
            stack=STACK,
            hostname="web1",
            event=event,
            recipes=recipes,
            run_id=run_id,
            ssh=instance.ssh,
            root=instance.root,
            instance=InstanceView(hostname="web1", layers=["web"]),
            **fields,
        )

    return make


def runner_for(context: RunContext) -> RecipeActivities:
    async def source(_: RecipeRunInput) -> RunContext:
        return context

    return RecipeActivities(source)


async def run(acts: RecipeActivities, request: RecipeRunInput) -> RecipeRunResult:
    return await ActivityEnvironment().run(acts.run_recipes, request)


def write_tree(top: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (top / name).parent.mkdir(parents=True, exist_ok=True)
        (top / name).write_text(text)
    return top


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def remote_file(instance: LaunchResult, path: str) -> str:
    """A file on the instance, read over SSH like the runner would."""
    code, out, err = ssh.run(instance.ssh, f"cat {ssh.quote(path)}")
    assert code == 0, err
    return out

"""Recorded histories replay on today's workflow code: a change that would break running
workflows (non-determinism) fails here, before it reaches a worker."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.deployment import DeploymentWorkflow
from workflows.healing import LayerHealingWorkflow
from workflows.instance import InstanceWorkflow
from workflows.stack import StackWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_histories_were_recorded() -> None:
    kinds = {path.name.split("_")[0] for path in HISTORIES}
    assert kinds == {"stack", "instance", "deployment", "healing"}


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_history_replays_deterministically(path: Path) -> None:
    replayer = Replayer(
        workflows=[StackWorkflow, InstanceWorkflow, DeploymentWorkflow, LayerHealingWorkflow],
        data_converter=pydantic_data_converter,
    )
    history = WorkflowHistory.from_json(path.stem.replace("_", ":"), path.read_text())
    await replayer.replay_workflow(history)

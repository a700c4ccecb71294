"""The stack workflow's state: nested per concern, and still loading the flat state a run
of an earlier version continued as new with."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsflow.messages import AppAction, AppRelease, DeploymentStatus, DeploymentSummary
from opsflow.releases import KEEP_RELEASES
from opsflow.state import CommandsState, InstanceState, StackState
from opsflow.status import InstanceStatus

HISTORY = Path(__file__).parents[1] / "workflows" / "histories" / "stack_replaycan.json"

FLAT: dict[str, Any] = {
    "tag_runs": False,
    "max_history_events": 40,
    "spec": {"name": "shop", "layers": [{"name": "web", "instances": [{"hostname": "w1"}]}]},
    "source_file": "shop.yaml",
    "instances": {
        "w1": {"hostname": "w1", "layers": ["web"], "status": "online", "provider": "local"}
    },
    "configure_pending": True,
    "configure_rounds": 3,
    "deployment_seq": 7,
    "deleting": False,
    "events": [],
    "apps": {"hello": {"app": "hello", "action": "deploy", "release": "r7"}},
    "deployments": [],
    "pending_releases": {},
    "healing": {},
    "load_scaling": {},
    "scaling": {"w1": "load"},
    "schedules": {},
    "scaled": {"w1": True},
    "registered": {},
    "rds": {},
    "cookbooks": None,
}


def test_the_flat_state_of_earlier_versions_loads_into_its_parts() -> None:
    state = StackState.model_validate(FLAT)
    assert (state.tag_runs, state.max_history_events) == (False, 40)
    assert state.applied.spec is not None and state.applied.spec.name == "shop"
    assert state.applied.source_file == "shop.yaml"
    assert state.members.instances["w1"].status == InstanceStatus.ONLINE
    assert (state.members.configure_pending, state.members.configure_rounds) == (True, 3)
    assert state.commands.deployment_seq == 7
    assert state.commands.apps["hello"].release == "r7"
    assert state.loops.scaling == {"w1": "load"} and state.loops.scaled == {"w1": True}


def test_the_state_continues_as_new_nested_and_loads_back_the_same() -> None:
    state = StackState.model_validate(FLAT)
    dumped = state.model_dump(mode="json")
    assert {"applied", "members", "commands", "loops"} <= dumped.keys()
    assert "instances" not in dumped and "spec" not in dumped
    assert StackState.model_validate(dumped) == state


def test_a_new_stack_starts_empty() -> None:
    state = StackState(tag_runs=True, max_history_events=None)
    assert state.applied.spec is None and state.members.instances == {}


def test_the_recorded_continued_run_s_input_loads() -> None:
    started = json.loads(HISTORY.read_text())["events"][0]
    attributes = started["workflowExecutionStartedEventAttributes"]
    assert attributes["continuedExecutionRunId"]  # recorded from a run continued as new
    flat = json.loads(base64.b64decode(attributes["input"]["payloads"][0]["data"]))
    assert "instances" in flat  # the old, flat shape
    state = StackState.model_validate(flat)
    assert state.applied.spec is not None and sorted(state.members.instances) == ["web1", "web2"]
    assert state.commands.deployment_seq == flat["deployment_seq"] > 0


def test_an_instance_state_that_still_carries_its_provider_loads() -> None:
    view = {"hostname": "w1", "layers": ["web"], "status": "online", "provider": "local"}
    state = InstanceState.model_validate({"stack": "shop", "view": view, "provider": "local"})
    assert state.view.hostname == "w1"


# ---- which release is current after deploys and rollbacks ----------------------------------


def _ended(
    commands: CommandsState, number: int, command: str, release: AppRelease | None, ok: bool = True
) -> None:
    """Deployment `number` ran `command` (making `release` current if it succeeds) and ended."""
    if release is not None:
        commands.pending_releases[f"d{number}"] = release
    commands.finished(
        DeploymentSummary(
            id=f"d{number}",
            stack="s",
            app="hello",
            command=command,
            status=DeploymentStatus.SUCCESSFUL if ok else DeploymentStatus.FAILED,
            started_at=datetime.now(UTC),
        )
    )


def _release(n: int) -> AppRelease:
    return AppRelease(app="hello", action=AppAction.DEPLOY, release=f"{n:04d}-local")


def test_a_rollback_makes_the_release_deployed_before_current_again() -> None:
    commands = CommandsState()
    for n in (1, 2, 3):
        _ended(commands, n, "deploy", _release(n))
    assert commands.apps["hello"].release == "0003-local"
    back = commands.rollback_target("hello", None)
    assert back is not None and back.release == "0002-local"
    _ended(commands, 4, "rollback", back)
    assert commands.apps["hello"].release == "0002-local"
    # Again: one further back. `--to` names any release still kept.
    assert commands.rollback_target("hello", None) == _release(1)
    assert commands.rollback_target("hello", "0003-local") == _release(3)
    assert commands.rollback_target("hello", "0009-local") is None


def test_a_failed_deployment_changes_nothing_and_leaves_nothing_pending() -> None:
    commands = CommandsState()
    _ended(commands, 1, "deploy", _release(1))
    _ended(commands, 2, "deploy", _release(2), ok=False)
    _ended(commands, 3, "rollback", _release(0), ok=False)
    assert commands.apps["hello"] == _release(1)
    assert [r.release for r in commands.history["hello"]] == ["0001-local"]
    assert commands.pending_releases == {}
    assert commands.rollback_target("hello", None) is None  # nothing before 0001


def test_the_history_keeps_what_instances_keep_and_an_undeploy_clears_it() -> None:
    commands = CommandsState()
    for n in range(1, KEEP_RELEASES + 3):
        _ended(commands, n, "deploy", _release(n))
    kept = [r.release for r in commands.history["hello"]]
    assert kept == [f"{n:04d}-local" for n in range(3, KEEP_RELEASES + 3)]
    _ended(commands, 99, "undeploy", None)
    assert "hello" not in commands.apps and "hello" not in commands.history
    assert commands.rollback_target("hello", None) is None

"""Stack events: a known kind is its EventKind, an unknown one (a newer worker's) still
loads, and the wire form of events and deployment summaries is their plain values."""

from __future__ import annotations

from datetime import UTC, datetime

from opsflow.events import EventKind
from opsflow.healing import HEALING_EVENTS, Action
from opsflow.messages import DeploymentStatus, DeploymentSummary, ScaleRequest, StackEvent
from opsflow.rollout import Strategy
from opsflow.spec import Scaling

AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def test_a_known_kind_loads_as_its_event_kind() -> None:
    event = StackEvent.model_validate({"at": AT, "kind": "healed", "message": "w1 healed"})
    assert event.kind is EventKind.HEALED


def test_a_kind_this_version_does_not_know_still_loads_as_text() -> None:
    event = StackEvent.model_validate({"at": AT, "kind": "teleported", "message": "?"})
    assert event.kind == "teleported" and not isinstance(event.kind, EventKind)


def test_an_event_is_written_as_before() -> None:
    event = StackEvent(at=AT, kind=EventKind.SCALED_UP, message="layer web: scale up")
    assert event.model_dump(mode="json")["kind"] == "scaled_up"
    assert '"kind":"scaled_up"' in event.model_dump_json()


def test_every_healing_decision_is_recorded_as_an_event_kind() -> None:
    assert {EventKind(action.value) for action in Action} <= HEALING_EVENTS


def test_a_deployment_summary_is_written_as_before() -> None:
    summary = DeploymentSummary.model_validate(
        {
            "id": "deployment:shop:3",
            "stack": "shop",
            "command": "deploy",
            "strategy": "rolling",
            "status": "running",
            "started_at": AT,
        }
    )
    assert (summary.strategy, summary.status) == (Strategy.ROLLING, DeploymentStatus.RUNNING)
    dumped = summary.model_dump(mode="json")
    assert (dumped["strategy"], dumped["status"]) == ("rolling", "running")


def test_a_scale_request_names_its_source_as_before() -> None:
    request = ScaleRequest(hostname="w1", run=True, reason="9-17", source=Scaling.TIME)
    assert request.model_dump(mode="json")["source"] == "time"
    assert ScaleRequest.model_validate(request.model_dump(mode="json")) == request

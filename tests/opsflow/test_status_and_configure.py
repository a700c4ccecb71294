"""Status rules and configure coalescing decisions."""

from __future__ import annotations

import pytest

from opsflow.configure import is_superseded
from opsflow.messages import InstanceCommand, InstanceCommandKind
from opsflow.status import (
    InstanceStatus,
    entered_or_left_online,
    why_not_run_recipes,
    why_not_start,
    why_not_stop,
)

S = InstanceStatus


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (S.RUNNING_SETUP, S.ONLINE, True),
        (S.ONLINE, S.STOPPING, True),
        (None, S.REQUESTED, False),
        (S.BOOTING, S.RUNNING_SETUP, False),
        (S.RUNNING_SETUP, S.SETUP_FAILED, False),
        (S.ONLINE, S.ONLINE, False),
    ],
)
def test_configure_is_due_exactly_when_online_membership_changes(
    before: InstanceStatus | None, after: InstanceStatus, expected: bool
) -> None:
    assert entered_or_left_online(before, after) is expected


def test_command_permissions() -> None:
    assert why_not_start(S.STOPPED) is None
    assert "only a stopped or failed" in (why_not_start(S.ONLINE) or "")
    assert why_not_stop(S.ONLINE) is None
    assert "not running" in (why_not_stop(S.STOPPED) or "")
    assert why_not_run_recipes(S.ONLINE) is None
    assert "recipes run only on online" in (why_not_run_recipes(S.BOOTING) or "")


def configure(generation: int, reply_to: str | None = None) -> InstanceCommand:
    return InstanceCommand(
        id=f"c{generation}",
        kind=InstanceCommandKind.RUN,
        event="configure",
        generation=generation,
        reply_to=reply_to,
    )


def test_older_configure_is_superseded_by_a_newer_queued_one() -> None:
    assert is_superseded(configure(1), [configure(2)])
    assert not is_superseded(configure(2), [configure(1)])
    assert not is_superseded(configure(1), [])


def test_configure_a_user_asked_for_always_runs() -> None:
    assert not is_superseded(configure(0, reply_to="deployment:shop:1"), [configure(2)])


def test_setup_is_never_superseded() -> None:
    setup = InstanceCommand(id="s", kind=InstanceCommandKind.RUN, event="setup")
    assert not is_superseded(setup, [configure(5)])

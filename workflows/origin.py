"""This worker's own store and key, which update validators check every change against.

Set once when the worker starts (worker.py), before it polls; read by the stack's update
validators through `check`. A value that differs between workers is safe there because
validators never run on replay (the SDK skips them: `run_validator` is false when
replaying), so no recorded history depends on it. Unset (tests, a worker built without
it), nothing is checked.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from opsflow.origin import ClientOrigin, refusal
    from workflows.failures import invalid

_own: ClientOrigin | None = None


def set_own(origin: ClientOrigin | None) -> None:
    """This worker's store and key fingerprint (None: check nothing)."""
    global _own
    _own = origin


def check(sent: ClientOrigin | None) -> None:
    """Refuse (InvalidInput, exit 2 at the CLI) a change sent with another store or key."""
    problem = refusal(sent, _own)
    if problem is not None:
        raise invalid(problem)

"""Drills: crashing a machine on purpose (`opsflow instance kill`), or cutting it off the
network and giving it back (`kill --network`, `restore-network`), to see healing work.

What the drill workflows are given, and their ids: one run per drill, so each has its own
history (`kill:{stack}:{hostname}:{nonce}`, `network:{stack}:{hostname}:{nonce}`).
"""

from __future__ import annotations

from pydantic import BaseModel


class KillInstanceInput(BaseModel):
    """The local instance whose sshd (and every connection it serves) is SIGKILLed."""

    stack: str
    hostname: str
    task_queue: str | None = None  # the worker the instance is bound to (None: any worker)


def kill_workflow_id(stack: str, hostname: str, nonce: str) -> str:
    return f"kill:{stack}:{hostname}:{nonce}"


class NetworkDrillInput(BaseModel):
    """Cut an isolated local instance's link (`cut`), or give it back."""

    stack: str
    hostname: str
    cut: bool
    task_queue: str | None = None


def network_drill_workflow_id(stack: str, hostname: str, nonce: str) -> str:
    return f"network:{stack}:{hostname}:{nonce}"

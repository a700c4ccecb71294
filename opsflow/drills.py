"""Drills: crashing a machine on purpose (`opsflow instance kill`) to see healing work.

What the kill workflow is given, and its id: one run per kill, so each drill has its own
history (`kill:{stack}:{hostname}:{nonce}`).
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

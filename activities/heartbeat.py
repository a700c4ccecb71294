"""Heartbeats for async activities whose work waits elsewhere (a thread, a socket)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from temporalio import activity

HEARTBEAT_SECONDS = 5.0

_T = TypeVar("_T")


async def heartbeating(work: Awaitable[_T], *details: Any) -> _T:
    """Await `work`, heartbeating with `details` every HEARTBEAT_SECONDS meanwhile (an
    async activity can only heartbeat from its event loop, not from the thread doing the
    work). Cancellation is not waited out: a thread ends on its own timeout."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=HEARTBEAT_SECONDS)
            if done:
                return task.result()
            heartbeat(*details)
    except asyncio.CancelledError:
        task.cancel()
        raise


def heartbeat(*details: Any) -> None:
    if activity.in_activity():
        activity.heartbeat(*details)

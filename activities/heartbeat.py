"""Heartbeats for async activities whose work waits elsewhere (a thread, a socket): the
one helper every activity uses to wait while heartbeating."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable
from typing import Any, TypeVar

from temporalio import activity

HEARTBEAT_SECONDS = 5.0

_T = TypeVar("_T")


async def heartbeating(
    work: Awaitable[_T],
    *details: Any,
    every: float = HEARTBEAT_SECONDS,
    at_once: bool = False,
    stop: threading.Event | None = None,
) -> _T:
    """Await `work`, heartbeating with `details` every `every` seconds meanwhile (an async
    activity can only heartbeat from its event loop, not from the thread doing the work);
    `at_once`: a first heartbeat before waiting. Cancellation is not waited out (a thread
    cannot be stopped: it ends on its own timeout), unless `stop` is given: then it is set
    and the work gets `every` seconds more to clean up."""
    task = asyncio.ensure_future(work)
    try:
        if at_once:
            heartbeat(*details)
        while True:
            done, _ = await asyncio.wait({task}, timeout=every)
            if done:
                return task.result()
            heartbeat(*details)
    except asyncio.CancelledError:
        if stop is not None:
            stop.set()
            await asyncio.wait({task}, timeout=every)
        if task.done():
            if not task.cancelled():
                task.exception()  # the work's own end of the cancellation: nothing to say
        else:
            task.cancel()
        raise


def heartbeat(*details: Any) -> None:
    if activity.in_activity():
        activity.heartbeat(*details)

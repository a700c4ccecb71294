"""The one wait-while-heartbeating helper, in a real activity environment."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from temporalio.testing import ActivityEnvironment

from activities.heartbeat import heartbeating


def beats_of(env: ActivityEnvironment) -> list[tuple[object, ...]]:
    beats: list[tuple[object, ...]] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    return beats


async def test_it_heartbeats_with_its_details_while_the_work_waits() -> None:
    env = ActivityEnvironment()
    beats = beats_of(env)

    async def waits() -> str:
        return await heartbeating(asyncio.sleep(0.35, "done"), 7, "x", every=0.1)

    assert await env.run(waits) == "done"
    assert 2 <= len(beats) <= 4 and set(beats) == {(7, "x")}


async def test_a_first_heartbeat_at_once_only_when_asked() -> None:
    env = ActivityEnvironment()
    beats = beats_of(env)

    async def quick(at_once: bool) -> None:
        await heartbeating(asyncio.sleep(0), every=5, at_once=at_once)

    await env.run(quick, False)
    assert beats == []
    await env.run(quick, True)
    assert beats == [()]


async def test_on_cancel_the_work_is_told_to_stop_and_given_time_to_end() -> None:
    stop = threading.Event()
    ended = threading.Event()

    def work() -> None:
        stop.wait(5)
        time.sleep(0.05)  # cleaning up
        ended.set()
        raise RuntimeError("stopped")  # retrieved by the helper, never logged as lost

    task = asyncio.ensure_future(heartbeating(asyncio.to_thread(work), every=1, stop=stop))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stop.is_set() and ended.is_set()


async def test_on_cancel_without_stop_the_helper_does_not_wait_for_the_work() -> None:
    release = threading.Event()
    task = asyncio.ensure_future(heartbeating(asyncio.to_thread(release.wait, 5), every=1))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 0.5
    release.set()

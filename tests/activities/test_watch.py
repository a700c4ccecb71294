"""watch_layer against real sshd's: a killed instance is lost at once, a frozen one (a
silent partition) once its keepalive goes unanswered, a dropped connection whose sshd still
answers is not a loss, and the watch holds the pooled connection (one per instance)."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest
from temporalio.testing import ActivityEnvironment

from activities import local_provider, ssh
from activities.watch import WatchActivities
from opsflow.messages import InstanceView, LayerProbeReport, WatchLayerInput, WatchTarget
from tests.activities.conftest import STACK, Launcher
from tests.helpers import instance_processes, signal_all, signal_instance

pytestmark = pytest.mark.integration


def request(launched: dict[str, WatchTarget], max_seconds: float = 60) -> WatchLayerInput:
    return WatchLayerInput(
        stack=STACK,
        layer="web",
        instances=list(launched.values()),
        keepalive_interval=0.2,
        answer_within=1.0,
        max_seconds=max_seconds,
    )


class Stack:
    """The stack's view of the layer, as the watch reads it when it found a loss."""

    def __init__(self, hosts: list[str]) -> None:
        self.views = [InstanceView(hostname=h, layers=["web"]) for h in hosts]
        self.reads = 0

    async def layer(self, stack: str, layer: str) -> list[InstanceView]:
        assert (stack, layer) == (STACK, "web")
        self.reads += 1
        return self.views


def targets(launch: Launcher, *hosts: str) -> dict[str, WatchTarget]:
    return {h: WatchTarget(hostname=h, ssh=launch(h).ssh) for h in hosts}


async def watch(stack: Stack, ask: WatchLayerInput) -> asyncio.Task[LayerProbeReport]:
    task = asyncio.create_task(
        ActivityEnvironment().run(WatchActivities(stack.layer).watch_layer, ask)
    )
    await asyncio.sleep(1.0)  # connected, a few keepalives answered
    assert not task.done(), task
    return task


async def test_a_killed_instance_is_lost_at_once_with_the_stacks_view(launch: Launcher) -> None:
    launched = targets(launch, "web1", "web2")
    stack = Stack(["web1", "web2"])
    task = await watch(stack, request(launched))
    assert local_provider.kill(STACK, "web2")
    report = await asyncio.wait_for(task, 10)
    [lost] = report.outcomes
    assert (lost.hostname, lost.healthy, lost.decisive) == ("web2", False, True)
    port = launched["web2"].ssh.port
    assert f":{port}: SSH connection dropped" in lost.detail and "refused" in lost.detail
    assert report.instances == stack.views and stack.reads == 1


async def test_a_frozen_instance_is_lost_when_its_keepalive_goes_unanswered(
    launch: Launcher,
) -> None:
    launched = targets(launch, "web1", "web2")
    before = ssh.run(launched["web1"].ssh, 'echo "$SSH_CLIENT"')[1]
    task = await watch(Stack(["web1", "web2"]), request(launched))
    frozen = time.monotonic()
    signal_instance(STACK, "web1", signal.SIGSTOP)
    try:
        report = await asyncio.wait_for(task, 10)
        seconds = time.monotonic() - frozen
        # A watch started now (the loop replaces watches as the layer changes) finds the
        # verdict on the connection at once, long before its own budget would run out.
        patient = request(launched).model_copy(update={"answer_within": 600.0})
        again = await asyncio.wait_for(
            ActivityEnvironment().run(WatchActivities(Stack(["web1"]).layer).watch_layer, patient),
            10,
        )
    finally:
        signal_instance(STACK, "web1", signal.SIGCONT)
    [lost] = report.outcomes
    assert (lost.hostname, lost.decisive) == ("web1", True)
    assert "SSH keepalive unanswered for 1s" in lost.detail
    assert seconds >= 1.0, seconds  # never before its budget (load only makes it later)
    assert [o.detail for o in again.outcomes] == [lost.detail]
    # Thawed, the same connection answers again: the verdict is lifted.
    assert ssh.run(launched["web1"].ssh, 'echo "$SSH_CLIENT"')[1] == before
    calm = await ActivityEnvironment().run(
        WatchActivities(Stack(["web1"]).layer).watch_layer, request(launched, max_seconds=1.5)
    )
    assert calm.outcomes == []


async def test_a_dropped_connection_whose_sshd_answers_is_not_a_loss(launch: Launcher) -> None:
    launched = targets(launch, "web1")
    before = ssh.run(launched["web1"].ssh, 'echo "$SSH_CLIENT"')[1]
    task = await watch(Stack(["web1"]), request(launched, max_seconds=4))
    # The processes serving connections die, the listener stays: a blip, not a crash.
    served = instance_processes(STACK, "web1")[1:]
    signal_all(served, signal.SIGKILL)
    report = await asyncio.wait_for(task, 10)
    assert report.outcomes == [] and report.instances == []
    after = ssh.run(launched["web1"].ssh, 'echo "$SSH_CLIENT"')[1]
    assert served and after != before  # it was dropped, and a new one taken


async def test_the_watch_uses_the_pooled_connection(launch: Launcher) -> None:
    launched = targets(launch, "web1")
    before = ssh.run(launched["web1"].ssh, 'echo "$SSH_CLIENT"')[1]
    report = await ActivityEnvironment().run(
        WatchActivities(Stack(["web1"]).layer).watch_layer, request(launched, max_seconds=1.5)
    )
    assert report.outcomes == []
    assert ssh.run(launched["web1"].ssh, 'echo "$SSH_CLIENT"')[1] == before


async def test_two_watches_of_one_instance_share_its_keepalives(launch: Launcher) -> None:
    # A cancelled watch runs on beside its successor until it hears of it, and two layers
    # may hold one instance: their keepalives must not steal each other's answers.
    launched = targets(launch, "web1")
    first = await watch(Stack(["web1"]), request(launched))
    second = await watch(Stack(["web1"]), request(launched))
    await asyncio.sleep(2.0)  # ten keepalive rounds, all answered
    assert not first.done() and not second.done()
    signal_instance(STACK, "web1", signal.SIGSTOP)
    try:
        reports = await asyncio.wait_for(asyncio.gather(first, second), 10)
    finally:
        signal_instance(STACK, "web1", signal.SIGCONT)
    for report in reports:
        [lost] = report.outcomes
        assert lost.hostname == "web1" and "SSH keepalive unanswered for 1s" in lost.detail


async def test_an_instance_already_dead_when_a_watch_starts_is_lost_at_once(
    launch: Launcher,
) -> None:
    # A crash while one watch hands over to the next: the next one finds no connection.
    launched = targets(launch, "web1", "web2")
    assert local_provider.kill(STACK, "web2")
    stack = Stack(["web1", "web2"])
    report = await asyncio.wait_for(
        ActivityEnvironment().run(WatchActivities(stack.layer).watch_layer, request(launched)), 20
    )
    [lost] = report.outcomes
    assert (lost.hostname, lost.decisive) == ("web2", True)
    port = launched["web2"].ssh.port
    assert f":{port}: SSH failed" in lost.detail and "no connection to watch" in lost.detail
    assert report.instances == stack.views

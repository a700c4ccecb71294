"""The healing loop's CloudWatch gauges on the time-skipping server, activities replaced
(FakeCloud records each publish with its workflow time): an ec2 stack's layer publishes
once a minute, not every check round; its healing events go into the next gauges and
leave the count; a publish CloudWatch refuses does not stop healing; a local stack
publishes nothing."""

from __future__ import annotations

import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import pytest_asyncio
from temporalio.api.enums.v1 import EventType
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities import names as activity_names
from opsflow import names
from opsflow.healing import GAUGES_PERIOD, HEALING_EVENTS, HealingState
from opsflow.messages import LayerGaugesInput, StackDescription
from opsflow.spec import StackSpec
from opsflow.status import InstanceStatus
from tests.conftest import start_time_skipping
from tests.helpers import quiet
from tests.workflows.fakes import FakeCloud
from tests.workflows.test_healing import advance, kinds, running, spec, status, until
from workflows.healing import LayerHealingWorkflow

REGION = "us-east-1"


def ec2_spec(name: str, web: int = 2) -> StackSpec:
    local = spec(name, web=web, interval="5s")
    return StackSpec.model_validate(
        local.model_dump()
        | {
            "provider": "ec2",
            "region": REGION,
            "ec2": {"ami": "ami-0abc1234def567890", "instance_type": "t3.micro"},
        }
    )


def healing_events(found: StackDescription) -> int:
    return sum(1 for e in found.events if e.kind in HEALING_EVENTS)


async def loop_state(env: WorkflowEnvironment, stack: str) -> HealingState:
    handle = env.client.get_workflow_handle(names.healing_workflow_id(stack, "web"))
    state: HealingState = await handle.query(LayerHealingWorkflow.status)
    return state


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def own_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of this module's own. These tests need minutes of workflow
    time, and the session's server runs in real time once earlier tests have left
    workflows with activities no worker will ever pick up."""
    env = await start_time_skipping()
    try:
        yield env
    finally:
        await env.shutdown()


@asynccontextmanager
async def layer_loop_ended(env: WorkflowEnvironment) -> AsyncIterator[str]:
    """A new stack name; its healing loop is ended after the test: a loop left running
    with no worker would hold the clock to real time for the tests after it."""
    name = f"g{uuid.uuid4().hex[:8]}"
    try:
        yield name
    finally:
        loop = env.client.get_workflow_handle(names.healing_workflow_id(name, "web"))
        with contextlib.suppress(RPCError):
            await loop.terminate("test over")


async def publishes_until(
    env: WorkflowEnvironment, cloud: FakeCloud, count: int, seconds: int = 400
) -> list[tuple[datetime, LayerGaugesInput]]:
    for _ in range(seconds):
        if len(cloud.gauges) >= count:
            return list(cloud.gauges)
        await env.sleep(1)
    raise AssertionError(f"{len(cloud.gauges)} gauges in {seconds} simulated seconds")


async def test_an_ec2_layer_publishes_its_gauges_once_a_minute_not_every_round(
    own_env: WorkflowEnvironment,
) -> None:
    env, cloud = own_env, FakeCloud()
    async with layer_loop_ended(env) as name, running(env, cloud) as client:
        await client.apply(ec2_spec(name))
        await quiet(client, name)
        probes = len(cloud.probes)
        published = await publishes_until(env, cloud, 4)
        rounds = (len(cloud.probes) - probes) // 2  # two instances checked per round
        times = [at for at, _ in published]
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
        # Due a minute after the last; published by the first round past it (5 s rounds).
        assert all(60 <= gap < 60 + 5 + 2 for gap in gaps), gaps
        assert rounds >= 3 * 10  # ~12 rounds a minute, one publish
        _, last = published[-1]
        assert last == LayerGaugesInput(
            stack=name, layer="web", region=REGION, online=2, total=2, healing_events=0
        )
        state = await loop_state(env, name)
        assert state.config.region == REGION and state.gauges_at is not None
        assert abs((state.gauges_at - times[-1]).total_seconds()) < 1


async def test_healing_events_go_into_the_next_gauges_then_leave_the_count(
    own_env: WorkflowEnvironment,
) -> None:
    env, cloud = own_env, FakeCloud()
    async with layer_loop_ended(env) as name, running(env, cloud) as client:
        await client.apply(ec2_spec(name))
        await quiet(client, name)
        cloud.dead.add("web2")
        healed = await until(env, client, name, lambda d: "healed" in kinds(d, "web2"))
        assert kinds(healed, "web2") == ["health_detected", "heal_started", "healed"]
        healed_at = next(e.at for e in healed.events if e.kind == "healed")
        after = sum(1 for at, _ in cloud.gauges if at >= healed_at)
        published = await publishes_until(env, cloud, len(cloud.gauges) - after + 2)
        counts = [g.healing_events for _, g in published]
        # Each event is published exactly once, in the first gauges after it.
        assert sum(counts) == healing_events(await client.describe(name)) == 3
        assert counts[-1] == 0  # and then the count starts again
        for at, gauges in published:
            window = [e for e in healed.events if e.kind in HEALING_EVENTS and e.at <= at]
            earlier = sum(g.healing_events for t, g in published if t < at)
            assert gauges.healing_events == len(window) - earlier
        assert (await loop_state(env, name)).healing_events == 0


async def test_a_publish_cloudwatch_refuses_does_not_stop_healing(
    own_env: WorkflowEnvironment,
) -> None:
    env, cloud = own_env, FakeCloud(refuse_gauges=True)
    async with layer_loop_ended(env) as name, running(env, cloud) as client:
        await client.apply(ec2_spec(name))
        await quiet(client, name)
        cloud.dead.add("web2")
        healed = await until(env, client, name, lambda d: "healed" in kinds(d, "web2"))
        assert status(healed, "web2") == InstanceStatus.ONLINE
        await advance(env, 130)
        found = await client.describe(name)
        failed = [e for e in found.events if e.kind == "gauges_failed"]
        assert len(failed) == 1  # said once, though every minute's publish failed
        assert "AccessDenied" in failed[0].message and "healing goes on" in failed[0].message
        assert cloud.refused_gauges >= 3  # not retried (refused), tried once a minute
        state = await loop_state(env, name)
        assert state.gauges_error is not None and "AccessDenied" in state.gauges_error
        assert state.healing_events == 3  # kept for a publish that gets through

        cloud.refuse_gauges = False
        [(_, gauges)] = await publishes_until(env, cloud, 1, seconds=70)
        assert (gauges.online, gauges.total, gauges.healing_events) == (2, 2, 3)
        state = await loop_state(env, name)
        assert (state.gauges_error, state.healing_events) == (None, 0)


async def test_a_local_stack_publishes_nothing_and_schedules_no_publish(
    own_env: WorkflowEnvironment,
) -> None:
    env, cloud = own_env, FakeCloud()
    async with layer_loop_ended(env) as name, running(env, cloud) as client:
        await client.apply(spec(name, web=2, interval="5s"))
        await quiet(client, name)
        cloud.dead.add("web2")
        await until(env, client, name, lambda d: "healed" in kinds(d, "web2"))
        await advance(env, int(2 * GAUGES_PERIOD.total_seconds()))
        assert cloud.gauges == [] and cloud.refused_gauges == 0
        state = await loop_state(env, name)
        assert state.config.region is None
        assert (state.gauges_at, state.healing_events) == (None, 0)
        loop = env.client.get_workflow_handle(names.healing_workflow_id(name, "web"))
        scheduled = [
            e.activity_task_scheduled_event_attributes.activity_type.name
            async for e in loop.fetch_history_events()
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        ]
        # The checks (probes, and the watch of the online instances) and no publish.
        assert set(scheduled) == {activity_names.PROBE_LAYER, activity_names.WATCH_LAYER}

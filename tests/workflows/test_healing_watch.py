"""The healing loop's watch on the time-skipping server (FakeCloud's watch_layer: a host in
`crashed` drops its watched connection while its periodic probe still passes): a loss the
watch reports is decisive at once and healed; the watch follows the layer's membership; an
instance stopped on purpose whose connection drops is not healed; an instance that comes
back while it is being replaced is set up once."""

from __future__ import annotations

import uuid

from temporalio.testing import WorkflowEnvironment

from activities import names as activity
from opsflow.messages import InstanceActionKind
from opsflow.status import InstanceStatus
from tests.helpers import quiet
from tests.workflows.fakes import FakeCloud
from tests.workflows.test_healing import advance, kinds, running, spec, status, until


def watching(cloud: FakeCloud, hosts: list[str]) -> bool:
    """The last watch asked for holds exactly `hosts`."""
    return bool(cloud.watches) and [t.hostname for t in cloud.watches[-1].instances] == hosts


async def test_a_crash_the_watch_sees_is_lost_at_once_and_healed(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env, cloud = time_skipping_env, FakeCloud(watching=True)
    async with running(env, cloud) as client:
        name = f"w{uuid.uuid4().hex[:8]}"
        await client.apply(spec(name))
        await quiet(client, name)
        await until(env, client, name, lambda _: watching(cloud, ["web1", "web2", "web3"]))
        watch = cloud.watches[-1]
        assert (watch.keepalive_interval, watch.answer_within) == (1.0, 3.0)  # the check's
        probes = cloud.probes.count("web2")

        cloud.crashed.add("web2")  # its probe would pass: only the watch can see it
        healed = await until(env, client, name, lambda d: "healed" in kinds(d, "web2"))
        assert kinds(healed, "web2") == ["health_detected", "heal_started", "healed"]
        detected = next(e for e in healed.events if e.kind == "health_detected")
        assert detected.message.startswith("web2: SSH connection dropped")
        assert "in a row" not in detected.message  # no threshold
        lost = next(e for e in healed.events if "online -> connection_lost" in e.message)
        assert lost.hostname == "web2"
        assert cloud.events_for("setup").count("web2") == 2  # its first start, and the heal
        assert cloud.probes.count("web2") >= probes  # the periodic checks went on
        # The new machine is watched again, with the others.
        await until(env, client, name, lambda _: watching(cloud, ["web1", "web2", "web3"]))


async def test_the_watch_follows_the_layer_and_a_stopped_instance_is_not_healed(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env, cloud = time_skipping_env, FakeCloud(watching=True)
    async with running(env, cloud) as client:
        name = f"w{uuid.uuid4().hex[:8]}"
        await client.apply(spec(name, web=2, interval="1s"))
        await quiet(client, name)
        await until(env, client, name, lambda _: watching(cloud, ["web1", "web2"]))
        await client.instance_action(name, "web1", InstanceActionKind.STOP)
        cloud.crashed.add("web1")  # its machine goes down: the watched connection drops
        await until(env, client, name, lambda d: status(d, "web1") == InstanceStatus.STOPPED)
        await until(env, client, name, lambda _: watching(cloud, ["web2"]))
        await advance(env, 10)
        found = await client.describe(name)
        assert kinds(found, "web1") == [] and status(found, "web1") == InstanceStatus.STOPPED
        assert cloud.queues_of(activity.WATCH_LAYER, "web2") == {client.task_queue}


async def test_an_instance_back_while_it_is_replaced_is_set_up_once(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env, cloud = time_skipping_env, FakeCloud(watching=True)
    async with running(env, cloud) as client:
        name = f"w{uuid.uuid4().hex[:8]}"
        await client.apply(spec(name, web=2, interval="1s"))
        await quiet(client, name)
        await until(env, client, name, lambda _: watching(cloud, ["web1", "web2"]))
        cloud.recipe_seconds = 1.0  # the heal's setup takes a while

        cloud.crashed.add("web2")  # cut off...
        await until(env, client, name, lambda d: "heal_started" in kinds(d, "web2"))
        cloud.crashed.discard("web2")  # ...and back: its probes pass again meanwhile
        healed = await until(env, client, name, lambda d: "healed" in kinds(d, "web2"))
        await advance(env, 10)
        again = await client.describe(name)
        assert kinds(again, "web2") == kinds(healed, "web2")
        assert kinds(again, "web2") == ["health_detected", "heal_started", "healed"]
        assert cloud.events_for("setup").count("web2") == 2  # its first start, one heal
        assert status(again, "web2") == InstanceStatus.ONLINE

"""KillInstanceWorkflow on the time-skipping server, the kill activity replaced: the
client's `kill_instance` hands the kill to a worker and reads its answer."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import names
from client.api import OpsflowClient
from opsflow.drills import KillInstanceInput
from opsflow.errors import OperationFailed
from opsflow.messages import InstanceView, StackDescription
from opsflow.status import InstanceStatus
from tests.helpers import one_instance_stack
from workflows.drills import KillInstanceWorkflow


class StackOfOneLocalInstance(OpsflowClient):
    """A real OpsflowClient whose stack (the describe query) holds local instance web1."""

    async def describe(self, stack: str) -> StackDescription:
        view = InstanceView(hostname="web1", layers=["web"], status=InstanceStatus.ONLINE)
        return one_instance_stack(stack, view)


class FakeKill:
    """The kill activity, replaced: records what it was asked; `running` is its answer."""

    def __init__(self, running: bool) -> None:
        self.running = running
        self.asked: list[tuple[KillInstanceInput, str]] = []

    @activity.defn(name=names.KILL_INSTANCE)
    async def kill_instance(self, request: KillInstanceInput) -> bool:
        self.asked.append((request, activity.info().workflow_id or ""))
        return self.running


async def kill_with(env: WorkflowEnvironment, fake: FakeKill) -> StackDescription:
    queue = f"kill-{uuid.uuid4().hex[:8]}"
    client = StackOfOneLocalInstance(env.client, task_queue=queue, tag_runs=False)
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[KillInstanceWorkflow],
        activities=[fake.kill_instance],
    ):
        return await client.kill_instance("shop", "web1")


async def test_a_worker_kills_the_instance_in_a_run_of_its_own(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake = FakeKill(running=True)
    found = await kill_with(time_skipping_env, fake)
    assert [v.hostname for v in found.instances] == ["web1"]
    [(request, workflow_id)] = fake.asked
    assert request == KillInstanceInput(stack="shop", hostname="web1")
    assert workflow_id.startswith("kill:shop:web1:")
    assert len(workflow_id.removeprefix("kill:shop:web1:")) == 32  # a fresh uuid per kill


async def test_an_instance_whose_sshd_is_not_running_fails_and_is_tried_once(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake = FakeKill(running=False)
    with pytest.raises(OperationFailed, match=r"web1 is not running here .* nothing to kill"):
        await kill_with(time_skipping_env, fake)
    assert len(fake.asked) == 1


async def test_no_worker_is_a_clear_error_instead_of_a_hang(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client = StackOfOneLocalInstance(
        time_skipping_env.client,
        task_queue="nobody-kills-here",
        tag_runs=False,
        update_timeout=timedelta(seconds=5),
    )
    with pytest.raises(OperationFailed, match=r"no answer from kill:shop:web1:.* nobody-kills"):
        await client.kill_instance("shop", "web1")


class StackOfOneBoundInstance(OpsflowClient):
    """As StackOfOneLocalInstance, web1 bound to the worker `bound_to` names."""

    bound_to = ""

    async def describe(self, stack: str) -> StackDescription:
        view = InstanceView(
            hostname="web1", layers=["web"], status=InstanceStatus.ONLINE, task_queue=self.bound_to
        )
        return one_instance_stack(stack, view)


async def test_a_bound_instance_is_killed_by_its_own_worker_and_a_gone_one_says_so(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env, queue = time_skipping_env, f"kill-{uuid.uuid4().hex[:8]}"
    client = StackOfOneBoundInstance(env.client, task_queue=queue, tag_runs=False)
    client.bound_to = f"{queue}@a"
    shared, own = FakeKill(running=True), FakeKill(running=True)
    async with (
        Worker(
            env.client,
            task_queue=queue,
            workflows=[KillInstanceWorkflow],
            activities=[shared.kill_instance],
        ),
        Worker(env.client, task_queue=f"{queue}@a", activities=[own.kill_instance]),
    ):
        await client.kill_instance("shop", "web1")
        assert shared.asked == [] and len(own.asked) == 1
        assert own.asked[0][0].task_queue == f"{queue}@a"

        client.bound_to = f"{queue}@gone"  # nobody polls it: given up after 30 s
        with pytest.raises(OperationFailed, match=rf"worker {queue}@gone is gone: .* for 30s"):
            await client.kill_instance("shop", "web1")
        assert shared.asked == []

"""Every change is checked against the worker's store and key (workflows/origin.py): a
change sent with another store or key is refused by the update validator, naming both,
before anything is applied."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from temporalio.testing import WorkflowEnvironment

from client.api import OpsflowClient
from opsflow.errors import InvalidInput, NotFound
from opsflow.messages import AddInstanceInput, InstanceActionKind, RunCommandInput
from opsflow.origin import ClientOrigin
from opsflow.status import InstanceStatus
from tests.helpers import quiet
from tests.workflows.fakes import FakeCloud
from tests.workflows.test_stack_workflow import make_spec, running, stack_name
from workflows import origin

WORKERS = ClientOrigin(store="s3://team/opsflow", key_fingerprint="9f8e7d6c5b4a3210")


@pytest.fixture
def workers_origin() -> Iterator[ClientOrigin]:
    origin.set_own(WORKERS)
    try:
        yield WORKERS
    finally:
        origin.set_own(None)


def sending(client: OpsflowClient, sent: ClientOrigin) -> OpsflowClient:
    """A client on the same connection whose changes say they come from `sent`."""
    return OpsflowClient(
        client.temporal, task_queue=client.task_queue, tag_runs=False, origin=lambda: sent
    )


async def test_a_change_from_another_store_is_refused_naming_both_and_nothing_is_applied(
    time_skipping_env: WorkflowEnvironment, workers_origin: ClientOrigin
) -> None:
    cloud = FakeCloud()
    async with running(time_skipping_env, cloud) as client:
        name = stack_name()
        laptop = ClientOrigin(
            store="/home/me/.opsflow/artifacts", key_fingerprint="9f8e7d6c5b4a3210"
        )
        with pytest.raises(InvalidInput) as refused:
            await sending(client, laptop).apply(make_spec(name))
        message = str(refused.value)
        assert "store /home/me/.opsflow/artifacts and key 9f8e7d6c5b4a3210" in message
        assert "the workers use store s3://team/opsflow and key 9f8e7d6c5b4a3210" in message
        assert "OPSFLOW_ARTIFACTS" in message and "OPSFLOW_SECRET_KEY" not in message
        assert cloud.events_for("setup") == []
        with pytest.raises(NotFound):  # no stack came of it
            await client.describe(name)


async def test_changes_with_another_key_are_refused_and_the_matching_ones_go_through(
    time_skipping_env: WorkflowEnvironment, workers_origin: ClientOrigin
) -> None:
    cloud = FakeCloud()
    async with running(time_skipping_env, cloud) as client:
        name = stack_name()
        ours = sending(client, workers_origin)
        await ours.apply(make_spec(name, web=1, db=0))
        await quiet(client, name)
        setups = len(cloud.events_for("setup"))
        other = sending(client, workers_origin.model_copy(update={"key_fingerprint": "1a2b3c4d"}))
        refusals = [
            other.apply(make_spec(name, web=2, db=0)),
            other.add_instance(name, AddInstanceInput(layer="web", hostname="web9", start=True)),
            other.instance_action(name, "web1", InstanceActionKind.STOP),
            other.run_command(name, RunCommandInput(command="configure")),
            other.delete_stack(name),
        ]
        for change in refusals:
            with pytest.raises(InvalidInput) as refused:
                await change
            message = str(refused.value)
            assert "sent with store s3://team/opsflow and key 1a2b3c4d" in message
            assert "workers use store s3://team/opsflow and key 9f8e7d6c5b4a3210" in message
            assert "OPSFLOW_SECRET_KEY" in message and "OPSFLOW_ARTIFACTS" not in message
        found = await quiet(client, name)
        assert [(v.hostname, v.status) for v in found.instances] == [
            ("web1", InstanceStatus.ONLINE)
        ]
        assert not found.deleting
        assert len(cloud.events_for("setup")) == setups
        # A sender with no key sealed nothing: only its store is checked.
        keyless = sending(client, workers_origin.model_copy(update={"key_fingerprint": None}))
        await keyless.instance_action(name, "web1", InstanceActionKind.STOP)
        # Clients before the check send no origin: accepted as before.
        await client.delete_stack(name)

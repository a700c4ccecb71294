"""Configuration snapshots through a real artifact store (a directory): published by the
real activity from a real stack workflow (time-skipping server, other activities faked),
then read by digest for a run, verified and cached."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.snapshots import SnapshotActivities, SnapshotReader, store
from activities.stack_context import stack_context_source
from client.api import OpsflowClient
from opsflow import snapshots
from opsflow.messages import InstanceView, RecipeRunInput, SshEndpoint
from opsflow.status import InstanceStatus
from runtime.artifacts import StoreCorrupt
from tests.helpers import quiet
from tests.workflows.fakes import FakeCloud
from tests.workflows.test_stack_workflow import make_spec
from workflows.deployment import DeploymentWorkflow
from workflows.instance import InstanceWorkflow
from workflows.stack import StackWorkflow


@pytest.fixture(autouse=True)
def artifacts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    location = tmp_path / "store"
    monkeypatch.setenv("OPSFLOW_ARTIFACTS", str(location))
    return location


def run_on(view: InstanceView, snapshot: str | None) -> RecipeRunInput:
    assert view.ssh is not None and view.root is not None
    return RecipeRunInput(
        stack="s",
        hostname=view.hostname,
        event="configure",
        run_id=uuid.uuid4().hex,
        ssh=view.ssh,
        root=view.root,
        instance=view,
        snapshot=snapshot,
    )


async def test_the_stack_publishes_its_generation_and_runs_read_it_from_the_store(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud()
    real = SnapshotActivities(time_skipping_env.client).publish_snapshot
    faked = [a for a in cloud.activities() if a.__name__ != "publish_snapshot"]
    queue = f"test-{uuid.uuid4().hex[:8]}"
    name = f"s{uuid.uuid4().hex[:8]}"
    async with Worker(
        time_skipping_env.client,
        task_queue=queue,
        workflows=[StackWorkflow, InstanceWorkflow, DeploymentWorkflow],
        activities=[*faked, real],
    ):
        client = OpsflowClient(time_skipping_env.client, task_queue=queue, tag_runs=False)
        await client.apply(make_spec(name, web=2, db=1))
        found = await quiet(client, name)
    digests = [d for _, event, d in cloud.run_snapshots if event == "configure"]
    assert digests and None not in digests
    # Instances that come online apart (a slow machine) make more than one round: the
    # last one is the one after all three are online.
    digest = digests[-1]
    assert digest is not None
    pointer = store().read_named(snapshots.POINTER.format(stack=name))
    assert pointer is not None and pointer.decode() == digest
    # The round's snapshot shows every instance online: the generation that caused it.
    snapshot = snapshots.decode(store().get(digest))
    assert {v.hostname: v.status for v in snapshot.instances} == {
        "db1": InstanceStatus.ONLINE,
        "web1": InstanceStatus.ONLINE,
        "web2": InstanceStatus.ONLINE,
    }
    # A run reads it (no query: the source's client is never used) and gets the document
    # the stack's query answers for the same state.
    web1 = next(v for v in found.instances if v.hostname == "web1")
    source = stack_context_source(time_skipping_env.client)
    context = await source(run_on(web1, digest))
    layers = context.configuration["opsflow"]["layers"]
    assert sorted(layers["web"]["instances"]) == ["web1", "web2"]
    assert context.recipes == ["web::configure"]


async def test_a_snapshot_is_read_once_per_worker_and_a_corrupt_one_never_used() -> None:
    this = InstanceView(
        hostname="web1",
        layers=["web"],
        status=InstanceStatus.ONLINE,
        root="/r/web1",
        ssh=SshEndpoint(host="127.0.0.1", port=1, user="u", key_file="/k", host_key="k x"),
    )
    snapshot = snapshots.configuration_snapshot(make_spec("s"), [this], None, 4)
    data = snapshots.encode(snapshot)
    digest = store().put(data)
    reader = SnapshotReader()
    assert await reader.read(digest) == snapshot
    blob = Path(store().location, "blobs", "sha256", digest[:2], digest)
    blob.chmod(0o644)
    blob.write_bytes(data.replace(b'"web1"', b'"evil"'))
    assert await reader.read(digest) == snapshot  # cached: the store is not read again
    with pytest.raises(StoreCorrupt):
        await SnapshotReader().read(digest)  # a fresh worker refuses the changed bytes

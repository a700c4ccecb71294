"""A rolling deploy survives its worker being SIGKILLed twice (during the first batch and
during a later one): the deployment ends successful, every instance's `current` points at
the new release, and the deploy recipe ran exactly once per instance for that deployment
(the retried activities re-attached to the runs in flight)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from activities.names import RUN_RECIPES
from client.api import OpsflowClient
from client.stackfile import load_stack_file
from opsflow import names
from opsflow.messages import DeployInput, DeploymentStatus, InstanceDeployStatus
from opsflow.status import InstanceStatus
from tests.helpers import quiet
from tests.integration.conftest import make_stack_dir, start_worker

pytestmark = pytest.mark.integration

STACK = "durable"
HOSTS = [f"web{i}" for i in range(1, 11)]
BODY = f"""\
layers:
  - name: web
    recipes: {{deploy: [app::deploy]}}
    instances: [{", ".join(f"{{hostname: {h}}}" for h in HOSTS)}]
apps:
  - name: hello
    layers: [web]
    source: {{source: ./hello}}
"""
# Each start of the deploy recipe leaves a line; the test counts them per release.
DEPLOY = 'echo "$OPSFLOW_RUN_ID $OPSFLOW_RELEASE" >> deploys\nsleep 1.5\necho deployed\n'


def kill(worker: subprocess.Popen[bytes]) -> None:
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()


async def wait_for(predicate: Callable[[], bool], timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.05)


def deploy_lines(root: Path, release: str) -> list[str]:
    """The lines the deploy recipe left for `release` on one instance."""
    found = root / "deploys"
    if not found.exists():
        return []
    return [line for line in found.read_text().splitlines() if line.split()[-1:] == [release]]


async def test_rolling_deploy_survives_two_worker_kills_and_runs_each_recipe_once(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, opsflow_home: Path
) -> None:
    address = dev_env.client.service_client.config.target_host
    client = OpsflowClient(dev_env.client, task_queue=task_queue)
    stack_file = make_stack_dir(tmp_path, STACK, BODY, {"app::deploy": DEPLOY})
    (tmp_path / "hello").mkdir()
    (tmp_path / "hello" / "index.html").write_text("<h1>hello</h1>\n")
    spec = load_stack_file(stack_file)
    roots = {h: opsflow_home / "instances" / STACK / h / "root" for h in HOSTS}
    log = tmp_path / "worker.log"
    worker = start_worker(address, task_queue, log)
    try:
        await client.apply(spec)
        online = await quiet(client, STACK, timeout=60)
        assert [v.status for v in online.instances] == [InstanceStatus.ONLINE] * len(HOSTS)

        started = await client.deploy(
            STACK, DeployInput(app="hello", strategy="rolling", batch="3")
        )
        detail = await client.deployment_detail(started.deployment_id)
        release = detail.release
        assert release is not None
        assert [len(b) for b in detail.batches] == [3, 3, 3, 1], detail.batches
        first, later = detail.batches[0], detail.batches[2]

        # The first batch's recipes are running: kill the worker without warning.
        await wait_for(lambda: any(deploy_lines(roots[h], release) for h in first), 30)
        kill(worker)
        worker = start_worker(address, task_queue, log)
        # Again, while a later batch's recipes run.
        await wait_for(lambda: any(deploy_lines(roots[h], release) for h in later), 60)
        kill(worker)
        worker = start_worker(address, task_queue, log)

        result = await asyncio.wait_for(client.wait_deployment(started.deployment_id), 120)
        detail = await client.deployment_detail(started.deployment_id)
    finally:
        kill(worker)

    assert result.status == DeploymentStatus.SUCCESSFUL
    assert detail.status == DeploymentStatus.SUCCESSFUL.value
    assert sorted(r.hostname for r in result.instances) == sorted(HOSTS)
    assert all(r.ok and r.release == release for r in result.instances), result.instances
    assert all(
        i.status == InstanceDeployStatus.SUCCESSFUL and i.release == release
        for i in detail.instances
    ), detail.instances
    for hostname, root in roots.items():
        current = root / "srv" / "www" / "hello" / "current"
        assert os.readlink(current) == f"releases/{release}", hostname
        lines = deploy_lines(root, release)
        assert len(lines) == 1, f"{hostname}: deploy recipe started {len(lines)} times: {lines}"

    # The history shows it: a deploy run of each killed batch was retried after the crash
    # (a run_recipes ActivityTaskStarted with attempt >= 2) and completed.
    for batch in (first, later):
        attempts: dict[str, list[int]] = {}
        for hostname in batch:
            handle = dev_env.client.get_workflow_handle(names.instance_workflow_id(STACK, hostname))
            events = (await handle.fetch_history()).events
            runs = {
                e.event_id
                for e in events
                if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                and e.activity_task_scheduled_event_attributes.activity_type.name == RUN_RECIPES
            }
            attempts[hostname] = [
                e.activity_task_started_event_attributes.attempt
                for e in events
                if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
                and e.activity_task_started_event_attributes.scheduled_event_id in runs
            ]
        assert any(max(a, default=0) >= 2 for a in attempts.values()), (
            f"no run_recipes activity of batch {batch} was retried: {attempts}"
        )

"""A worker SIGKILLed while setup recipes run: the stack still comes online, and no recipe
run starts twice on an instance (the retried activity re-attaches to the run in flight)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from client.api import OpsflowClient
from client.stackfile import load_stack_file
from opsflow import names
from opsflow.status import InstanceStatus
from tests.helpers import quiet
from tests.integration.conftest import make_stack_dir, start_worker

pytestmark = pytest.mark.integration

HOSTS = ["slow1", "slow2", "slow3"]
BODY = """\
layers:
  - name: slow
    recipes: {setup: [slow::setup]}
    instances: [{hostname: slow1}, {hostname: slow2}, {hostname: slow3}]
"""
# Each start of the recipe leaves a line; the test counts them.
SLOW_SETUP = 'echo "$OPSFLOW_RUN_ID" >> setup-starts\nsleep 4\necho finished\n'


async def wait_for(predicate: object, timeout: float) -> None:
    assert callable(predicate)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.1)


async def test_sigkilled_worker_mid_setup_resumes_and_runs_each_recipe_once(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, opsflow_home: Path
) -> None:
    address = dev_env.client.service_client.config.target_host
    client = OpsflowClient(dev_env.client, task_queue=task_queue)
    spec = load_stack_file(make_stack_dir(tmp_path, "crash", BODY, {"slow::setup": SLOW_SETUP}))
    roots = [opsflow_home / "instances" / "crash" / h / "root" for h in HOSTS]
    log = tmp_path / "worker.log"
    worker = start_worker(address, task_queue, log)
    try:
        await client.apply(spec)
        # Every instance is inside its setup recipe: kill the worker without warning.
        await wait_for(lambda: all((root / "setup-starts").exists() for root in roots), 60)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        worker = start_worker(address, task_queue, log)
        found = await quiet(client, "crash", timeout=120)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    assert [v.status for v in found.instances] == [InstanceStatus.ONLINE] * 3
    for root in roots:
        starts = (root / "setup-starts").read_text().splitlines()
        assert len(starts) == 1, f"{root}: recipe started {len(starts)} times: {starts}"
    # The history shows it: the setup activity was retried after the crash and completed.
    for hostname in HOSTS:
        handle = dev_env.client.get_workflow_handle(names.instance_workflow_id("crash", hostname))
        history = await handle.fetch_history()
        attempts = [
            e.activity_task_started_event_attributes.attempt
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
        ]
        assert max(attempts) >= 2, f"{hostname}: no activity was retried ({attempts})"

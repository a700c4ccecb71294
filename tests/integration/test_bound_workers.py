"""Two real worker processes, each with its own OPSFLOW_HOME (as on two machines), one local
stack: every run of an instance happens on the worker that launched it, and a worker
killed for good has its instances reported lost and healed on the other.

Real time: the gone worker is noticed after workflows.common.WORKER_GONE_TIMEOUT (2m)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from client.api import OpsflowClient
from client.stackfile import load_stack_file
from opsflow.messages import StackDescription
from opsflow.secrets import new_key
from opsflow.settings import worker_queue
from opsflow.status import InstanceStatus
from runtime import run_logs
from runtime.artifacts import open_store
from tests.helpers import quiet, stop_local_sshds
from tests.integration.conftest import make_stack_dir, opsflow_cli, start_worker

pytestmark = pytest.mark.integration

HOSTS = ["web1", "web2"]
BODY = """\
layers:
  - name: web
    auto_healing: true
    health_check: {interval: 2s, unhealthy_threshold: 2, grace_period: 0}
    recipes: {setup: [web::setup], configure: [web::configure]}
    instances: [{hostname: web1}, {hostname: web2}]
"""
RECIPES = {"web::setup": "echo set up\n", "web::configure": "echo configured\n"}


def _stop(worker: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()


def _queues_of_runs(store: Path, stack: str, hostname: str) -> list[str | None]:
    """The task queue each saved run of an instance came from (newest first)."""
    return [s.meta.task_queue for s in run_logs.saved_runs(stack, hostname, open_store(str(store)))]


async def _worker_id(home: Path) -> str:
    for _ in range(300):
        found = home / "worker.id"
        if found.exists() and found.read_text().strip():
            return found.read_text().strip()
        await asyncio.sleep(0.1)
    raise AssertionError(f"no worker id written in {home}")


async def _until(
    client: OpsflowClient, stack: str, done: object, timeout: float
) -> StackDescription:
    assert callable(done)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = await client.describe(stack)
        if done(found):
            return found
        if loop.time() > deadline:
            raise AssertionError(f"not reached in {timeout:.0f}s: {found.events[-6:]}")
        await asyncio.sleep(1)


async def test_runs_stay_on_the_launching_worker_and_a_gone_worker_is_healed_on_the_other(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    address = dev_env.client.service_client.config.target_host
    client = OpsflowClient(dev_env.client, task_queue=task_queue)
    stack = "bound"
    spec = load_stack_file(make_stack_dir(tmp_path, stack, BODY, RECIPES))
    home_a, home_b = tmp_path / "home-a", tmp_path / "home-b"
    # Two machines: homes of their own, one store and one key between them (the CLI
    # names the same store and seals to the key the workers publish there).
    store = tmp_path / "store"
    shared = {"OPSFLOW_ARTIFACTS": str(store), "OPSFLOW_SECRET_KEY": new_key().decode()}
    cli = {"OPSFLOW_ARTIFACTS": str(store)}
    worker_a = start_worker(address, task_queue, tmp_path / "a.log", home_a, shared)
    worker_b: subprocess.Popen[bytes] | None = None
    try:
        queue_a = worker_queue(task_queue, await _worker_id(home_a))
        await client.apply(spec)  # only worker a runs: it launches both instances
        await quiet(client, stack, timeout=120)
        worker_b = start_worker(address, task_queue, tmp_path / "b.log", home_b, shared)
        queue_b = worker_queue(task_queue, await _worker_id(home_b))
        assert queue_a != queue_b

        # With b polling the shared queue too, every run of a's instances stays on a.
        listed = await opsflow_cli(
            ["instance", "list", stack, "-o", "json"], address, task_queue, extra=cli
        )
        assert listed.returncode == 0, listed.stderr
        assert {i["hostname"]: i["task_queue"] for i in json.loads(listed.stdout)} == {
            h: queue_a for h in HOSTS
        }
        for round_ in range(3):
            ran = await opsflow_cli(
                ["run", stack, "execute_recipes", "--recipes", "web::configure", "--wait"],
                address,
                task_queue,
                extra=cli,
            )
            assert ran.returncode == 0, f"round {round_}: {ran.stdout}{ran.stderr}"
        for host in HOSTS:
            queues = _queues_of_runs(store, stack, host)
            assert len(queues) >= 4  # setup, configure, 3 commands
            assert set(queues) == {queue_a}  # each from a's own queue, which only a polls
            assert not (home_b / "instances" / stack / host).exists()

        # a is gone for good: its instances are lost, then healed on b.
        _stop(worker_a)
        healed = await _until(
            client,
            stack,
            lambda d: (
                all(
                    v.status == InstanceStatus.ONLINE and v.task_queue == queue_b
                    for v in d.instances
                )
                and {e.hostname for e in d.events if e.kind == "healed"} >= set(HOSTS)
            ),
            timeout=300,
        )
        for host in HOSTS:
            detected = [
                e for e in healed.events if e.hostname == host and e.kind == "health_detected"
            ]
            assert detected, f"{host}: no health_detected event"
            assert f"worker {queue_a} is gone: nothing has run its tasks for 2m" in (
                detected[0].message
            )
            assert (home_b / "instances" / stack / host / "root").is_dir()
            assert _queues_of_runs(store, stack, host)[0] == queue_b  # the new machine's setup
    finally:
        _stop(worker_a)
        if worker_b is not None:
            _stop(worker_b)
        stop_local_sshds(home_a)
        stop_local_sshds(home_b)

"""The check on every change, for real: a worker process with its own store and key, and
the CLI as a user runs it with other settings. A CLI on another store, or with another
key, exits 2 naming both; the CLI with the workers' store and no key of its own seals
with the key they published and goes through."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from opsflow.secrets import key_fingerprint, new_key
from runtime.artifacts import open_store
from runtime.sealing import publish_key, published_key
from tests.integration.conftest import make_stack_dir, opsflow_cli, start_worker

BODY = """\
layers:
  - name: web
    recipes: {setup: [web::setup]}
apps:
  - name: site
    layers: [web]
    source: {source: ./site}
    environment:
      TOKEN: {value: sup3rs3cret, secure: true}
"""


async def test_a_cli_with_another_store_or_key_is_refused_and_the_matching_one_works(
    dev_env: WorkflowEnvironment,
    task_queue: str,
    tmp_path: Path,
    opsflow_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    address = dev_env.client.service_client.config.target_host
    team_store = str(tmp_path / "team-store")
    workers_key = new_key()
    stack_file = make_stack_dir(tmp_path, "origin", BODY, {"web::setup": "true\n"})
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("hi\n")

    monkeypatch.setenv("OPSFLOW_ARTIFACTS", team_store)
    monkeypatch.setenv("OPSFLOW_SECRET_KEY", workers_key.decode())
    worker = start_worker(address, task_queue, tmp_path / "worker.log")
    try:
        store = open_store(team_store)
        for _ in range(300):  # published at startup, before it polls
            if published_key(store) is not None or worker.poll() is not None:
                break
            await asyncio.sleep(0.1)
        found = published_key(store)
        assert found is not None, (tmp_path / "worker.log").read_text()
        assert found.fingerprint == key_fingerprint(workers_key)

        # A laptop left on the default store (with the right key).
        monkeypatch.delenv("OPSFLOW_ARTIFACTS")
        laptop = await opsflow_cli(["stack", "apply", str(stack_file)], address, task_queue)
        assert laptop.returncode == 2, laptop.stderr
        assert (
            f"sent with store {opsflow_home / 'artifacts'} and key {found.fingerprint}, but "
            f"the workers use store {team_store} and key {found.fingerprint}"
        ) in laptop.stderr
        assert "OPSFLOW_ARTIFACTS" in laptop.stderr and "Traceback" not in laptop.stderr

        # The workers' store, another key.
        monkeypatch.setenv("OPSFLOW_ARTIFACTS", team_store)
        other_key = new_key()
        monkeypatch.setenv("OPSFLOW_SECRET_KEY", other_key.decode())
        other = await opsflow_cli(["stack", "apply", str(stack_file)], address, task_queue)
        assert other.returncode == 2, other.stderr
        assert (
            f"sent with store {team_store} and key {key_fingerprint(other_key)}, but the "
            f"workers use store {team_store} and key {found.fingerprint}"
        ) in other.stderr
        assert "sup3rs3cret" not in other.stderr + other.stdout

        # The workers' store and no key of its own: the published key, accepted.
        monkeypatch.delenv("OPSFLOW_SECRET_KEY")
        applied = await opsflow_cli(["stack", "apply", str(stack_file)], address, task_queue)
        assert applied.returncode == 0, applied.stderr
        assert "sup3rs3cret" not in applied.stderr + applied.stdout

        monkeypatch.setenv("OPSFLOW_SECRET_KEY", other_key.decode())
        refused = await opsflow_cli(["stack", "delete", "origin"], address, task_queue)
        assert refused.returncode == 2 and "but the workers use" in refused.stderr
        monkeypatch.delenv("OPSFLOW_SECRET_KEY")
        deleted = await opsflow_cli(["stack", "delete", "origin", "--wait"], address, task_queue)
        assert deleted.returncode == 0, deleted.stderr
        log = (tmp_path / "worker.log").read_text()
        assert f"(store {team_store}, key {found.fingerprint})" in log
        assert "sup3rs3cret" not in log and workers_key.decode() not in log
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait()


async def test_a_worker_with_another_key_than_its_store_holds_does_not_start(
    dev_env: WorkflowEnvironment,
    task_queue: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    address = dev_env.client.service_client.config.target_host
    store = str(tmp_path / "store")
    first = new_key()
    publish_key(open_store(store), first)
    monkeypatch.setenv("OPSFLOW_ARTIFACTS", store)
    second = new_key()
    monkeypatch.setenv("OPSFLOW_SECRET_KEY", second.decode())
    worker = start_worker(address, task_queue, tmp_path / "worker.log")
    code = await asyncio.to_thread(worker.wait, 60)
    log = (tmp_path / "worker.log").read_text()
    assert code == 2, log
    assert key_fingerprint(first) in log and key_fingerprint(second) in log
    assert "Traceback" not in log and second.decode() not in log

"""execute_recipes, update_custom_cookbooks, command logs and cancellation, for real."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from client.api import OpsflowClient
from tests.integration.conftest import REPO, cli_env, make_stack_dir, opsflow_cli

pytestmark = pytest.mark.integration

BODY = """\
layers:
  - name: app
    recipes: {setup: [app::setup]}
    instances: [{hostname: app1}, {hostname: app2}]
"""
RECIPES = {
    "app::setup": "echo set up\n",
    "app::first": 'echo "first on $OPSFLOW_INSTANCE ($OPSFLOW_EVENT)" >> order\n',
    "app::second": "echo second >> order\n",
    "app::version": "cat $(dirname $0)/VERSION 2>/dev/null > version || echo none > version\n",
    "app::slow": "echo $$ > slow.pid\nsleep 120\necho never\n",
}


@pytest.fixture
def address(dev_env: WorkflowEnvironment) -> str:
    return dev_env.client.service_client.config.target_host


async def test_execute_recipes_in_order_and_read_their_logs(
    opsflow: OpsflowClient, address: str, task_queue: str, tmp_path: Path, opsflow_home: Path
) -> None:
    stack_file = make_stack_dir(tmp_path, "cmdshop", BODY, RECIPES)
    applied = await opsflow_cli(["stack", "apply", str(stack_file), "--wait"], address, task_queue)
    assert applied.returncode == 0, applied.stderr

    ran = await opsflow_cli(
        [
            "run",
            "cmdshop",
            "execute_recipes",
            "--recipes",
            "app::second,app::first",
            "--instance",
            "app2",
            "--wait",
            "-o",
            "json",
        ],
        address,
        task_queue,
    )
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)
    root = opsflow_home / "instances" / "cmdshop" / "app2" / "root"
    assert (root / "order").read_text().splitlines() == [
        "second",
        "first on app2 (execute_recipes)",
    ]
    assert not (opsflow_home / "instances" / "cmdshop" / "app1" / "root" / "order").exists()

    logs = await opsflow_cli(["command", "log", "cmdshop", result["id"]], address, task_queue)
    assert logs.returncode == 0, logs.stderr
    assert "app2" in logs.stdout and "app::second app::first" in logs.stdout
    run_id = result["instances"][0]["run_id"]
    one = await opsflow_cli(
        ["command", "log", "cmdshop", run_id, "--instance", "app2"], address, task_queue
    )
    assert one.returncode == 0 and run_id in one.stdout
    listed = await opsflow_cli(["command", "list", "cmdshop", "-o", "json"], address, task_queue)
    events = {(r["hostname"], r["event"]) for r in json.loads(listed.stdout)}
    assert {("app1", "setup"), ("app2", "setup"), ("app2", "execute_recipes")} <= events
    missing = await opsflow_cli(["command", "log", "cmdshop", "nope-1"], address, task_queue)
    assert missing.returncode == 2 and "no saved log" in missing.stderr

    bad = await opsflow_cli(
        ["run", "cmdshop", "execute_recipes", "--recipes", "app::nope"], address, task_queue
    )
    assert bad.returncode == 2 and "app::nope not in the stack's cookbooks" in bad.stderr
    injected = await opsflow_cli(
        ["run", "cmdshop", "execute_recipes", "--recipes", "app::first;touch /tmp/pwned"],
        address,
        task_queue,
    )
    assert injected.returncode == 2 and "expected cookbook::recipe" in injected.stderr


async def test_a_cli_on_another_machine_reads_the_logs_through_the_shared_store(
    opsflow: OpsflowClient, address: str, task_queue: str, tmp_path: Path, opsflow_home: Path
) -> None:
    # The CLI has an OPSFLOW_HOME of its own; it shares only OPSFLOW_ARTIFACTS with the
    # worker (whose store is its default one, under the worker's OPSFLOW_HOME).
    elsewhere = {
        "OPSFLOW_HOME": str(tmp_path / "cli machine"),
        "OPSFLOW_ARTIFACTS": str(opsflow_home / "artifacts"),
    }
    one = BODY.replace(", {hostname: app2}", "")
    stack_file = make_stack_dir(tmp_path, "farlogs", one, RECIPES)
    applied = await opsflow_cli(
        ["stack", "apply", str(stack_file), "--wait"], address, task_queue, env=elsewhere
    )
    assert applied.returncode == 0, applied.stderr
    ran = await opsflow_cli(
        ["run", "farlogs", "execute_recipes", "--recipes", "app::first", "--wait", "-o", "json"],
        address,
        task_queue,
        env=elsewhere,
    )
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)
    logs = await opsflow_cli(
        ["command", "log", "farlogs", result["id"]], address, task_queue, env=elsewhere
    )
    assert logs.returncode == 0, logs.stderr
    assert "app1" in logs.stdout and "opsflow: running app::first" in logs.stdout
    listed = await opsflow_cli(
        ["command", "list", "farlogs", "-o", "json"], address, task_queue, env=elsewhere
    )
    assert listed.returncode == 0, listed.stderr
    events = {(r["hostname"], r["event"]) for r in json.loads(listed.stdout)}
    assert {("app1", "setup"), ("app1", "execute_recipes")} <= events
    assert not (tmp_path / "cli machine" / "logs").exists()
    # a store the CLI does not share has none of them
    apart = {**elsewhere, "OPSFLOW_ARTIFACTS": str(tmp_path / "another store")}
    missing = await opsflow_cli(
        ["command", "log", "farlogs", result["id"]], address, task_queue, env=apart
    )
    assert missing.returncode == 2 and "no saved log" in missing.stderr


async def test_update_custom_cookbooks_restages_everywhere(
    opsflow: OpsflowClient, address: str, task_queue: str, tmp_path: Path, opsflow_home: Path
) -> None:
    stack_file = make_stack_dir(tmp_path, "cmdcb", BODY, RECIPES)
    (tmp_path / "cookbooks" / "app" / "VERSION").write_text("v1\n")
    assert (
        await opsflow_cli(["stack", "apply", str(stack_file), "--wait"], address, task_queue)
    ).returncode == 0
    (tmp_path / "cookbooks" / "app" / "VERSION").write_text("v2\n")
    updated = await opsflow_cli(
        ["run", "cmdcb", "update_custom_cookbooks", "--wait"], address, task_queue
    )
    assert updated.returncode == 0, updated.stderr
    ran = await opsflow_cli(
        ["run", "cmdcb", "execute_recipes", "--recipes", "app::version", "--wait"],
        address,
        task_queue,
    )
    assert ran.returncode == 0, ran.stderr
    for host in ("app1", "app2"):
        version = opsflow_home / "instances" / "cmdcb" / host / "root" / "version"
        assert version.read_text() == "v2\n"


async def test_ctrl_c_on_a_waiting_run_cancels_it_and_stops_the_recipe(
    opsflow: OpsflowClient, address: str, task_queue: str, tmp_path: Path, opsflow_home: Path
) -> None:
    stack_file = make_stack_dir(
        tmp_path, "cmdcancel", BODY.replace(", {hostname: app2}", ""), RECIPES
    )
    assert (
        await opsflow_cli(["stack", "apply", str(stack_file), "--wait"], address, task_queue)
    ).returncode == 0
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "client.cli",
        "run",
        "cmdcancel",
        "execute_recipes",
        "--recipes",
        "app::slow",
        "--wait",
        env=cli_env(address, task_queue),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    pid_file = opsflow_home / "instances" / "cmdcancel" / "app1" / "root" / "slow.pid"
    for _ in range(300):
        if pid_file.exists() and pid_file.read_text().strip():
            break
        await asyncio.sleep(0.1)
    recipe_pid = int(pid_file.read_text())
    process.send_signal(signal.SIGINT)
    _out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 130, err.decode()
    assert "cancelled" in err.decode()
    with pytest.raises(ProcessLookupError):
        os.kill(recipe_pid, 0)  # the recipe was stopped on the instance
    listed = await opsflow_cli(["command", "list", "cmdcancel", "-o", "json"], address, task_queue)
    slow = [r for r in json.loads(listed.stdout) if r["event"] == "execute_recipes"]
    assert slow and slow[0]["cancelled"] is True

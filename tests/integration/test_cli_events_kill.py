"""`opsflow stack events` and `opsflow instance kill` against the real dev server, the real
worker and real sshd instances.

The layers here have `auto_healing: false`: no healing loop runs, so an instance killed by
a test stays killed and the stack's events are only the ones the test causes.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from activities.local_provider import instance_dir
from client.api import OpsflowClient
from opsflow import names
from opsflow.messages import StackEvent
from opsflow.status import InstanceStatus
from tests.helpers import quiet
from tests.integration.conftest import make_stack_dir, opsflow_cli

pytestmark = pytest.mark.integration

RECIPES = {"app::setup": "echo up\n"}


def body(*hostnames: str) -> str:
    listed = ", ".join(f"{{hostname: {h}}}" for h in hostnames)
    return (
        "layers:\n"
        "  - name: app\n"
        "    auto_healing: false\n"
        "    recipes: {setup: [app::setup]}\n"
        f"    instances: [{listed}]\n"
    )


@pytest.fixture
def address(dev_env: WorkflowEnvironment) -> str:
    return dev_env.client.service_client.config.target_host


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def running(pid: int) -> bool:
    """Whether pid runs (a zombie, dead but not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


async def until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_stack_events_lists_filters_and_limits_the_stacks_events(
    opsflow: OpsflowClient,
    address: str,
    task_queue: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # one table row per line, whatever the terminal
    stack_file = make_stack_dir(tmp_path, "clievents", body("app1"), RECIPES)
    applied = await opsflow_cli(["stack", "apply", str(stack_file), "--wait"], address, task_queue)
    assert applied.returncode == 0, applied.stderr
    await quiet(opsflow, "clievents")

    listed = await opsflow_cli(["stack", "events", "clievents", "-o", "json"], address, task_queue)
    assert listed.returncode == 0, listed.stderr
    events = json.loads(listed.stdout)
    kinds = [e["kind"] for e in events]
    assert "applied" in kinds and "instance_status" in kinds
    assert all(set(e) == {"at", "kind", "message", "hostname", "details"} for e in events)
    times = [datetime.fromisoformat(e["at"]) for e in events]
    assert times == sorted(times)  # oldest first
    statuses = [e for e in events if e["kind"] == "instance_status"]
    assert all(e["hostname"] == "app1" for e in statuses)
    assert any(e["message"] == "app1: running_setup -> online" for e in statuses), statuses

    only = await opsflow_cli(
        ["stack", "events", "clievents", "--kind", "instance_status", "-o", "json"],
        address,
        task_queue,
    )
    assert only.returncode == 0, only.stderr
    assert json.loads(only.stdout) == statuses
    kinds_args = ["--kind", "applied", "--kind", "instance_status"]
    both = await opsflow_cli(
        ["stack", "events", "clievents", "-o", "json", *kinds_args], address, task_queue
    )
    assert json.loads(both.stdout) == [
        e for e in events if e["kind"] in ("applied", "instance_status")
    ]
    none = await opsflow_cli(
        ["stack", "events", "clievents", "--kind", "heal_started", "-o", "json"],
        address,
        task_queue,
    )
    assert none.returncode == 0 and json.loads(none.stdout) == []
    newest = await opsflow_cli(
        ["stack", "events", "clievents", "--limit", "2", "-o", "json"], address, task_queue
    )
    assert json.loads(newest.stdout) == events[-2:]
    other = await opsflow_cli(
        ["stack", "events", "clievents", "--instance", "nope", "-o", "json"], address, task_queue
    )
    assert json.loads(other.stdout) == []

    # An event as a healing loop records it, with the check output that triggered it.
    at = datetime.now(UTC).replace(microsecond=0)
    detected = StackEvent(
        at=at,
        kind="health_detected",
        message="app1 failed 2 health checks in a row",
        hostname="app1",
        details={"layer": "app", "check": "ssh: [Errno 111] Connection refused\nport 22"},
    )
    handle = opsflow.temporal.get_workflow_handle(names.stack_workflow_id("clievents"))
    await handle.signal("record_event", detected)
    for _ in range(100):
        if await opsflow.events("clievents", kinds=["health_detected"]):
            break
        await asyncio.sleep(0.1)
    table = await opsflow_cli(
        ["stack", "events", "clievents", "--instance", "app1", "--kind", "health_detected"],
        address,
        task_queue,
    )
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert all(h in lines[0] for h in ("TIME (UTC)", "KIND", "INSTANCE", "MESSAGE")), lines
    row = next(i for i, line in enumerate(lines) if "health_detected" in line)
    assert at.strftime("%Y-%m-%dT%H:%M:%SZ") in lines[row] and "app1" in lines[row]
    assert "app1 failed 2 health checks in a row" in lines[row]
    assert "check: ssh: [Errno 111] Connection refused" in lines[row + 1]
    assert "port 22" in lines[row + 2]
    shown = await opsflow_cli(
        ["stack", "events", "clievents", "--kind", "health_detected", "-o", "json"],
        address,
        task_queue,
    )
    assert json.loads(shown.stdout) == [detected.model_dump(mode="json")]

    zero = await opsflow_cli(["stack", "events", "clievents", "--limit", "0"], address, task_queue)
    assert zero.returncode == 2 and "--limit" in zero.stderr, zero.stderr
    unknown = await opsflow_cli(["stack", "events", "nosuchstack"], address, task_queue)
    assert unknown.returncode == 2 and "no stack named nosuchstack" in unknown.stderr

    deleted = await opsflow_cli(["stack", "delete", "clievents", "--wait"], address, task_queue)
    assert deleted.returncode == 0, deleted.stderr


async def test_instance_kill_crashes_a_local_instance_and_tells_the_stack_nothing(
    opsflow: OpsflowClient, address: str, task_queue: str, tmp_path: Path
) -> None:
    stack_file = make_stack_dir(tmp_path, "clikill", body("app1", "app2"), RECIPES)
    applied = await opsflow_cli(["stack", "apply", str(stack_file), "--wait"], address, task_queue)
    assert applied.returncode == 0, applied.stderr
    found = await quiet(opsflow, "clikill")
    views = {v.hostname: v for v in found.instances}
    ports = {h: v.ssh.port for h, v in views.items() if v.ssh is not None}
    assert set(ports) == {"app1", "app2"} and all(port_open(p) for p in ports.values())
    pid = int((instance_dir("clikill", "app1") / "ssh" / "sshd.pid").read_text())
    assert running(pid)

    killed = await opsflow_cli(["instance", "kill", "clikill", "app1"], address, task_queue)
    assert killed.returncode == 0, killed.stderr
    assert "app1: machine killed" in killed.stdout
    assert "auto_healing is off" in killed.stdout
    await until(lambda: not running(pid))
    assert not port_open(ports["app1"])
    assert port_open(ports["app2"])  # only app1's machine
    # Nothing was told to the stack: it still has app1 online.
    after = {v.hostname: v.status for v in (await opsflow.describe("clikill")).instances}
    assert after == {"app1": InstanceStatus.ONLINE, "app2": InstanceStatus.ONLINE}

    again = await opsflow_cli(["instance", "kill", "clikill", "app1"], address, task_queue)
    assert again.returncode == 1 and "not running" in again.stderr, again.stderr
    unknown = await opsflow_cli(["instance", "kill", "clikill", "nope"], address, task_queue)
    assert unknown.returncode == 2, unknown.stderr
    assert "stack clikill has no instance 'nope'" in unknown.stderr
    no_stack = await opsflow_cli(["instance", "kill", "nosuchstack", "app1"], address, task_queue)
    assert no_stack.returncode == 2 and "no stack named nosuchstack" in no_stack.stderr

    deleted = await opsflow_cli(["stack", "delete", "clikill", "--wait"], address, task_queue)
    assert deleted.returncode == 0, deleted.stderr

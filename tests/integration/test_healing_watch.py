"""The healing loop's watch for real (dev server, real worker activities, real sshd's), at
the default check settings (interval 5s, unhealthy_threshold 2, timeout 3s) but for the
grace period: a killed instance is lost by its dropped connection, not by failed checks in
a row, and healed; a frozen one (a silent partition: SIGSTOP of its sshd and the
processes serving its connections) is lost by its unanswered keepalive and replaced, set
up once on the new machine even though the old one is thawed meanwhile."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from activities import local_provider
from client.api import OpsflowClient
from client.stackfile import load_stack_file
from opsflow.messages import StackDescription
from opsflow.status import InstanceStatus
from tests.helpers import quiet, signal_instance, wait_for_event, watching
from tests.integration.conftest import make_stack_dir

pytestmark = pytest.mark.integration

RECIPES = {"web::setup": 'echo "setup $OPSFLOW_INSTANCE" >> "$OPSFLOW_ROOT/setup.log"\n'}
BODY = """layers:
  - name: web
    health_check: {grace_period: 0s}
    recipes: {setup: [web::setup]}
    instances: [{hostname: web1}, {hostname: web2}]
"""


def setups(found: StackDescription, host: str) -> list[str]:
    view = next(v for v in found.instances if v.hostname == host)
    assert view.root is not None
    log = Path(view.root) / "setup.log"
    return log.read_text().splitlines() if log.exists() else []


def healing(found: StackDescription, host: str) -> list[str]:
    return [e.kind for e in found.events if e.hostname == host and "heal" in e.kind]


async def started(opsflow: OpsflowClient, tmp_path: Path, name: str) -> StackDescription:
    await opsflow.apply(load_stack_file(make_stack_dir(tmp_path, name, BODY, RECIPES)))
    found = await quiet(opsflow, name)
    await watching(opsflow, name, "web")
    return found


async def test_a_killed_instance_is_lost_by_its_dropped_connection_and_healed(
    opsflow: OpsflowClient, tmp_path: Path
) -> None:
    found = await started(opsflow, tmp_path, "watchkill")
    port = next(v.ssh.port for v in found.instances if v.hostname == "web2" and v.ssh)
    assert local_provider.kill("watchkill", "web2")
    healed = await wait_for_event(opsflow, "watchkill", "healed", "web2")
    assert healing(healed, "web2") == ["health_detected", "heal_started", "healed"]
    detected = next(e for e in healed.events if e.kind == "health_detected")
    assert detected.message.startswith(f"web2: root@127.0.0.1:{port}: SSH connection dropped")
    assert "refused" in detected.message and "in a row" not in detected.message
    found = await quiet(opsflow, "watchkill")
    assert {v.status for v in found.instances} == {InstanceStatus.ONLINE}
    assert setups(found, "web2") == ["setup web2"]  # the new machine's
    await opsflow.delete_stack("watchkill")
    await opsflow.wait_stack_deleted("watchkill", timeout=120)


async def test_a_frozen_instance_is_lost_by_its_keepalive_and_set_up_once_when_replaced(
    opsflow: OpsflowClient, tmp_path: Path
) -> None:
    await started(opsflow, tmp_path, "watchcut")
    signal_instance("watchcut", "web1", signal.SIGSTOP)
    try:
        await wait_for_event(opsflow, "watchcut", "health_detected", "web1")
    finally:
        signal_instance("watchcut", "web1", signal.SIGCONT)  # back, while it is replaced
    healed = await wait_for_event(opsflow, "watchcut", "healed", "web1")
    assert healing(healed, "web1") == ["health_detected", "heal_started", "healed"]
    detected = next(e for e in healed.events if e.kind == "health_detected")
    assert "SSH keepalive unanswered for 3s" in detected.message
    found = await quiet(opsflow, "watchcut")
    assert {v.status for v in found.instances} == {InstanceStatus.ONLINE}
    assert setups(found, "web1") == ["setup web1"]
    assert healing(await opsflow.describe("watchcut"), "web1") == healing(healed, "web1")
    await opsflow.delete_stack("watchcut")
    await opsflow.wait_stack_deleted("watchcut", timeout=120)

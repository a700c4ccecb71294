"""Auto healing for real: the dev server, the real worker activities, real sshd instances.
A killed instance is noticed by its layer's healing loop, replaced (same hostname, new
machine, setup, the app's current release) and online again by itself; configure runs on
the others."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from activities import local_provider
from client.api import OpsflowClient
from client.stackfile import load_stack_file
from opsflow.messages import DeployInput, StackDescription
from opsflow.status import InstanceStatus
from tests.helpers import quiet, wait_for_event
from tests.integration.conftest import make_stack_dir

pytestmark = pytest.mark.integration

RECIPES = {
    "web::setup": 'echo "setup $OPSFLOW_INSTANCE" >> "$OPSFLOW_ROOT/setup.log"\n',
    "web::configure": 'echo configure >> "$OPSFLOW_ROOT/configure.log"\n',
    "web::deploy": 'echo "deploy $OPSFLOW_RELEASE" >> "$OPSFLOW_ROOT/deploy.log"\n',
}
BODY = """layers:
  - name: web
    health_check: {interval: 1s, unhealthy_threshold: 2, timeout: 2s, grace_period: 0s}
    recipes: {setup: [web::setup], configure: [web::configure], deploy: [web::deploy]}
    instances: [{hostname: web1}, {hostname: web2}, {hostname: web3}]
apps:
  - name: hello
    layers: [web]
    source: {source: ./hello}
"""


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def root(found: StackDescription, host: str) -> Path:
    view = next(v for v in found.instances if v.hostname == host)
    assert view.root is not None
    return Path(view.root)


async def test_a_killed_instance_comes_back_online_by_itself_and_the_others_reconfigure(
    opsflow: OpsflowClient, tmp_path: Path
) -> None:
    stack_file = make_stack_dir(tmp_path, "healing", BODY, RECIPES)
    (tmp_path / "hello").mkdir()
    (tmp_path / "hello" / "index.html").write_text("hello\n")
    await opsflow.apply(load_stack_file(stack_file))
    await quiet(opsflow, "healing")
    deployment = await opsflow.deploy("healing", DeployInput(app="hello"))
    await opsflow.wait_deployment(deployment.deployment_id)
    found = await quiet(opsflow, "healing")
    release = os.readlink(root(found, "web2") / "srv/www/hello/current")
    configured = {h: len(lines(root(found, h) / "configure.log")) for h in ("web1", "web3")}
    old_port = next(v.ssh.port for v in found.instances if v.hostname == "web2" and v.ssh)

    assert local_provider.kill("healing", "web2")
    healed = await wait_for_event(opsflow, "healing", "healed", "web2")
    kinds = [e.kind for e in healed.events if e.hostname == "web2" and "heal" in e.kind]
    assert kinds == ["health_detected", "heal_started", "healed"]
    detected = next(e for e in healed.events if e.kind == "health_detected")
    assert f":{old_port}" in detected.details["check"]  # what the check saw, e.g. refused
    assert "SSH" in detected.details["check"]

    found = await quiet(opsflow, "healing")
    assert {v.hostname: v.status for v in found.instances} == {
        h: InstanceStatus.ONLINE for h in ("web1", "web2", "web3")
    }
    # A new machine (its root was wiped): setup ran once on it, then the current release.
    web2 = root(found, "web2")
    assert lines(web2 / "setup.log") == ["setup web2"]
    assert os.readlink(web2 / "srv/www/hello/current") == release
    assert (web2 / "srv/www/hello/current/index.html").read_text() == "hello\n"
    # web2 left online and came back: configure ran again on the others.
    for host, before in configured.items():
        assert len(lines(root(found, host) / "configure.log")) > before
    # The instance's checks pass again: no second heal.
    await asyncio.sleep(3)
    again = await opsflow.describe("healing")
    assert [e.kind for e in again.events if e.hostname == "web2" and "heal" in e.kind] == kinds
    await opsflow.delete_stack("healing")
    await opsflow.wait_stack_deleted("healing", timeout=120)

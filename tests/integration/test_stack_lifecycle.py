"""A stack's whole life on the real dev server with real sshd instances and shell recipes."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from client.api import OpsflowClient
from client.stackfile import load_stack_file
from opsflow.messages import InstanceActionKind, RunCommandInput
from opsflow.status import InstanceStatus
from tests.helpers import quiet
from tests.integration.conftest import make_stack_dir

pytestmark = pytest.mark.integration

SHOP = """\
custom_json: {shop: {greeting: bonjour}}
layers:
  - name: web
    recipes:
      setup: [web::setup]
      configure: [web::configure]
      shutdown: [web::shutdown]
    instances: [{hostname: web1}, {hostname: web2}]
  - name: db
    recipes: {setup: [db::setup]}
    instances: [{hostname: db1}]
"""


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def test_stack_comes_online_configures_stops_and_deletes(
    opsflow: OpsflowClient, tmp_path: Path
) -> None:
    spec = load_stack_file(make_stack_dir(tmp_path, "itshop", SHOP))
    await opsflow.apply(spec)
    found = await quiet(opsflow, "itshop")
    views = {v.hostname: v for v in found.instances}
    assert {h: v.status for h, v in views.items()} == dict.fromkeys(
        ["db1", "web1", "web2"], InstanceStatus.ONLINE
    )
    web1_root = Path(views["web1"].root or "")
    # setup read custom_json from the attributes file
    assert (web1_root / "srv/www/index.html").read_text() == "bonjour from web1\n"
    # configure ran after all three came online and saw every layer's instances
    assert json.loads((web1_root / "etc/peers.json").read_text()) == {
        "web": ["web1", "web2"],
        "db": ["db1"],
    }
    web2 = views["web2"]
    assert web2.ssh is not None and port_open(web2.ssh.port)

    await opsflow.instance_action("itshop", "web2", InstanceActionKind.STOP)
    found = await opsflow.wait_instances(
        "itshop", lambda v: v is not None and v.status == InstanceStatus.STOPPED, ["web2"]
    )
    found = await quiet(opsflow, "itshop")
    assert not (Path(web2.root or "") / "srv/www/index.html").exists()  # shutdown recipe ran
    assert not port_open(web2.ssh.port)  # the machine is stopped
    # web2 left online: configure ran again on the others
    assert json.loads((web1_root / "etc/peers.json").read_text())["web"] == ["web1"]

    await opsflow.run_command("itshop", RunCommandInput(command="setup", instance="web1"))
    await opsflow.delete_stack("itshop")
    await opsflow.wait_stack_deleted("itshop", timeout=120)
    assert not web1_root.exists()


async def test_failing_setup_recipe_leaves_setup_failed_with_its_output(
    opsflow: OpsflowClient, tmp_path: Path
) -> None:
    body = """\
layers:
  - name: app
    recipes: {setup: [app::setup]}
    instances: [{hostname: app1}]
"""
    recipes = {"app::setup": "echo preparing\necho 'disk full' >&2\nexit 7\n"}
    spec = load_stack_file(make_stack_dir(tmp_path, "itfail", body, recipes))
    await opsflow.apply(spec)
    found = await quiet(opsflow, "itfail")
    view = found.instances[0]
    assert view.status == InstanceStatus.SETUP_FAILED
    assert "app::setup" in (view.message or "") and "7" in (view.message or "")
    tail = await opsflow.last_log_tail("itfail", "app1") or ""
    assert "preparing" in tail and "disk full" in tail
    await opsflow.delete_stack("itfail")
    await opsflow.wait_stack_deleted("itfail", timeout=60)

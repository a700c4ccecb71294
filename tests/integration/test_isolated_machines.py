"""Isolated local instances for real: systemd-nspawn machines, each with its own disk,
network namespace and address, driven by the real worker activities, the dev server and
the real CLI. What a recipe writes stays on its machine, never on this host."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from client.api import OpsflowClient
from client.stackfile import load_stack_file
from opsflow.local_network import machine_name
from opsflow.messages import InstanceActionKind, InstanceView, StackDescription
from opsflow.status import InstanceStatus
from tests.helpers import quiet, wait_for_event
from tests.integration.conftest import opsflow_cli
from tests.integration.isolated import free_port, left_on_host, machines, on_machine

pytestmark = pytest.mark.integration
__all__ = ["machines"]  # the fixture, used by name

# A Puppet module touching what real ones touch: /etc/motd, /etc/cron.d, a user, sudoers.d.
MOTD_MODULE = """class motd::setup {
  file { '/etc/motd':
    content => "motd of ${facts['networking']['hostname']}\\n",
  }
  file { '/etc/cron.d/opsflow-drill':
    content => "* * * * * root true\\n",
  }
  user { 'shopkeeper':
    ensure => present,
  }
  file { '/etc/sudoers.d/shopkeeper':
    content => "shopkeeper ALL=(ALL) NOPASSWD:ALL\\n",
    mode    => '0440',
  }
}
"""
PUPPET_STACK = """name: isolated
configuration_manager: puppet
cookbooks: {source: ./modules}
layers:
  - name: web
    auto_healing: false  # not about healing: a slow check on a loaded machine must not heal
    recipes: {setup: [motd::setup]}
    instances: [{hostname: web1}, {hostname: web2}]
"""
HOST_FILES = ("/etc/motd", "/etc/passwd", "/etc/cron.d", "/etc/sudoers.d")


@pytest.fixture
def address(dev_env: WorkflowEnvironment) -> str:
    return dev_env.client.service_client.config.target_host


def host_state() -> dict[str, object]:
    found: dict[str, object] = {}
    for name in HOST_FILES:
        path = Path(name)
        found[name] = sorted(os.listdir(path)) if path.is_dir() else path.read_bytes()
    return found


def machine_name_of(home: Path, host: str) -> str:
    return machine_name(str(home), "isolated", host)


def view_of(found: StackDescription, host: str) -> InstanceView:
    return next(v for v in found.instances if v.hostname == host)


async def test_each_machine_has_its_own_disk_and_address_and_the_host_is_untouched(
    opsflow: OpsflowClient,
    address: str,
    task_queue: str,
    tmp_path: Path,
    opsflow_home: Path,
    machines: str,
) -> None:
    if shutil.which("puppet") is None:
        pytest.fail("puppet is not installed: scripts/bootstrap.sh installs puppet-agent")
    (tmp_path / "modules/motd/manifests").mkdir(parents=True)
    (tmp_path / "modules/motd/manifests/setup.pp").write_text(MOTD_MODULE)
    (tmp_path / "stack.yml").write_text(PUPPET_STACK)
    before = host_state()

    applied = await opsflow_cli(
        ["stack", "apply", str(tmp_path / "stack.yml"), "--wait"], address, task_queue, 300
    )
    assert applied.returncode == 0, applied.stderr
    listed = await opsflow_cli(["instance", "list", "isolated", "-o", "json"], address, task_queue)
    assert listed.returncode == 0, listed.stderr
    rows = {row["hostname"]: row for row in json.loads(listed.stdout)}
    subnet = ipaddress.IPv4Network(machines)
    for row in rows.values():
        assert ipaddress.IPv4Address(row["private_ip"]) in subnet
        assert (row["ssh"]["host"], row["ssh"]["port"]) == (row["private_ip"], 22)
    assert rows["web1"]["private_ip"] != rows["web2"]["private_ip"]

    found = await opsflow.describe("isolated")
    web1, web2 = view_of(found, "web1"), view_of(found, "web2")
    # Each machine has its own /etc, written by a real Puppet run; this host's is as it was.
    assert on_machine(web1, "cat /etc/motd") == "motd of web1\n"
    assert on_machine(web2, "cat /etc/motd") == "motd of web2\n"
    assert "opsflow-drill" in on_machine(web1, "ls /etc/cron.d").split()
    assert "shopkeeper" in on_machine(web1, "ls /etc/sudoers.d").split()
    assert on_machine(web1, "id -un shopkeeper") == "shopkeeper\n"
    assert host_state() == before
    # Own hostname, own PID namespace (sshd is not this host's), the home hidden inside.
    assert on_machine(web1, "hostname").strip() == "web1"
    assert on_machine(web1, "cat /proc/1/comm").strip() != "process_api"
    assert on_machine(web1, f"ls -A {opsflow_home}") == ""
    # Machines reach each other by private_ip.
    reach = f"bash -c 'exec 3<>/dev/tcp/{web2.private_ip}/22 && head -c 4 <&3'"
    assert on_machine(web1, reach) == "SSH-"

    # Stop keeps the disk, start boots the same disk at the same address.
    on_machine(web1, "echo kept > /var/tmp/marker")
    await opsflow.instance_action("isolated", "web1", InstanceActionKind.STOP)
    await opsflow.wait_instances(
        "isolated", lambda v: v is not None and v.status == InstanceStatus.STOPPED, ["web1"]
    )
    assert left_on_host(opsflow_home)["netns"] == [machine_name_of(opsflow_home, "web2")]
    await opsflow.instance_action("isolated", "web1", InstanceActionKind.START)
    found = await quiet(opsflow, "isolated")
    web1 = view_of(found, "web1")
    assert web1.status == InstanceStatus.ONLINE
    assert web1.private_ip == rows["web1"]["private_ip"]
    assert on_machine(web1, "cat /var/tmp/marker /etc/motd") == "kept\nmotd of web1\n"

    deleted = await opsflow_cli(["stack", "delete", "isolated", "--wait"], address, task_queue)
    assert deleted.returncode == 0, deleted.stderr
    assert left_on_host(opsflow_home) == {"netns": [], "mounts": [], "nspawn": [], "bridges": []}
    assert host_state() == before


HEALING_STACK = """layers:
  - name: web
    health_check: {interval: 1s, unhealthy_threshold: 2, timeout: 2s, grace_period: 0s}
    recipes: {setup: [web::setup]}
    instances: [{hostname: web1}, {hostname: web2}]
"""


async def test_kill_and_partition_drills_heal_and_a_late_restore_changes_nothing(
    opsflow: OpsflowClient, address: str, task_queue: str, tmp_path: Path, machines: str
) -> None:
    (tmp_path / "cookbooks/web").mkdir(parents=True)
    (tmp_path / "cookbooks/web/setup.sh").write_text("echo set up >> /var/log/setup.log\n")
    (tmp_path / "stack.yml").write_text(
        f"name: drills\ncookbooks: {{source: ./cookbooks}}\n{HEALING_STACK}"
    )
    await opsflow.apply(load_stack_file(tmp_path / "stack.yml"))
    found = await quiet(opsflow, "drills")
    assert on_machine(view_of(found, "web1"), "cat /var/log/setup.log") == "set up\n"

    # A partition: web1's processes keep running, nothing reaches it; it is healed.
    cut = await opsflow_cli(
        ["instance", "kill", "--network", "drills", "web1"], address, task_queue
    )
    assert cut.returncode == 0, cut.stderr
    assert "network cut" in cut.stdout
    await wait_for_event(opsflow, "drills", "healed", "web1")
    restored = await opsflow_cli(
        ["instance", "restore-network", "drills", "web1"], address, task_queue
    )
    assert restored.returncode == 0, restored.stderr
    assert "gone" in restored.stdout and "nothing changed" in restored.stdout

    # A crash: every process of web2 killed; it is healed with a new machine.
    killed = await opsflow_cli(["instance", "kill", "drills", "web2"], address, task_queue)
    assert killed.returncode == 0, killed.stderr
    await wait_for_event(opsflow, "drills", "healed", "web2")
    found = await quiet(opsflow, "drills")
    assert {v.hostname: v.status for v in found.instances} == {
        "web1": InstanceStatus.ONLINE,
        "web2": InstanceStatus.ONLINE,
    }
    # New machines: set up once each, on a fresh disk.
    for host in ("web1", "web2"):
        assert on_machine(view_of(found, host), "cat /var/log/setup.log") == "set up\n"
    await opsflow.delete_stack("drills")
    await opsflow.wait_stack_deleted("drills", timeout=120)


async def test_dev_up_says_machines_and_dev_down_all_leaves_nothing_behind(
    tmp_path: Path, machines: str
) -> None:
    """The embedded default as a user runs it: `dev up`, a stack of two machines, then
    `dev down --all` stops them and removes their namespaces and bridge."""
    home = tmp_path / "home"
    env = {
        "OPSFLOW_HOME": str(home),
        "OPSFLOW_DEV_PORT": str(free_port()),
        "OPSFLOW_UI_PORT": str(free_port()),
        "TEMPORAL_ADDRESS": "",
        "OPSFLOW_TASK_QUEUE": "opsflow",
    }
    (tmp_path / "cookbooks/web").mkdir(parents=True)
    (tmp_path / "cookbooks/web/setup.sh").write_text("echo up > /var/tmp/up\n")
    (tmp_path / "stack.yml").write_text(
        "name: embedded\ncookbooks: {source: ./cookbooks}\nlayers:\n  - name: web\n"
        "    recipes: {setup: [web::setup]}\n    instances: [{hostname: a1}, {hostname: a2}]\n"
    )
    address = f"127.0.0.1:{env['OPSFLOW_DEV_PORT']}"
    try:
        up = await opsflow_cli(["dev", "up"], address, "opsflow", env=env)
        assert up.returncode == 0, up.stderr
        assert f"local instances: isolated machines (systemd-nspawn) on {machines}" in up.stdout
        applied = await opsflow_cli(
            ["stack", "apply", str(tmp_path / "stack.yml"), "--wait"], address, "opsflow", env=env
        )
        assert applied.returncode == 0, applied.stderr
        assert len(left_on_host(home)["nspawn"]) == 2
    finally:
        down = await opsflow_cli(["dev", "down", "--all"], address, "opsflow", env=env)
    assert down.returncode == 0, down.stderr
    assert "stopped 2 isolated machine(s); bridge removed" in down.stdout
    assert left_on_host(home) == {"netns": [], "mounts": [], "nspawn": [], "bridges": []}

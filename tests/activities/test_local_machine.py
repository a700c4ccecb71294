"""Isolated local instances, activity by activity: real systemd-nspawn machines in real
network namespaces (on a subnet of the test's own), reached with the stock OpenSSH client
trusting only the pinned host key."""

from __future__ import annotations

import platform
import socket
import time
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities import local_machine, local_provider, ssh
from opsflow.drills import NetworkDrillInput
from opsflow.messages import LaunchResult, MachineInput
from opsflow.spec import Provider
from runtime import local_network
from tests.activities.conftest import STACK, Launcher
from tests.activities.test_local_provider import openssh
from tests.integration.isolated import left_on_host, machines

pytestmark = pytest.mark.integration
__all__ = ["machines"]  # the fixture, used by name


def answers(launched: LaunchResult, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((launched.private_ip, 22), timeout) as sock:
            return sock.recv(4) == b"SSH-"
    except OSError:
        return False


def drill(hostname: str, cut: bool) -> str:
    return local_provider.network_drill(NetworkDrillInput(stack=STACK, hostname=hostname, cut=cut))


def test_a_machine_boots_answers_on_its_own_address_and_keeps_its_disk(
    launch: Launcher, machines: str, tmp_path: Path
) -> None:
    web1 = launch("web1")
    assert (web1.root, web1.ssh.port, web1.ssh.user) == ("/", 22, "root")
    assert web1.ssh.host == web1.private_ip != "127.0.0.1"
    # The pinned host key is the one the machine shows (StrictHostKeyChecking=yes).
    shown = openssh(web1, tmp_path, "hostname; echo mine > /etc/motd; cat /proc/1/cmdline")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("web1\n")
    assert launch("web1") == web1  # a retried launch finds it running
    local_provider.stop(MachineInput(stack=STACK, hostname="web1", provider=Provider.LOCAL))
    assert not answers(web1)
    again = launch("web1")
    assert again == web1  # same address, same keys
    assert openssh(again, tmp_path, "cat /etc/motd").stdout == "mine\n"


def test_a_machine_s_facts_are_those_of_a_non_ec2_machine(launch: Launcher, machines: str) -> None:
    facts = launch("web1").facts
    assert facts is not None
    assert facts.architecture == platform.machine() and facts.private_dns_name == "web1"
    assert facts.os is not None and facts.os.startswith("Debian")
    assert (facts.instance_type, facts.availability_zone, facts.region) == (None, None, None)
    assert (facts.public_ip, facts.public_dns_name, facts.elastic_ip) == (None, None, None)


def test_kill_ends_every_process_and_start_boots_the_same_disk(
    launch: Launcher, machines: str, tmp_path: Path, opsflow_home: Path
) -> None:
    web1 = launch("web1")
    started = openssh(web1, tmp_path, "setsid sleep 600 >/dev/null 2>&1 < /dev/null & echo x > /x")
    assert started.returncode == 0, started.stderr
    assert local_provider.kill(STACK, "web1") is True
    assert not answers(web1)
    assert left_on_host(opsflow_home)["nspawn"] == []
    assert local_provider.kill(STACK, "web1") is False  # nothing left to kill
    again = launch("web1")
    assert openssh(again, tmp_path, "cat /x; pgrep -c sleep || true").stdout == "x\n0\n"


def test_a_cut_machine_keeps_running_unreachable_until_restored(
    launch: Launcher, machines: str, tmp_path: Path
) -> None:
    web1 = launch("web1")
    assert "network cut" in drill("web1", cut=True)
    assert not answers(web1, timeout=1.0)
    assert local_network.link_is_up(local_machine.machine_of(STACK, "web1").veth) is False
    assert drill("web1", cut=False) == "web1: network restored"
    deadline = time.monotonic() + 10
    while not answers(web1) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert answers(web1)
    assert drill("web1", cut=False) == "web1: its network is not cut: nothing changed"


def test_a_restore_after_a_heal_replaced_the_machine_changes_nothing(
    launch: Launcher, machines: str
) -> None:
    launch("web1")
    drill("web1", cut=True)
    local_provider.terminate(MachineInput(stack=STACK, hostname="web1", provider=Provider.LOCAL))
    healed = launch("web1")  # a heal: a new machine with the same hostname
    said = drill("web1", cut=False)
    assert "the machine that was cut is gone" in said and "nothing changed" in said
    assert answers(healed)


def test_a_restore_while_a_heal_replaces_the_machine_changes_nothing(
    launch: Launcher, machines: str
) -> None:
    """Between the heal's terminate and its launch there is no machine at all: still the
    cut one is gone, not 'not an isolated machine' (the healing bench ran into it)."""
    launch("web1")
    drill("web1", cut=True)
    local_provider.terminate(MachineInput(stack=STACK, hostname="web1", provider=Provider.LOCAL))
    said = drill("web1", cut=False)
    assert "the machine that was cut is gone" in said and "nothing changed" in said
    launch("web1")
    assert drill("web1", cut=False) == "web1: its network is not cut: nothing changed"


def test_an_sshd_process_instance_has_no_link_to_cut(
    launch: Launcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSFLOW_ISOLATION", "none")
    launch("web1")
    with pytest.raises(ApplicationError, match="not an isolated machine") as raised:
        drill("web1", cut=True)
    assert raised.value.non_retryable


def test_terminate_leaves_nothing_on_the_host(
    launch: Launcher, machines: str, opsflow_home: Path
) -> None:
    for host in ("web1", "web2"):
        launch(host)
    assert len(left_on_host(opsflow_home)["netns"]) == 2
    for host in ("web1", "web2"):
        local_provider.terminate(MachineInput(stack=STACK, hostname=host, provider=Provider.LOCAL))
    assert left_on_host(opsflow_home) == {"netns": [], "mounts": [], "nspawn": [], "bridges": []}
    assert not (opsflow_home / "instances" / STACK / "web1").exists()


def test_an_instance_keeps_its_kind_a_process_made_before_stays_one(
    launch: Launcher, machines: str
) -> None:
    """Stacks made before isolated machines (or with isolation off) keep working: their
    sshd-process instances stay processes across stop and start; new ones are machines."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPSFLOW_ISOLATION", "none")
        before = launch("old1")
    assert before.private_ip == "127.0.0.1"
    local_provider.stop(MachineInput(stack=STACK, hostname="old1", provider=Provider.LOCAL))
    again = launch("old1")  # OPSFLOW_ISOLATION=machine now
    assert (again.private_ip, again.root) == ("127.0.0.1", before.root)
    assert launch("new1").private_ip != "127.0.0.1"


def test_a_machine_replaced_at_the_same_address_answers_at_once(
    launch: Launcher, machines: str
) -> None:
    """A heal reuses the address: this host must not keep sending to the old machine's MAC
    (its neighbour entry took ~30 s to go stale, and the launch timed out meanwhile; seen in
    a loaded test run and once by hand, not on every try: it depends on the entry's state)."""
    launch("web1")
    old = launch("web2")
    ssh.ping(old.ssh, 5)  # the worker's pooled connection: web2's MAC in this host's table
    local_provider.kill(STACK, "web2")
    local_provider.terminate(MachineInput(stack=STACK, hostname="web2", provider=Provider.LOCAL))
    new = launch("web2")
    assert new.private_ip == old.private_ip and new.ssh.host_key != old.ssh.host_key
    ssh.ping(new.ssh, 5)


def test_a_machines_root_home_is_a_new_machines_not_this_hosts(
    launch: Launcher, machines: str, tmp_path: Path
) -> None:
    web1 = launch("web1")
    shown = openssh(web1, tmp_path, "ls -A /root; echo kept > /root/mine")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split() == [".bashrc", ".profile"]
    local_provider.stop(MachineInput(stack=STACK, hostname="web1", provider=Provider.LOCAL))
    again = launch("web1")
    assert openssh(again, tmp_path, "cat /root/mine").stdout == "kept\n"


def test_pretty_name_reads_a_quoted_or_plain_value_and_none_without_one(tmp_path: Path) -> None:
    release = tmp_path / "os-release"
    release.write_text('NAME="Debian GNU/Linux"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    assert local_machine.pretty_name(release) == "Debian GNU/Linux 12 (bookworm)"
    release.write_text("PRETTY_NAME=Plain\n")
    assert local_machine.pretty_name(release) == "Plain"
    release.write_text("NAME=x\n")
    assert local_machine.pretty_name(release) is None
    assert local_machine.pretty_name(tmp_path / "absent") is None

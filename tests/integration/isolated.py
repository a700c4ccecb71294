"""Helpers for tests on isolated local instances (real systemd-nspawn machines, network
namespaces and a bridge): a free subnet per test process, running commands inside a
machine over its real sshd, and what a home leaves on the host."""

from __future__ import annotations

import ipaddress
import json
import random
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsflow import local_network as names
from opsflow.messages import InstanceView
from runtime import local_network, processes

# Test subnets come from here, away from the default 10.213.0.0/23 a developer's own
# embedded default may use; a random /24 each, so parallel runs rarely meet (and a taken
# one is skipped: its address is on an interface already).
_TEST_RANGE = ipaddress.IPv4Network("10.214.0.0/16")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_subnet() -> str:
    taken = [
        f"{a['local']}/{a['prefixlen']}"
        for entry in json.loads(
            subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True, check=True).stdout
        )
        for a in entry.get("addr_info", [])
    ]
    candidates = list(_TEST_RANGE.subnets(new_prefix=24))
    random.shuffle(candidates)
    for subnet in candidates:
        if not names.overlaps(subnet, taken):
            return str(subnet)
    raise RuntimeError("no free /24 left in 10.214.0.0/16")


@pytest.fixture
def machines(monkeypatch: pytest.MonkeyPatch, opsflow_home: Path) -> Iterator[str]:
    """Local instances made from here on are isolated machines on a subnet of their own;
    the subnet, and every machine, namespace and bridge of the home, are gone after."""
    problem = local_network.isolation_problem()
    if problem is not None:
        pytest.skip(f"this host cannot make isolated machines: {problem}")
    subnet = free_subnet()
    monkeypatch.setenv("OPSFLOW_ISOLATION", "machine")
    monkeypatch.setenv("OPSFLOW_NETWORK", subnet)
    try:
        yield subnet
    finally:
        local_network.reap_home()


def on_machine(view: InstanceView, command: str, timeout: float = 30) -> str:
    """Run `command` on the instance over its real sshd, as the worker would reach it."""
    assert view.ssh is not None
    done = subprocess.run(
        [
            "ssh",
            "-i",
            view.ssh.key_file,
            "-p",
            str(view.ssh.port),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "BatchMode=yes",
            f"{view.ssh.user}@{view.ssh.host}",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{command!r} on {view.hostname}: {done.stderr}"
    return done.stdout


def left_on_host(home: Path) -> dict[str, list[str]]:
    """What a home's machines could leave behind: namespaces, mounts, nspawn processes,
    its bridge."""
    tag = names.home_tag(str(home))
    netns = local_network.NETNS_DIR
    spaces = [p.name for p in netns.iterdir() if tag in p.name] if netns.is_dir() else []
    mounts = [line for line in Path("/proc/mounts").read_text().splitlines() if str(home) in line]
    nspawns = [
        " ".join(argv)
        for _, argv in processes.command_lines()
        if argv and argv[0].endswith("systemd-nspawn") and any(tag in a for a in argv)
    ]
    links = json.loads(
        subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True).stdout
    )
    bridges = [link["ifname"] for link in links if link.get("ifalias") == f"opsflow {home}"]
    return {"netns": spaces, "mounts": mounts, "nspawn": nspawns, "bridges": bridges}

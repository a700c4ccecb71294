"""The host side of isolated local instances: the bridge, the address leases, each
machine's network namespace and link, and tearing all of a home's machines down.

Shared by the worker (activities/local_machine.py launches machines) and the CLI (`opsflow
dev up` claims the network before it starts anything, `dev down --all` reaps it), so it
lives in runtime/. Everything goes through iproute2 (`ip`), as an operator would type it.

- The bridge of OPSFLOW_NETWORK (opsflow/local_network.py names it) carries the owner's
  OPSFLOW_HOME in its alias: a bridge of another home, or any other interface with an
  address in the subnet, means the subnet is in use (NetworkInUse, exit 1).
- Leases: `$OPSFLOW_HOME/network/leases.json`, `stack/hostname` -> address, changed under
  an flock, so parallel launches never share an address.
- A machine's namespace is `ip netns add NAME`; its link a veth pair, the host end on the
  bridge, the other end the machine's eth0 with its address and a default route via the
  bridge. Cutting the link (a partition drill) sets the host end down: the machine's
  processes keep running and nothing they send arrives.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

from opsflow import local_network as names
from opsflow.errors import OpsflowError
from opsflow.settings import Isolation, isolation, local_network, opsflow_home
from runtime import locks, processes

NETNS_DIR = Path("/run/netns")
# What systemd-nspawn's command line says of a machine of ours: --machine=opsflow-TAG-...
_MACHINE_ARG = "--machine="


class NetworkInUse(OpsflowError):
    """OPSFLOW_NETWORK is taken on this host (another home's bridge, another interface)."""


class IsolationUnavailable(OpsflowError):
    """This host cannot make isolated machines (not root, a tool or a kernel feature
    missing); the message says which."""


def isolation_problem() -> str | None:
    """Why this host cannot make isolated local instances, or None when it can."""
    if os.geteuid() != 0:
        return "not root (network namespaces, bridges and overlay mounts need root)"
    for tool, package in (("ip", "iproute2"), ("unshare", "util-linux")):
        if shutil.which(tool) is None:
            return f"{tool} not found (Debian package {package})"
    if shutil.which("systemd-nspawn") is None:
        return "systemd-nspawn not found (Debian package systemd-container)"
    if not Path("/proc/self/ns/net").exists() or not Path("/proc/self/ns/pid").exists():
        return "this kernel has no network or PID namespaces"
    try:
        filesystems = Path("/proc/filesystems").read_text()
    except OSError:
        return "cannot read /proc/filesystems"
    if "overlay" not in filesystems.split():
        return "this kernel has no overlay filesystem"
    return None


def run_ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done


def _owner_alias() -> str:
    return f"opsflow {opsflow_home()}"


# ---- the bridge --------------------------------------------------------------------------


def claim_network() -> ipaddress.IPv4Network:
    """Make sure this home's bridge is up with its subnet; NetworkInUse if another home or
    interface has the subnet. Idempotent; InvalidInput (exit 2) for a malformed setting."""
    network = local_network()
    bridge = names.bridge_name(network)
    with _locked("bridge"):
        links = {link["ifname"]: link for link in _json("link", "show")}
        mine = links.get(bridge)
        if mine is not None and mine.get("ifalias") != _owner_alias():
            owner = mine.get("ifalias") or "something other than opsflow"
            raise NetworkInUse(
                f"OPSFLOW_NETWORK {network}: its bridge {bridge} belongs to {owner}; give "
                "this OPSFLOW_HOME another subnet (OPSFLOW_NETWORK=...)"
            )
        for entry in _json("addr", "show"):
            if entry["ifname"] == bridge:
                continue
            addresses = [f"{a['local']}/{a['prefixlen']}" for a in entry.get("addr_info", [])]
            clash = names.overlaps(network, addresses)
            if clash:
                raise NetworkInUse(
                    f"OPSFLOW_NETWORK {network} is in use on this host: {entry['ifname']} "
                    f"has {', '.join(clash)}; choose another subnet (OPSFLOW_NETWORK=...)"
                )
        if mine is None:
            # Its MAC is set, not its lowest port's (Linux's default for a bridge): that
            # changed as machines came and went, and the machines' replies to this host went
            # to the old MAC until their ARP entry expired. A bridge made before keeps its
            # own until it is made again: changing it now would cut them off just so.
            mac = names.mac_of(names.gateway(network))
            run_ip("link", "add", bridge, "address", mac, "type", "bridge")
            run_ip("link", "set", bridge, "alias", _owner_alias())
        gateway = f"{names.gateway(network)}/{network.prefixlen}"
        if run_ip("-4", "addr", "show", "dev", bridge).stdout.find(gateway) < 0:
            run_ip("addr", "add", gateway, "dev", bridge)
        run_ip("link", "set", bridge, "up")
    return network


def release_network_if_unused() -> None:
    """Delete this home's bridge once no machine holds an address on it."""
    network = local_network()
    with _locked("bridge"):
        if _read_leases():
            return
        bridge = names.bridge_name(network)
        found = run_ip("-j", "link", "show", bridge, check=False)
        if found.returncode == 0 and json.loads(found.stdout)[0].get("ifalias") == _owner_alias():
            run_ip("link", "del", bridge, check=False)


# ---- leases ------------------------------------------------------------------------------


def lease(stack: str, hostname: str) -> ipaddress.IPv4Address:
    """The machine's address: the one it holds, else the lowest free one."""
    network = local_network()
    key = f"{stack}/{hostname}"
    with _locked("leases"):
        leases = _read_leases()
        if key in leases and ipaddress.IPv4Address(leases[key]) in network:
            return ipaddress.IPv4Address(leases[key])
        address = names.free_address(network, leases.values())
        if address is None:
            raise RuntimeError(f"OPSFLOW_NETWORK {network} is full: no address left")
        leases[key] = str(address)
        _write_leases(leases)
        return address


def release(stack: str, hostname: str) -> None:
    with _locked("leases"):
        leases = _read_leases()
        if leases.pop(f"{stack}/{hostname}", None) is not None:
            _write_leases(leases)


def _leases_file() -> Path:
    return opsflow_home() / "network" / "leases.json"


def _read_leases() -> dict[str, str]:
    try:
        found = json.loads(_leases_file().read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def _write_leases(leases: dict[str, str]) -> None:
    path = _leases_file()
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    temp.write_text(json.dumps(leases, indent=1, sort_keys=True))
    temp.replace(path)


def _locked(what: str) -> contextlib.AbstractContextManager[None]:
    return locks.locked(opsflow_home() / "network" / f".{what}.lock")


def _json(*args: str) -> list[dict[str, Any]]:
    found = json.loads(run_ip("-j", *args).stdout or "[]")
    return found if isinstance(found, list) else []


# ---- one machine's namespace and link ----------------------------------------------------


def plug(machine: str, veth: str, address: ipaddress.IPv4Address) -> None:
    """The machine's namespace with eth0 at `address` on the bridge (idempotent: a
    half-made namespace or link from a crash is made again)."""
    network = claim_network()
    if not (NETNS_DIR / machine).exists():
        run_ip("netns", "add", machine)
    if run_ip("link", "show", veth, check=False).returncode != 0:
        run_ip("-n", machine, "link", "del", "eth0", check=False)
        # eth0's MAC follows from its address, so a machine healed (or re-plugged) at the
        # same address has the same MAC too: its peers' ARP caches stay right. A random one
        # left them sending to the old machine's MAC until their entry expired (~45 s).
        peer = ("name", "eth0", "address", names.mac_of(address), "netns", machine)
        run_ip("link", "add", veth, "type", "veth", "peer", *peer)
    run_ip("link", "set", veth, "master", names.bridge_name(network), "up")
    inside = ("-n", machine)
    cidr = f"{address}/{network.prefixlen}"
    if cidr not in run_ip(*inside, "-4", "addr", "show", "dev", "eth0").stdout:
        run_ip(*inside, "addr", "flush", "dev", "eth0")
        run_ip(*inside, "addr", "add", cidr, "dev", "eth0")
    run_ip(*inside, "link", "set", "lo", "up")
    run_ip(*inside, "link", "set", "eth0", "up")
    run_ip(*inside, "route", "replace", "default", "via", str(names.gateway(network)))
    # A machine that had this address before (a heal reuses it) left its MAC in this
    # host's neighbour table: frames would go to it until the entry went stale (~30 s).
    run_ip("neigh", "flush", "to", str(address), "dev", names.bridge_name(network), check=False)


def unplug(machine: str, veth: str) -> None:
    """Remove the machine's link and namespace (gone already is fine)."""
    run_ip("link", "del", veth, check=False)
    if (NETNS_DIR / machine).exists():
        run_ip("netns", "del", machine, check=False)


def set_link(veth: str, up: bool) -> None:
    run_ip("link", "set", veth, "up" if up else "down")


def link_is_up(veth: str) -> bool | None:
    """Whether the machine's link is up on the host's side; None when it has none."""
    found = run_ip("-j", "link", "show", veth, check=False)
    if found.returncode != 0:
        return None
    flags = json.loads(found.stdout)[0].get("flags", [])
    return "UP" in flags


# ---- all of a home's machines (dev down --all) -------------------------------------------


def reap_home() -> list[str]:
    """Stop every isolated machine of this home (its processes SIGKILLed: their disks are
    kept), delete their namespaces and links, the leases stay (a start boots them again
    at the same address), and the bridge goes. Returns the machines' names."""
    prefix = names.machine_name(str(opsflow_home()), "", "")[: -len("--")]
    killed = []
    for pid, argv in processes.command_lines():
        machine = next((a[len(_MACHINE_ARG) :] for a in argv if a.startswith(_MACHINE_ARG)), "")
        if argv and Path(argv[0]).name == "systemd-nspawn" and machine.startswith(prefix + "-"):
            # The machine's init first: the kernel ends every process of its PID namespace.
            processes.signal_all([*processes.children(pid), pid], signal.SIGKILL)
            killed.append(machine)
    if NETNS_DIR.is_dir():
        for entry in NETNS_DIR.iterdir():
            if entry.name.startswith(prefix + "-"):
                run_ip("netns", "del", entry.name, check=False)
    network = local_network()
    bridge = names.bridge_name(network)
    found = run_ip("-j", "link", "show", bridge, check=False)
    if found.returncode == 0 and json.loads(found.stdout)[0].get("ifalias") == _owner_alias():
        run_ip("link", "del", bridge, check=False)
    return sorted(killed)


# ---- what `dev up` and `stack apply` say --------------------------------------------------


def isolation_summary(claim: bool) -> tuple[bool, str]:
    """Whether new local instances will be isolated machines here, and one line saying so
    (or why not). With `claim`, the network is claimed too: NetworkInUse (exit 1) when its
    subnet is taken, InvalidInput (exit 2) for a malformed OPSFLOW_NETWORK;
    IsolationUnavailable (exit 1) when OPSFLOW_ISOLATION=machine cannot be had."""
    wanted = isolation()
    if wanted == Isolation.NONE:
        return False, "local instances: sshd processes on 127.0.0.1 (OPSFLOW_ISOLATION=none)"
    problem = isolation_problem()
    if problem is not None:
        if wanted == Isolation.MACHINE:
            raise IsolationUnavailable(
                f"OPSFLOW_ISOLATION=machine, but this host cannot make isolated machines: {problem}"
            )
        return False, (
            f"local instances are not isolated here ({problem}): they run as sshd processes "
            "sharing this host's files"
        )
    network = claim_network() if claim else local_network()
    return True, (
        f"local instances: isolated machines (systemd-nspawn) on {network}, "
        f"bridge {names.bridge_name(network)}"
    )

"""The names and addresses of isolated local instances: pure decisions, no I/O.

A home's machines share one Linux bridge on its subnet (OPSFLOW_NETWORK): the bridge holds
the subnet's first address (the machines' gateway, and how the worker reaches them), each
machine one of the others for as long as it exists (kept across stop and start, freed by
terminate). Interface names are at most 15 characters, so they are digests; namespace and
machine names are read by people (`ip netns list`), so they say whose they are.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable

IFNAMSIZ = 15  # Linux's limit on an interface name, without the NUL


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def home_tag(home: str) -> str:
    """A short tag of an OPSFLOW_HOME: what its namespaces and machines are named by."""
    return _digest(home)[:8]


def bridge_name(network: ipaddress.IPv4Network) -> str:
    """The bridge of a subnet: one subnet, one bridge, whichever home claims it."""
    return f"ofbr{int(network.network_address):08x}"


def gateway(network: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    return network.network_address + 1


def machine_name(home: str, stack: str, hostname: str) -> str:
    """The network namespace's name (`ip netns list`) and systemd-nspawn's machine name."""
    return f"opsflow-{home_tag(home)}-{stack}-{hostname}"


def veth_name(home: str, stack: str, hostname: str) -> str:
    """The host's end of the machine's link (the machine's end is its eth0)."""
    name = "ofv" + _digest(home, stack, hostname)[:12]
    assert len(name) <= IFNAMSIZ
    return name


def mac_of(address: ipaddress.IPv4Address) -> str:
    """A locally administered MAC holding the IPv4 address: one per address on a bridge,
    and the same for every machine that ever has that address."""
    return "02:00:" + ":".join(f"{byte:02x}" for byte in address.packed)


def free_address(
    network: ipaddress.IPv4Network, taken: Iterable[str]
) -> ipaddress.IPv4Address | None:
    """The lowest address of the subnet that is neither the bridge's nor taken; None when
    the subnet is full."""
    used = {ipaddress.IPv4Address(a) for a in taken} | {gateway(network)}
    for address in network.hosts():
        if address not in used:
            return address
    return None


def overlaps(network: ipaddress.IPv4Network, addresses: Iterable[str]) -> list[str]:
    """Which of the given interface addresses ('10.0.0.1/24') share addresses with the
    subnet: a subnet another interface already uses cannot be this home's."""
    found = []
    for text in addresses:
        interface = ipaddress.ip_interface(text)
        if isinstance(interface, ipaddress.IPv4Interface) and interface.network.overlaps(network):
            found.append(text)
    return found

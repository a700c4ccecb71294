"""The names and addresses of isolated local instances, and their settings."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsflow import local_network as names
from opsflow.errors import InvalidInput
from opsflow.settings import DEFAULT_NETWORK, Isolation, isolation, local_network

NET = ipaddress.IPv4Network("10.213.0.0/24")


def test_addresses_are_handed_out_lowest_first_never_the_bridges() -> None:
    assert names.gateway(NET) == ipaddress.IPv4Address("10.213.0.1")
    assert names.free_address(NET, []) == ipaddress.IPv4Address("10.213.0.2")
    assert names.free_address(NET, ["10.213.0.2", "10.213.0.4"]) == ipaddress.IPv4Address(
        "10.213.0.3"
    )


def test_a_24_holds_253_machines_and_then_is_full() -> None:
    taken: list[str] = []
    while (address := names.free_address(NET, taken)) is not None:
        taken.append(str(address))
    assert len(taken) == 253
    assert str(names.gateway(NET)) not in taken


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=39))
def test_interface_names_fit_linux_and_differ_per_machine(stack: str, host: str) -> None:
    veth = names.veth_name("/home/a", stack, host)
    assert len(veth) <= names.IFNAMSIZ
    assert veth != names.veth_name("/home/b", stack, host)
    assert len(names.bridge_name(NET)) <= names.IFNAMSIZ


def test_machine_names_say_whose_they_are() -> None:
    name = names.machine_name("/root/.opsflow", "shop", "web1")
    assert name.startswith(f"opsflow-{names.home_tag('/root/.opsflow')}-")
    assert name.endswith("-shop-web1")


def test_overlapping_interface_addresses_are_found() -> None:
    found = names.overlaps(NET, ["127.0.0.1/8", "10.213.0.77/16", "10.214.0.1/24", "::1/128"])
    assert found == ["10.213.0.77/16"]


def test_the_network_setting_defaults_and_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPSFLOW_NETWORK", raising=False)
    assert local_network() == ipaddress.IPv4Network(DEFAULT_NETWORK)
    monkeypatch.setenv("OPSFLOW_NETWORK", " 192.168.77.0/24 ")
    assert local_network() == ipaddress.IPv4Network("192.168.77.0/24")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("10.213.0.0", "must be a /16 to /24"),  # a single address
        ("10.213.0.0/25", "must be a /16 to /24"),
        ("10.0.0.0/8", "must be a /16 to /24"),
        ("10.213.0.1/24", "is not an IPv4 subnet"),  # host bits set
        ("ten.two", "is not an IPv4 subnet"),
        ("8.8.8.0/24", "must be a private range"),
        ("127.0.0.0/16", "must be a private range"),
    ],
)
def test_a_bad_network_setting_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, value: str, problem: str
) -> None:
    monkeypatch.setenv("OPSFLOW_NETWORK", value)
    with pytest.raises(InvalidInput, match=problem) as raised:
        local_network()
    assert str(raised.value).startswith("OPSFLOW_NETWORK: ")
    assert raised.value.exit_code == 2


def test_the_isolation_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPSFLOW_ISOLATION", raising=False)
    assert isolation() == Isolation.AUTO
    monkeypatch.setenv("OPSFLOW_ISOLATION", "none")
    assert isolation() == Isolation.NONE
    monkeypatch.setenv("OPSFLOW_ISOLATION", "vm")
    with pytest.raises(InvalidInput, match="OPSFLOW_ISOLATION: 'vm' must be one of auto"):
        isolation()


def test_a_machines_mac_follows_from_its_address() -> None:
    assert names.mac_of(ipaddress.IPv4Address("10.213.0.7")) == "02:00:0a:d5:00:07"
    assert names.mac_of(names.gateway(NET)) != names.mac_of(ipaddress.IPv4Address("10.213.0.2"))

"""`opsflow instance register`'s own decisions: the default hostname and the fingerprint."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from client.cli.instance import fingerprint, hostname_of
from opsflow.errors import InvalidInput


@pytest.mark.parametrize(
    ("host", "hostname"),
    [("db1.example.com", "db1"), ("Web-2.corp", "web-2"), ("build", "build")],
)
def test_the_hostname_defaults_to_the_first_label_of_a_dns_name(host: str, hostname: str) -> None:
    assert hostname_of(host) == hostname


@pytest.mark.parametrize("host", ["10.0.0.5", "::1", "fe80::1", "_x.example.com"])
def test_an_address_gives_no_hostname_and_asks_for_one(host: str) -> None:
    with pytest.raises(InvalidInput, match="--hostname: needed"):
        hostname_of(host)


def test_the_fingerprint_is_the_one_ssh_keygen_shows(tmp_path: Path) -> None:
    key = tmp_path / "host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    public = " ".join(key.with_suffix(".pub").read_text().split()[:2])
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(key.with_suffix(".pub"))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert fingerprint(public) == f"ssh-ed25519 {listed[1]}"

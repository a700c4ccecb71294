"""The host side of isolated machines, for real but out of this host's way: each test runs
its `ip` commands in a network namespace of its own (`unshare --net`, gone with the
process), so bridges and interfaces it makes never reach the host's."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runtime import local_network as net
from runtime.local_network import isolation_problem

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    isolation_problem() is not None, reason=f"no isolated machines here: {isolation_problem()}"
)


def in_own_netns(code: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run Python `code` (runtime.local_network imported as `net`) in a new network namespace."""
    script = "from runtime import local_network as net\n" + textwrap.dedent(code)
    return subprocess.run(
        ["unshare", "--net", sys.executable, "-c", script],
        cwd=REPO,
        env={**os.environ, "OPSFLOW_HOME": str(home), "OPSFLOW_ISOLATION": "auto", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_bridge_is_claimed_once_and_goes_when_no_machine_holds_an_address(
    tmp_path: Path,
) -> None:
    done = in_own_netns(
        """
        import json, subprocess
        def ip(*args):
            return json.loads(subprocess.run(["ip", "-j", *args], capture_output=True,
                                             text=True).stdout)
        def bridges():
            aliases = {l["ifname"]: l.get("ifalias") for l in ip("link")}
            return [(l["ifname"], aliases[l["ifname"]], [a["local"] for a in l["addr_info"]])
                    for l in ip("-4", "addr") if l["ifname"].startswith("ofbr")]
        net.claim_network(); net.claim_network()
        print(bridges())
        print(net.lease("s", "web1"), net.lease("s", "web2"), net.lease("s", "web1"))
        net.release("s", "web1"); net.release_network_if_unused(); print(bridges())
        print(net.lease("s", "web3"))
        net.release("s", "web2"); net.release("s", "web3"); net.release_network_if_unused()
        print(bridges())
        """,
        tmp_path,
        OPSFLOW_NETWORK="10.213.8.0/24",
    )
    assert done.returncode == 0, done.stderr
    first, leases, kept, reused, gone = done.stdout.splitlines()
    assert first == f"[('ofbr0ad50800', 'opsflow {tmp_path}', ['10.213.8.1'])]"
    assert leases == "10.213.8.2 10.213.8.3 10.213.8.2"  # a machine keeps its address
    assert kept == first  # web2 still holds one
    assert reused == "10.213.8.2"
    assert gone == "[]"


def test_a_subnet_another_interface_uses_is_refused_naming_it(tmp_path: Path) -> None:
    done = in_own_netns(
        """
        import subprocess
        subprocess.run(["ip", "link", "add", "taken0", "type", "bridge"], check=True)
        subprocess.run(["ip", "addr", "add", "10.213.9.77/16", "dev", "taken0"], check=True)
        net.claim_network()
        """,
        tmp_path,
        OPSFLOW_NETWORK="10.213.9.0/24",
    )
    assert done.returncode == 1
    assert (
        "NetworkInUse: OPSFLOW_NETWORK 10.213.9.0/24 is in use on this host: taken0 has "
        "10.213.9.77/16" in done.stderr
    )


def test_another_homes_bridge_is_refused_and_dev_up_exits_1_starting_nothing(
    tmp_path: Path,
) -> None:
    other = tmp_path / "other"
    done = in_own_netns(
        f"""
        import os, subprocess, sys
        os.environ["OPSFLOW_HOME"] = {str(other)!r}
        net.claim_network()
        os.environ["OPSFLOW_HOME"] = {str(tmp_path / "mine")!r}
        up = subprocess.run([sys.executable, "-m", "client.cli", "dev", "up"],
                            capture_output=True, text=True)
        print(up.returncode); print(up.stderr.strip())
        print(sorted(os.listdir({str(tmp_path / "mine")!r})) if os.path.exists(
            {str(tmp_path / "mine")!r}) else [])
        """,
        tmp_path,
        OPSFLOW_NETWORK="10.213.10.0/24",
    )
    assert done.returncode == 0, done.stderr
    code, message, *files = done.stdout.splitlines()
    assert code == "1"
    assert f"its bridge ofbr0ad50a00 belongs to opsflow {other}" in message
    assert "logs" not in files[0]  # no dev server or worker was started


def test_a_malformed_network_setting_makes_dev_up_exit_2(tmp_path: Path) -> None:
    up = subprocess.run(
        [sys.executable, "-m", "client.cli", "dev", "up"],
        cwd=REPO,
        env={
            **os.environ,
            "OPSFLOW_HOME": str(tmp_path),
            "OPSFLOW_ISOLATION": "auto",
            "OPSFLOW_NETWORK": "10.213.0.0/33",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert up.returncode == 2
    assert "OPSFLOW_NETWORK: '10.213.0.0/33' is not an IPv4 subnet" in up.stderr
    assert "Traceback" not in up.stderr


def test_where_isolation_is_impossible_auto_says_so_and_machine_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(net, "isolation_problem", lambda: "not root (for the test)")
    monkeypatch.setenv("OPSFLOW_ISOLATION", "auto")
    isolated, line = net.isolation_summary(claim=True)
    assert not isolated
    assert line == (
        "local instances are not isolated here (not root (for the test)): they run as sshd "
        "processes sharing this host's files"
    )
    monkeypatch.setenv("OPSFLOW_ISOLATION", "machine")
    with pytest.raises(net.IsolationUnavailable, match="not root") as raised:
        net.isolation_summary(claim=True)
    assert raised.value.exit_code == 1
    monkeypatch.setenv("OPSFLOW_ISOLATION", "none")
    assert net.isolation_summary(claim=True) == (
        False,
        "local instances: sshd processes on 127.0.0.1 (OPSFLOW_ISOLATION=none)",
    )


def test_not_root_is_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert net.isolation_problem() == (
        "not root (network namespaces, bridges and overlay mounts need root)"
    )

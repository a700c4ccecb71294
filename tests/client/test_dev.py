"""`opsflow dev up | down | status` for real: the dev server and the worker as processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from client import dev
from workflows.common import SEARCH_ATTRIBUTES


def _free_ports(count: int) -> list[int]:
    # Hold every socket until all are bound, so the ports differ.
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _by_name(parts: list[dev.PartStatus]) -> dict[str, dev.PartStatus]:
    return {part.name: part for part in parts}


def _wait_gone(pid: int, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while dev._alive(pid):
        assert time.monotonic() < deadline, f"process {pid} still alive"
        time.sleep(0.05)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private OPSFLOW_HOME on free ports; whatever the test started is stopped after."""
    port, ui_port = _free_ports(2)
    monkeypatch.setenv("OPSFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("OPSFLOW_DEV_PORT", str(port))
    monkeypatch.setenv("OPSFLOW_UI_PORT", str(ui_port))
    monkeypatch.delenv("TEMPORAL_ADDRESS", raising=False)
    try:
        yield tmp_path
    finally:
        dev.down()


def test_dev_server_command_registers_every_search_attribute(home: Path) -> None:
    argv = dev._temporal_command(dev._layout())
    flags = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--search-attribute"]
    assert flags == [f"{key.name}=Keyword" for key in SEARCH_ATTRIBUTES]
    assert argv[argv.index("--db-filename") + 1] == str(home / "temporal.db")
    pragmas = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--sqlite-pragma"]
    assert pragmas == ["journal_mode=wal", "synchronous=normal"]


def test_status_of_nothing_started_is_all_stopped(home: Path) -> None:
    parts = _by_name(dev.status())
    assert not parts["temporal"].running and parts["temporal"].pid is None
    assert not parts["worker"].running and parts["worker"].address is None
    assert parts["worker"].log_file == str(home / "logs" / "worker.log")


def test_another_temporal_address_is_reported_external_and_not_started(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (closed_port,) = _free_ports(1)
    monkeypatch.setenv("TEMPORAL_ADDRESS", f"127.0.0.1:{closed_port}")
    temporal = _by_name(dev.status())["temporal"]
    assert temporal.external and not temporal.running
    assert temporal.address == f"127.0.0.1:{closed_port}" and temporal.pid is None


def test_a_profile_naming_another_temporal_is_external_too(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (closed_port,) = _free_ports(1)
    profiles = home / "temporal.toml"
    profiles.write_text(f'[profile.remote]\naddress = "127.0.0.1:{closed_port}"\n')
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(profiles))
    monkeypatch.setenv("TEMPORAL_PROFILE", "remote")
    temporal = _by_name(dev.status())["temporal"]
    assert temporal.external and temporal.address == f"127.0.0.1:{closed_port}"


@pytest.fixture
def listener(home: Path) -> Iterator[subprocess.Popen[str]]:
    """A process that listens on a port given on its stdin (another program's server)."""
    code = (
        "import socket, sys, time\n"
        "s = socket.socket()\n"
        "s.bind(('127.0.0.1', int(sys.stdin.readline())))\n"
        "s.listen()\n"
        "print('listening', flush=True)\n"
        "time.sleep(120)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def _listen(listener: subprocess.Popen[str], port: int) -> None:
    assert listener.stdin is not None and listener.stdout is not None
    listener.stdin.write(f"{port}\n")
    listener.stdin.flush()
    assert listener.stdout.readline() == "listening\n"


def _dev_up_cli() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "client.cli", "dev", "up"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("variable", ["OPSFLOW_DEV_PORT", "OPSFLOW_UI_PORT"])
def test_up_on_a_port_another_process_holds_exits_1_naming_it_and_starts_nothing(
    home: Path, listener: subprocess.Popen[str], variable: str
) -> None:
    port = int(os.environ[variable])
    _listen(listener, port)

    done = _dev_up_cli()

    assert done.returncode == 1, done.stderr
    assert f"port {port} ({variable}) is already in use by pid {listener.pid}" in done.stderr
    assert sys.executable in done.stderr, "the holder's command line is shown"
    assert not list((home / "run").glob("*.pid")), "nothing was started"
    assert not any(part.running for part in dev.status())


@pytest.mark.integration
def test_up_beside_another_homes_dev_server_on_the_same_port_exits_1(
    home: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    other_home = tmp_path_factory.mktemp("other-opsflow-home")
    monkeypatch.setenv("OPSFLOW_HOME", str(other_home))
    try:
        foreign = _by_name(dev.up())["temporal"]
        monkeypatch.setenv("OPSFLOW_HOME", str(home))

        done = _dev_up_cli()

        assert done.returncode == 1, done.stderr
        port = os.environ["OPSFLOW_DEV_PORT"]
        assert f"port {port} (OPSFLOW_DEV_PORT) is already in use by pid {foreign.pid}" in (
            done.stderr
        )
        assert str(other_home / "temporal.db") in done.stderr
        assert not list((home / "run").glob("*.pid")), "no worker joined the other server"
    finally:
        monkeypatch.setenv("OPSFLOW_HOME", str(other_home))
        dev.down()
        monkeypatch.setenv("OPSFLOW_HOME", str(home))


@pytest.mark.integration
def test_dev_server_that_cannot_start_raises_naming_its_log(home: Path) -> None:
    (home / "temporal.db").mkdir()  # SQLite cannot open a directory
    with pytest.raises(dev.DevError) as raised:
        dev.up(wait_timeout=30)
    assert raised.value.where == str(home / "logs" / "temporal.log")
    assert not _by_name(dev.status())["temporal"].running


@pytest.mark.integration
def test_up_restarts_only_what_is_down_and_down_stops_all(home: Path) -> None:
    port = int(os.environ["OPSFLOW_DEV_PORT"])

    first = _by_name(dev.up())
    temporal, worker = first["temporal"], first["worker"]
    assert temporal.running and worker.running
    assert temporal.address == f"127.0.0.1:{port}"
    assert temporal.ui == f"http://127.0.0.1:{os.environ['OPSFLOW_UI_PORT']}"
    assert Path(temporal.log_file).exists() and Path(worker.log_file).exists()
    assert [p.model_dump(mode="json") for p in dev.status()] == [
        p.model_dump(mode="json") for p in first.values()
    ]

    shown = subprocess.run(
        [sys.executable, "-m", "client.cli", "dev", "status", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(shown.stdout) == [p.model_dump(mode="json") for p in first.values()]

    assert _by_name(dev.up()) == first, "a second up changes nothing"

    assert worker.pid is not None
    os.kill(worker.pid, signal.SIGKILL)
    _wait_gone(worker.pid)
    assert not _by_name(dev.status())["worker"].running

    again = _by_name(dev.up())
    assert again["worker"].running and again["worker"].pid != worker.pid
    assert again["temporal"].pid == temporal.pid

    stopped = _by_name(dev.down())
    assert not stopped["temporal"].running and not stopped["worker"].running
    for pid in (temporal.pid, again["worker"].pid):
        assert pid is not None
        _wait_gone(pid, seconds=1)
    assert not list((home / "run").glob("*.pid"))
    assert _by_name(dev.down()) == stopped, "a second down changes nothing"

"""The local provider: each instance is a real sshd on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import local_machine, local_provider, providers
from opsflow import settings
from opsflow.errors import ErrorType
from opsflow.messages import LaunchInput, LaunchResult, MachineInput
from opsflow.spec import Provider
from tests.activities.conftest import STACK, Launcher

pytestmark = pytest.mark.integration

MACHINE = MachineInput(stack=STACK, hostname="web1", provider=Provider.LOCAL)


def openssh(
    launched: LaunchResult, tmp_path: Path, command: str
) -> subprocess.CompletedProcess[str]:
    """The stock OpenSSH client, trusting only the pinned host key."""
    endpoint = launched.ssh
    known_hosts = tmp_path / "known_hosts"
    # known_hosts names port 22 by the host alone, any other port as [host]:port.
    name = endpoint.host if endpoint.port == 22 else f"[{endpoint.host}]:{endpoint.port}"
    known_hosts.write_text(f"{name} {endpoint.host_key}\n")
    return subprocess.run(
        [
            "ssh", "-F", "/dev/null", "-i", endpoint.key_file, "-p", str(endpoint.port),
            "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={known_hosts}", "-o", "IdentitiesOnly=yes",
            f"{endpoint.user}@{endpoint.host}", command,
        ],
        capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def sshd_pid(opsflow_home: Path) -> int:
    return int((opsflow_home / "instances" / STACK / "web1" / "ssh" / "sshd.pid").read_text())


def test_launch_starts_an_sshd_that_answers_with_the_pinned_host_key(
    instance: LaunchResult, opsflow_home: Path, tmp_path: Path
) -> None:
    base = opsflow_home / "instances" / STACK / "web1"
    assert instance.root == str(base / "root") and Path(instance.root).is_dir()
    assert instance.private_ip == instance.ssh.host == "127.0.0.1"
    assert instance.ssh.key_file == str(base / "ssh" / "id_ed25519")
    assert instance.ssh.host_key.startswith("ssh-ed25519 AAAA")
    assert (base / "ssh" / "port").read_text().strip() == str(instance.ssh.port)

    done = openssh(instance, tmp_path, "echo up")
    assert (done.returncode, done.stdout) == (0, "up\n"), done.stderr
    assert instance.facts is not None and instance.facts.private_dns_name == "web1"
    assert instance.facts.os == local_machine.pretty_name(Path("/etc/os-release"))


def test_launch_again_reuses_the_running_sshd(launch: Launcher, opsflow_home: Path) -> None:
    first = launch("web1")
    pid = sshd_pid(opsflow_home)
    assert launch("web1") == first
    assert sshd_pid(opsflow_home) == pid


def test_stop_then_launch_keeps_host_key_root_and_port(
    launch: Launcher, opsflow_home: Path, tmp_path: Path
) -> None:
    first = launch("web1")
    (Path(first.root) / "kept").write_text("state")

    local_provider.stop(MACHINE)
    local_provider.stop(MACHINE)  # idempotent
    assert refuses_connections(first.ssh.port)

    again = launch("web1")
    assert again == first
    assert (Path(again.root) / "kept").read_text() == "state"
    assert openssh(again, tmp_path, "true").returncode == 0


def test_stop_drops_open_connections(instance: LaunchResult, tmp_path: Path) -> None:
    endpoint = instance.ssh
    session = subprocess.Popen(
        [
            "ssh", "-F", "/dev/null", "-i", endpoint.key_file, "-p", str(endpoint.port),
            "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", f"{endpoint.user}@{endpoint.host}",
            "echo in; sleep 8",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert session.stdout is not None and session.stdout.readline() == "in\n"
        local_provider.stop(MACHINE)
        assert session.wait(timeout=10) != 0
    finally:
        session.kill()
        session.wait()


def test_terminate_removes_the_instance_and_is_idempotent(
    instance: LaunchResult, opsflow_home: Path
) -> None:
    local_provider.terminate(MACHINE)
    local_provider.terminate(MACHINE)
    assert not (opsflow_home / "instances" / STACK / "web1").exists()
    assert refuses_connections(instance.ssh.port)


def test_a_stopped_sshd_is_detected_by_its_pidfile(launch: Launcher, opsflow_home: Path) -> None:
    first = launch("web1")
    os.kill(sshd_pid(opsflow_home), 9)  # the sshd died behind our back
    assert launch("web1") == first
    assert not refuses_connections(first.ssh.port)


def test_a_port_taken_between_choosing_and_binding_is_given_up_for_another(
    launch: Launcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As when another process binds the chosen port first: sshd forks before it binds, so
    # only its log tells; without looking there the launch waited READY_TIMEOUT and failed.
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    choose = local_provider._choose_port
    choices = iter([taken.getsockname()[1]])
    monkeypatch.setattr(local_provider, "_choose_port", lambda p: next(choices, None) or choose(p))
    try:
        started = time.monotonic()
        launched = launch("web1")
        assert time.monotonic() - started < local_provider.READY_TIMEOUT
        assert launched.ssh.port != taken.getsockname()[1]
        assert not refuses_connections(launched.ssh.port)
    finally:
        taken.close()


async def test_activities_launch_stop_and_terminate(opsflow_home: Path) -> None:
    env = ActivityEnvironment()
    try:
        launched = await env.run(
            providers.launch_instance,
            LaunchInput(stack=STACK, hostname="web1", provider=Provider.LOCAL),
        )
        await env.run(providers.stop_instance, MACHINE)
        assert refuses_connections(launched.ssh.port)
        # The machine is this worker's: the launch names the worker's own queue.
        assert launched.task_queue == f"{env.info.task_queue}@{settings.worker_id()}"
        again = await env.run(
            providers.launch_instance,
            LaunchInput(stack=STACK, hostname="web1", provider=Provider.LOCAL),
        )
        assert again.task_queue == launched.task_queue
    finally:
        await env.run(providers.terminate_instance, MACHINE)
    assert not Path(launched.root).exists()


def test_a_launch_outside_a_worker_is_bound_to_no_queue(launch: Launcher) -> None:
    assert launch("web1").task_queue is None


async def test_a_registered_launch_without_its_host_is_refused_and_makes_nothing(
    opsflow_home: Path,
) -> None:
    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(
            providers.launch_instance,
            LaunchInput(stack=STACK, hostname="web1", provider=Provider.REGISTERED),
        )
    assert raised.value.type == ErrorType.REGISTERED_HOST_REFUSED and raised.value.non_retryable
    assert "needs its host and pinned host key" in raised.value.message
    assert not (opsflow_home / "instances" / STACK / "web1").exists()


def test_names_cannot_escape_the_instances_directory(opsflow_home: Path) -> None:
    with pytest.raises(ValueError):
        local_provider.launch(LaunchInput(stack=STACK, hostname="../x", provider=Provider.LOCAL))

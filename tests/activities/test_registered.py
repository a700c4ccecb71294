"""Registered hosts against a real sshd (a local instance plays the existing host): the host
key learned and pinned, logins checked, and what goes wrong said as Temporal must see it."""

from __future__ import annotations

import asyncio
import platform
import shutil
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import local_machine, providers, registered, ssh
from opsflow import settings
from opsflow.errors import ErrorType
from opsflow.messages import AttachHostInput, LaunchInput, LaunchResult, MachineInput
from opsflow.secrets import encrypt, new_key
from opsflow.spec import Provider, RegisteredHostSpec
from tests.activities.conftest import Launcher


def existing_host(machine: LaunchResult, root: Path, **overrides: object) -> RegisteredHostSpec:
    """How a user would describe the machine: address, port, user and key, no host key."""
    fields: dict[str, object] = {
        "host": machine.ssh.host,
        "port": machine.ssh.port,
        "user": machine.ssh.user,
        "key_file": machine.ssh.key_file,
        "root": str(root),
    }
    fields.update(overrides)
    return RegisteredHostSpec.model_validate(fields)


@pytest.fixture
def machine(launch: Launcher) -> LaunchResult:
    return launch("legacy1")


def test_the_host_key_is_learned_on_first_contact_and_root_is_made(
    machine: LaunchResult, tmp_path: Path
) -> None:
    root = tmp_path / "srv" / "opsflow"
    pinned = asyncio.run(
        ActivityEnvironment().run(
            registered.attach_host,
            AttachHostInput(stack="s", hostname="legacy1", host=existing_host(machine, root)),
        )
    )
    assert pinned.host_key == machine.ssh.host_key  # the sshd's own ed25519 key
    assert root.is_dir()


def test_launching_a_registered_instance_attaches_to_the_pinned_host(
    machine: LaunchResult, tmp_path: Path
) -> None:
    host = existing_host(machine, tmp_path, host_key=machine.ssh.host_key)
    request = LaunchInput(
        stack="s", hostname="legacy1", provider=Provider.REGISTERED, registered=host
    )
    launched = asyncio.run(ActivityEnvironment().run(providers.launch_instance, request))
    assert launched.ssh == registered.endpoint(host)
    assert (launched.root, launched.private_ip) == (str(tmp_path), machine.ssh.host)
    code, out, _ = ssh.run(launched.ssh, "echo attached")
    assert (code, out) == (0, "attached\n")
    # What the host told of itself in the same login (this host plays it).
    facts = launched.facts
    assert facts is not None
    assert facts.architecture == platform.machine()
    assert facts.os == local_machine.pretty_name(Path("/etc/os-release"))
    assert facts.os is not None and facts.private_dns_name
    assert (facts.instance_type, facts.region, facts.public_ip) == (None, None, None)


def test_stopping_or_deregistering_a_registered_host_leaves_the_machine_running(
    machine: LaunchResult, tmp_path: Path
) -> None:
    request = MachineInput(stack="s", hostname="legacy1", provider=Provider.REGISTERED)
    env = ActivityEnvironment()
    asyncio.run(env.run(providers.stop_instance, request))
    asyncio.run(env.run(providers.terminate_instance, request))
    ssh.close_all()  # a new connection: the sshd itself must still answer
    assert ssh.run(machine.ssh, "true")[0] == 0


def test_another_host_key_than_the_pinned_one_is_refused_for_good(
    machine: LaunchResult, launch: Launcher, tmp_path: Path
) -> None:
    other = launch("other1")
    host = existing_host(machine, tmp_path, host_key=other.ssh.host_key)
    with pytest.raises(ApplicationError) as refused:
        registered.check(host)
    assert refused.value.type == ErrorType.HOST_KEY_MISMATCH
    assert refused.value.non_retryable


def test_a_host_that_does_not_answer_is_unreachable_and_retryable(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("not used: nothing listens\n")
    host = RegisteredHostSpec(host="127.0.0.1", port=1, key_file=str(key), root=str(tmp_path))
    with pytest.raises(ApplicationError) as failed:
        registered.check(host)
    assert failed.value.type == ErrorType.SSH_UNREACHABLE
    assert not failed.value.non_retryable
    assert "@127.0.0.1:1: SSH failed" in failed.value.message


def test_a_key_the_worker_cannot_read_or_a_root_it_cannot_write_is_refused(
    machine: LaunchResult, tmp_path: Path
) -> None:
    missing = existing_host(machine, tmp_path, key_file=str(tmp_path / "absent"))
    with pytest.raises(ApplicationError, match="cannot be read on the worker") as no_key:
        registered.check(missing)
    assert no_key.value.type == ErrorType.REGISTERED_HOST_REFUSED
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    unwritable = existing_host(machine, blocker / "root")
    with pytest.raises(ApplicationError, match="cannot be written by") as no_root:
        registered.check(unwritable)
    assert no_root.value.non_retryable


@pytest.mark.skipif(shutil.which("sudo") is None, reason="sudo is not installed")
def test_a_host_registered_with_sudo_is_checked_and_run_through_it(
    machine: LaunchResult, tmp_path: Path
) -> None:
    root = tmp_path / "through sudo"
    pinned = registered.check(existing_host(machine, root, sudo=True))
    assert root.is_dir()
    reach = registered.endpoint(pinned)
    assert reach.sudo
    code, out, _ = ssh.run(reach, ssh.privileged(reach, 'echo "$SUDO_USER $(id -u)"'))
    assert (code, out) == (0, f"{machine.ssh.user} 0\n")


def test_a_host_is_logged_in_to_with_its_sealed_key_and_no_key_file(
    machine: LaunchResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the CLI sends: the key's text sealed; the path shown only, on no disk here."""
    monkeypatch.setenv("OPSFLOW_SECRET_KEY", new_key().decode())
    text = Path(machine.ssh.key_file).read_text()
    sealed = encrypt(settings.secret_key(), text)
    nowhere = str(tmp_path / "on-the-laptop" / "id_ed25519")
    host = existing_host(machine, tmp_path / "root", key_file=nowhere, key=sealed)
    pinned = asyncio.run(
        ActivityEnvironment().run(
            registered.attach_host, AttachHostInput(stack="s", hostname="legacy1", host=host)
        )
    )
    assert pinned.host_key == machine.ssh.host_key and pinned.key == sealed
    reach = registered.endpoint(pinned)
    assert reach.key == sealed and reach.key_file == nowhere
    assert ssh.run(reach, "echo in")[:2] == (0, "in\n")


def test_a_sealed_key_for_another_worker_key_is_refused_without_showing_it(
    machine: LaunchResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = Path(machine.ssh.key_file).read_text()
    host = existing_host(
        machine, tmp_path, key_file="/laptop/id_ed25519", key=encrypt(new_key(), text)
    )
    monkeypatch.setenv("OPSFLOW_SECRET_KEY", new_key().decode())
    with pytest.raises(ApplicationError) as refused:
        registered.check(host)
    assert refused.value.type == ErrorType.SSH_AUTH_FAILED and refused.value.non_retryable
    assert "the key of /laptop/id_ed25519" in refused.value.message
    assert "cannot be decrypted" in refused.value.message
    assert text.splitlines()[1] not in str(refused.value)

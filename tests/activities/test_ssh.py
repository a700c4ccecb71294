"""SSH through fabric against real local instances: pooling, pinned host keys, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities import local_provider, ssh
from opsflow.messages import LaunchResult, MachineInput
from opsflow.spec import Provider
from tests.activities.conftest import STACK, Launcher

pytestmark = pytest.mark.integration


def test_run_returns_exit_code_and_both_streams(instance: LaunchResult) -> None:
    assert ssh.run(instance.ssh, "echo out; echo err >&2; exit 3") == (3, "out\n", "err\n")


def test_commands_share_one_pooled_connection(instance: LaunchResult) -> None:
    # SSH_CLIENT names the client's port: the same port means the same TCP connection.
    first = ssh.run(instance.ssh, 'echo "$SSH_CLIENT"')[1]
    second = ssh.run(instance.ssh, 'echo "$SSH_CLIENT"')[1]
    assert first == second != "\n"


def test_put_bytes_writes_the_file(instance: LaunchResult) -> None:
    target = Path(instance.root) / "uploaded.bin"
    ssh.put_bytes(instance.ssh, b"\x00binary\xff", str(target))
    assert target.read_bytes() == b"\x00binary\xff"


def test_quote_keeps_shell_syntax_literal(instance: LaunchResult) -> None:
    nasty = "a b; touch pwned $(touch pwned) `touch pwned` 'q' \"dq\" \\ \n*"
    code, out, _ = ssh.run(
        instance.ssh, f"cd {ssh.quote(instance.root)} && printf %s {ssh.quote(nasty)}"
    )
    assert (code, out) == (0, nasty)
    assert not (Path(instance.root) / "pwned").exists()


def test_another_host_key_is_rejected_and_not_retried(launch: Launcher) -> None:
    web1, web2 = launch("web1"), launch("web2")
    impostor = web1.ssh.model_copy(update={"host_key": web2.ssh.host_key})
    with pytest.raises(ApplicationError) as raised:
        ssh.run(impostor, "true")
    assert raised.value.type == ssh.HOST_KEY_MISMATCH_TYPE
    assert raised.value.non_retryable
    assert "host key does not match" in str(raised.value)


def test_a_host_key_of_another_type_is_rejected(instance: LaunchResult) -> None:
    pinned = instance.ssh.model_copy(update={"host_key": "ecdsa-sha2-nistp256 " + _ecdsa_blob()})
    with pytest.raises(ApplicationError) as raised:
        ssh.run(pinned, "true")
    assert raised.value.type == ssh.HOST_KEY_MISMATCH_TYPE and raised.value.non_retryable


def test_a_stopped_instance_is_a_retryable_error(instance: LaunchResult) -> None:
    local_provider.stop(MachineInput(stack=STACK, hostname="web1", provider=Provider.LOCAL))
    with pytest.raises(ApplicationError) as raised:
        ssh.run(instance.ssh, "true")
    assert raised.value.type == ssh.UNREACHABLE_TYPE and not raised.value.non_retryable


def test_a_dropped_connection_is_replaced(launch: Launcher) -> None:
    first = launch("web1")
    before = ssh.run(first.ssh, 'echo "$SSH_CLIENT"')[1]
    # stop drops the pooled connection; the restarted instance gets a new one.
    local_provider.stop(MachineInput(stack=STACK, hostname="web1", provider=Provider.LOCAL))
    again = launch("web1")
    code, after, _ = ssh.run(again.ssh, 'echo "$SSH_CLIENT"')
    assert code == 0 and after != before


def _ecdsa_blob() -> str:
    import base64

    import paramiko

    return base64.b64encode(paramiko.ECDSAKey.generate().asbytes()).decode()


def test_a_failed_file_operation_keeps_the_connection(instance: LaunchResult) -> None:
    before = ssh.run(instance.ssh, 'echo "$SSH_CLIENT"')[1]
    with pytest.raises(OSError) as raised:
        ssh.put_bytes(instance.ssh, b"x", "/nonexistent/dir/file")
    assert not isinstance(raised.value, ApplicationError)
    assert ssh.run(instance.ssh, 'echo "$SSH_CLIENT"')[1] == before

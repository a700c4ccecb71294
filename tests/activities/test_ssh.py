"""SSH through fabric against real local instances: pooling, pinned host keys, errors."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import paramiko
import pytest
from temporalio.exceptions import ApplicationError

from activities import local_provider, ssh
from opsflow import settings
from opsflow.errors import ErrorType
from opsflow.messages import LaunchResult, MachineInput
from opsflow.secrets import encrypt, new_key
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
    assert raised.value.type == ErrorType.HOST_KEY_MISMATCH
    assert raised.value.non_retryable
    assert "host key does not match" in str(raised.value)


def test_a_host_key_of_another_type_is_rejected(instance: LaunchResult) -> None:
    pinned = instance.ssh.model_copy(update={"host_key": "ecdsa-sha2-nistp256 " + _ecdsa_blob()})
    with pytest.raises(ApplicationError) as raised:
        ssh.run(pinned, "true")
    assert raised.value.type == ErrorType.HOST_KEY_MISMATCH and raised.value.non_retryable


def test_a_stopped_instance_is_a_retryable_error(instance: LaunchResult) -> None:
    local_provider.stop(MachineInput(stack=STACK, hostname="web1", provider=Provider.LOCAL))
    with pytest.raises(ApplicationError) as raised:
        ssh.run(instance.ssh, "true")
    assert raised.value.type == ErrorType.SSH_UNREACHABLE and not raised.value.non_retryable


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


def test_stdin_reaches_the_command_then_end_of_file(instance: LaunchResult) -> None:
    data = os.urandom(5 * 1024 * 1024)  # more than one SSH window
    code, out, _ = ssh.run(instance.ssh, "sha256sum", stdin=data, timeout=60)
    assert (code, out.split()[0]) == (0, hashlib.sha256(data).hexdigest())


def test_without_stdin_the_command_reads_end_of_file(instance: LaunchResult) -> None:
    assert ssh.run(instance.ssh, "cat; echo done", timeout=10) == (0, "done\n", "")


def test_a_command_that_ignores_its_stdin_does_not_hang(instance: LaunchResult) -> None:
    code, out, _ = ssh.run(instance.ssh, "echo early", stdin=os.urandom(8 << 20), timeout=30)
    assert (code, out) == (0, "early\n")


def test_large_stdout_and_stderr_at_once_do_not_deadlock(instance: LaunchResult) -> None:
    both = (
        "head -c 3000000 /dev/zero | tr '\\0' o & head -c 3000000 /dev/zero | tr '\\0' e >&2; wait"
    )
    # A generous timeout: this proves no deadlock, not speed (CI once took over 30 s here).
    code, out, err = ssh.run(instance.ssh, both, stdin=b"x" * 100_000, timeout=120)
    assert (code, len(out), len(err)) == (0, 3_000_000, 3_000_000)
    assert set(out) == {"o"} and set(err) == {"e"}


def test_a_lost_wakeup_costs_a_recheck_not_the_timeout(
    instance: LaunchResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    # paramiko's stdout-or-stderr event pipe can miss a wakeup (a race in its OrPipe, seen
    # in CI). Here it never wakes at all: output must still be read, by re-checking. More
    # output than SSH's 2 MiB window stalls the command until it is read, so without the
    # re-check this times out.
    silent, unused = os.pipe()
    monkeypatch.setattr(paramiko.Channel, "fileno", lambda self: silent)
    try:
        code, out, err = ssh.run(
            instance.ssh, "head -c 5000000 /dev/zero; echo err >&2", timeout=30
        )
    finally:
        os.close(silent)
        os.close(unused)
    assert (code, len(out), err) == (0, 5_000_000, "err\n")


def test_a_command_past_its_timeout_raises_and_keeps_the_connection(
    instance: LaunchResult,
) -> None:
    before = ssh.run(instance.ssh, 'echo "$SSH_CLIENT"')[1]
    started = time.monotonic()
    with pytest.raises(ApplicationError) as raised:
        ssh.run(instance.ssh, "sleep 5", timeout=0.5)
    assert raised.value.type == ErrorType.SSH_COMMAND_TIMEOUT
    assert time.monotonic() - started < 3
    assert ssh.run(instance.ssh, 'echo "$SSH_CLIENT"')[1] == before


def test_a_connection_dropped_mid_command_is_unreachable(instance: LaunchResult) -> None:
    ssh.run(instance.ssh, "true")
    stopper = threading.Timer(
        0.5,
        local_provider.stop,
        [MachineInput(stack=STACK, hostname="web1", provider=Provider.LOCAL)],
    )
    stopper.start()
    try:
        with pytest.raises(ApplicationError) as raised:
            ssh.run(instance.ssh, "sleep 10", timeout=30)
    finally:
        stopper.join()
    assert raised.value.type == ErrorType.SSH_UNREACHABLE and not raised.value.non_retryable


def test_a_sealed_key_logs_in_from_memory_and_a_bad_one_is_refused_unshown(
    instance: LaunchResult, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OPSFLOW_SECRET_KEY", new_key().decode())
    text = Path(instance.ssh.key_file).read_text()
    shown = str(tmp_path / "not-here")
    sealed = instance.ssh.model_copy(
        update={"key_file": shown, "key": encrypt(settings.secret_key(), text)}
    )
    assert ssh.run(sealed, "echo sealed")[:2] == (0, "sealed\n")
    garbage = "-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LWJ5dGVz\n"
    bad = sealed.model_copy(update={"key": encrypt(settings.secret_key(), garbage)})
    with pytest.raises(ApplicationError) as refused:
        ssh.run(bad, "true")
    assert refused.value.type == ErrorType.SSH_AUTH_FAILED and refused.value.non_retryable
    assert f"the key of {shown} is not an unencrypted" in refused.value.message
    assert "c2VjcmV0LWJ5dGVz" not in str(refused.value)

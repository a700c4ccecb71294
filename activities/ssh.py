"""SSH to instances: pooled connections and pinned host keys.

One connection per endpoint and worker process, reused by every activity: a paramiko
transport multiplexes many channels and is safe to use from several threads. A dead
connection is dropped and made again on the next call. fabric makes and holds the
connections and opens SFTP sessions; commands run on raw paramiko channels (`run`), with
optional bytes on their stdin.

Host keys are pinned: only the key recorded at launch (SshEndpoint.host_key) is accepted;
~/.ssh/known_hosts, ~/.ssh/config, the agent and default key files are never used.

The login key is SshEndpoint.key when it has one (registered hosts and ec2: the private
key the CLI read and sealed), decrypted with the worker's secret key and loaded in memory,
never written to disk or shown; else the file SshEndpoint.key_file on this worker (local
instances, and stacks made before keys travelled).

What can go wrong, as Temporal sees it:
- the host presents another key: ApplicationError HostKeyMismatch, non-retryable (a
  retry cannot fix it, and it may be an attack);
- the key is refused, or cannot be decrypted or read: ApplicationError SshAuthFailed,
  non-retryable;
- the host cannot be reached or the connection drops: ApplicationError SshUnreachable,
  retryable (the instance may be booting or restarting);
- a command runs past its timeout: ApplicationError SshCommandTimeout, retryable.

Every value that reaches the remote shell must go through `quote` (shlex.quote).
"""

from __future__ import annotations

import base64
import io
import select
import shlex
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NamedTuple

import paramiko
from fabric import Config, Connection
from temporalio.exceptions import ApplicationError

from opsflow import settings
from opsflow.errors import ErrorType, InvalidInput
from opsflow.messages import SshEndpoint
from opsflow.secrets import SecureValue, decrypt

CONNECT_TIMEOUT = 10
KEEPALIVE_SECONDS = 15
_CHUNK = 32768
_SEND_POLL = 0.01
# paramiko's event pipe for stdout-or-stderr can lose a wakeup: its OrPipe clears the pipe
# for one stream while the transport thread sets it for the other. Waiting on it is only a
# hint, re-checked this often, so a lost wakeup costs a fraction of a second, not the
# command's whole timeout (seen in CI: 6 MB on both streams stalled for 120 s).
_RECHECK = 0.1

quote = shlex.quote


class _Key(NamedTuple):
    host: str
    port: int
    user: str
    key_file: str
    host_key: str
    sealed: str | None  # the sealed key's ciphertext: names the key without revealing it


class _Timeout(Exception):
    """A command ran past its timeout."""


class _UnknownHostKey(paramiko.SSHException):
    """The host offered a key of a type that was not pinned."""


class _RejectUnpinned(paramiko.MissingHostKeyPolicy):
    """paramiko's RejectPolicy, raising a type we can tell apart from other SSH errors."""

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        raise _UnknownHostKey(f"{hostname} offered an unpinned {key.get_name()} host key")


_pool: dict[_Key, Connection] = {}
_pool_lock = threading.Lock()
_open_locks: dict[_Key, threading.Lock] = {}


def run(
    endpoint: SshEndpoint,
    command: str,
    timeout: float | None = None,
    stdin: bytes | None = None,
) -> tuple[int, str, str]:
    """Run `command` in the login shell; return (exit code, stdout, stderr).

    `stdin` (if any) is the command's standard input, then end of file; without it the
    command reads end of file at once. A non-zero exit code is returned, not raised:
    callers decide what it means. Past `timeout` seconds: ApplicationError
    SshCommandTimeout (the remote command is not killed, its channel is closed).

    One raw paramiko channel on the pooled transport (no fabric/invoke runner: no I/O
    threads), which saves ~30 ms a command and makes stdin's end of file exact.
    """
    with _connection(endpoint) as conn:
        transport = conn.client.get_transport()
        if transport is None:
            raise paramiko.SSHException("not connected")
        channel = transport.open_session(timeout=CONNECT_TIMEOUT)
        try:
            channel.exec_command(command)
            code, out, err = _exchange(channel, stdin or b"", timeout)
        except _Timeout as timed_out:
            raise ApplicationError(
                f"{_where(endpoint)}: command timed out after {timeout}s",
                type=ErrorType.SSH_COMMAND_TIMEOUT,
            ) from timed_out
        finally:
            channel.close()
    return code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def privileged(endpoint: SshEndpoint, command: str) -> str:
    """`command` as the endpoint runs privileged work: through `sudo -n` (never a password
    prompt) when its login user is not root, as on EC2 AMIs (ec2-user, ubuntu)."""
    return f"sudo -n -- sh -c {quote(command)}" if endpoint.sudo else command


def ping(endpoint: SshEndpoint, timeout: float) -> None:
    """One round trip to the instance's sshd on the pooled connection (opened if needed):
    a session channel opened and closed at once, so no process starts on the instance.
    Raises ApplicationError Unreachable (or HostKeyMismatch/AuthFailed) when it cannot
    connect, paramiko.SSHException when a connected sshd does not answer in time."""
    with _connection(endpoint) as conn:
        transport = conn.client.get_transport()
        if transport is None:
            raise paramiko.SSHException("not connected")
        transport.open_session(timeout=timeout).close()


def _exchange(
    channel: paramiko.Channel, stdin: bytes, timeout: float | None
) -> tuple[int, bytes, bytes]:
    """Send `stdin` then end of file while reading stdout and stderr, until the command
    has exited and closed its output. Raises _Timeout past `timeout` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    out, err = bytearray(), bytearray()
    sent = 0
    if not stdin:
        channel.shutdown_write()
    # Readable when data, end of file or close arrives (paramiko's event pipe).
    wakeup = channel.fileno()
    while True:
        while sent < len(stdin) and channel.send_ready() and not channel.closed:
            try:
                sent += channel.send(stdin[sent : sent + _CHUNK])
            except OSError:
                if not channel.closed:
                    raise
                break  # closed meanwhile: the command is gone
            if sent >= len(stdin):
                channel.shutdown_write()
        while channel.recv_ready():
            out += channel.recv(_CHUNK)
        while channel.recv_stderr_ready():
            err += channel.recv_stderr(_CHUNK)
        ended = channel.eof_received or channel.closed
        # A command may exit (or be gone) without reading all its stdin.
        sending = sent < len(stdin) and not (channel.closed or channel.exit_status_ready())
        if ended and not sending:
            break
        wait = None if deadline is None else deadline - time.monotonic()
        if wait is not None and wait <= 0:
            raise _Timeout
        if sending:  # the send window is full: poll for room
            wait = _SEND_POLL if wait is None else min(wait, _SEND_POLL)
        if ended:  # the event pipe stays readable after end of file
            time.sleep(wait or 0)
        else:
            select.select([wakeup], [], [], _RECHECK if wait is None else min(wait, _RECHECK))
    # The exit status may arrive just after end of file.
    wait = None if deadline is None else max(deadline - time.monotonic(), 0.0)
    if not channel.status_event.wait(wait):
        raise _Timeout
    transport = channel.get_transport()
    if channel.exit_status == -1 and (transport is None or not transport.is_active()):
        # Closed by a dropped connection, not by the command: no exit status came.
        raise paramiko.SSHException("the connection dropped while the command ran")
    return channel.exit_status, bytes(out), bytes(err)


def put_bytes(endpoint: SshEndpoint, data: bytes, remote_path: str) -> None:
    """Write `data` to `remote_path` on the instance (its directory must exist)."""
    put_files(endpoint, {remote_path: data})


def put_files(endpoint: SshEndpoint, files: Mapping[str, bytes]) -> None:
    """Write several files in one SFTP session."""
    with _connection(endpoint) as conn:
        sftp = conn.client.open_sftp()
        try:
            for path, data in files.items():
                with sftp.open(path, "wb") as remote:
                    remote.write(data)
        finally:
            sftp.close()


def close_all() -> None:
    """Close every pooled connection (worker shutdown, tests)."""
    with _pool_lock:
        connections = list(_pool.values())
        _pool.clear()
    for conn in connections:
        conn.close()


def transport(endpoint: SshEndpoint) -> paramiko.Transport:
    """The endpoint's live pooled transport, connected if needed (errors as `run`'s)."""
    with _connection(endpoint) as conn:
        found: paramiko.Transport | None = conn.client.get_transport()
        if found is None:
            raise paramiko.SSHException("not connected")
        return found


def _key(endpoint: SshEndpoint) -> _Key:
    sealed = endpoint.key.ciphertext if endpoint.key is not None else None
    return _Key(
        endpoint.host, endpoint.port, endpoint.user, endpoint.key_file, endpoint.host_key, sealed
    )


@contextmanager
def _connection(endpoint: SshEndpoint) -> Iterator[Connection]:
    """A live pooled connection; a connection that fails while in use is dropped."""
    key = _key(endpoint)
    conn = _get(key)
    try:
        yield conn
    except (paramiko.SSHException, EOFError, OSError) as err:
        if conn.is_connected:
            raise  # the connection is fine: the command or file operation itself failed
        _drop(key, conn)
        raise _unreachable(endpoint, err) from err


def _get(key: _Key) -> Connection:
    with _pool_lock:
        lock = _open_locks.setdefault(key, threading.Lock())
    # Per endpoint, so one slow host never holds up connections to the others.
    with lock:
        conn = _pool.get(key)
        if conn is not None and conn.is_connected:
            return conn
        if conn is not None:
            conn.close()
        conn = _open(key)
        with _pool_lock:
            _pool[key] = conn
        return conn


def _drop(key: _Key, conn: Connection) -> None:
    with _pool_lock:
        if _pool.get(key) is conn:
            del _pool[key]
    conn.close()


def _open(key: _Key) -> Connection:
    fields = key._asdict()
    sealed = fields.pop("sealed")
    endpoint = SshEndpoint(**fields, key=SecureValue(ciphertext=sealed) if sealed else None)
    login: dict[str, Any] = (
        {"pkey": login_key(endpoint)} if endpoint.key else {"key_filename": [key.key_file]}
    )
    # lazy: no /etc/fabric.yml, ~/.fabric.yml; load_ssh_configs off: no ~/.ssh/config.
    config = Config(lazy=True, overrides={"load_ssh_configs": False})
    conn = Connection(
        key.host,
        user=key.user,
        port=key.port,
        config=config,
        connect_timeout=CONNECT_TIMEOUT,
        forward_agent=False,
        gateway=False,
        connect_kwargs={
            **login,
            "look_for_keys": False,
            "allow_agent": False,
            "banner_timeout": CONNECT_TIMEOUT,
            "auth_timeout": CONNECT_TIMEOUT,
        },
    )
    _pin(conn.client, key)
    try:
        conn.open()
    except (paramiko.BadHostKeyException, _UnknownHostKey) as err:
        conn.close()
        raise ApplicationError(
            f"{_where(endpoint)}: host key does not match the key pinned at launch "
            f"({key.host_key.split()[0]}): refusing to connect",
            type=ErrorType.HOST_KEY_MISMATCH,
            non_retryable=True,
        ) from err
    except paramiko.AuthenticationException as err:
        conn.close()
        raise ApplicationError(
            f"{_where(endpoint)}: key {key.key_file} was refused: {err}",
            type=ErrorType.SSH_AUTH_FAILED,
            non_retryable=True,
        ) from err
    except (paramiko.SSHException, EOFError, OSError) as err:  # OSError: also timeouts
        conn.close()
        raise _unreachable(endpoint, err) from err
    conn.transport.set_keepalive(KEEPALIVE_SECONDS)
    return conn


_KEY_TYPES: tuple[type[paramiko.PKey], ...] = (
    paramiko.Ed25519Key,
    paramiko.ECDSAKey,
    paramiko.RSAKey,
)


def login_key(endpoint: SshEndpoint) -> paramiko.PKey:
    """The endpoint's sealed private key, decrypted and loaded in memory only. Errors name
    the key file it came from and never carry the key."""
    assert endpoint.key is not None
    failure = f"{_where(endpoint)}: the key of {endpoint.key_file}"
    try:
        text = decrypt(settings.secret_key(), endpoint.key)
    except InvalidInput as err:
        raise ApplicationError(
            f"{failure}: {err}", type=ErrorType.SSH_AUTH_FAILED, non_retryable=True
        ) from None
    for kind in _KEY_TYPES:
        try:
            return kind.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError):
            continue
    raise ApplicationError(
        f"{failure} is not an unencrypted ed25519, ecdsa or rsa private key",
        type=ErrorType.SSH_AUTH_FAILED,
        non_retryable=True,
    )


def _pin(client: paramiko.SSHClient, key: _Key) -> None:
    """Trust exactly the pinned key, nothing from disk, and reject any other."""
    kind, blob = key.host_key.split()[:2]
    pinned = paramiko.PKey.from_type_string(kind, base64.b64decode(blob))
    names = [f"[{key.host}]:{key.port}"] + ([key.host] if key.port == 22 else [])
    host_keys = client.get_host_keys()
    for name in names:
        host_keys.add(name, kind, pinned)
    client.set_missing_host_key_policy(_RejectUnpinned())


def _unreachable(endpoint: SshEndpoint, err: BaseException) -> ApplicationError:
    return unreachable(_where(endpoint), err)


def unreachable(where: str, err: BaseException) -> ApplicationError:
    """`user@host:port` could not be reached (retryable: it may be booting)."""
    reason = str(err) or type(err).__name__
    return ApplicationError(f"{where}: SSH failed: {reason}", type=ErrorType.SSH_UNREACHABLE)


def _where(endpoint: SshEndpoint) -> str:
    return f"{endpoint.user}@{endpoint.host}:{endpoint.port}"

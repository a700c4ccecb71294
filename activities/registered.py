"""Registered hosts: existing machines that opsflow reaches over SSH but did not launch
(OpsWorks' registered instances). opsflow never starts, stops or terminates them.

- `attach_host` activity, when a host joins a stack (`opsflow instance register`, or a
  `provider: registered` stack file applied): the host answers, its host key is the one
  given or, when none was given, the one it presents now (trust on first use: returned so
  the stack pins it for the instance's life), the key logs in as the user, and the
  user can write under `root`. Nothing is installed. The key is the one the CLI read from
  `key_file` and sealed (RegisteredHostSpec.key), loaded in memory; only a host of a
  stack made before keys travelled is logged in to with `key_file` read on the worker.
- `attach` (the launch of a registered instance, activities.providers): the same check
  with the pinned key, then the endpoint to run recipes on.

What can go wrong, as Temporal sees it: unreachable (SshUnreachable, retryable), key
refused or not decryptable (SshAuthFailed), another host key than the pinned one
(HostKeyMismatch), an old stack's key file the worker cannot read or a root it cannot
write (RegisteredHostRefused); all but
the first are non-retryable.
"""

from __future__ import annotations

import asyncio
import os
import socket

import paramiko
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import names, ssh
from opsflow.errors import ErrorType
from opsflow.messages import (
    AttachHostInput,
    LaunchInput,
    LaunchResult,
    MachineFacts,
    SshEndpoint,
)
from opsflow.spec import RegisteredHostSpec

CHECK_TIMEOUT = 30.0
# The host key opsflow pins when the host offers several: the strongest common one first.
PREFERRED_KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "rsa-sha2-256")


@activity.defn(name=names.ATTACH_HOST)
async def attach_host(request: AttachHostInput) -> RegisteredHostSpec:
    """The host, checked, with its host key to pin."""
    return await asyncio.to_thread(check, request.host)


def attach(request: LaunchInput) -> LaunchResult:
    """A registered instance's "launch": its host answers with the pinned key."""
    host = request.registered
    if host is None or host.host_key is None:
        raise ApplicationError(
            f"{request.stack}/{request.hostname}: a registered instance needs its host and "
            "pinned host key (register it again)",
            type=ErrorType.REGISTERED_HOST_REFUSED,
            non_retryable=True,
        )
    _, output = _checked(host)
    return LaunchResult(
        ssh=endpoint(host), root=host.root, private_ip=host.host, facts=_facts(output)
    )


def _facts(output: str) -> MachineFacts:
    """The check's answer (`uname -m`, the os's PRETTY_NAME, `hostname -f`): what a host
    opsflow did not launch tells in the same login; the rest stays None."""
    lines = [*output.splitlines(), "", "", ""]
    architecture, os_name, fqdn = (line.strip() or None for line in lines[:3])
    return MachineFacts(architecture=architecture, os=os_name, private_dns_name=fqdn)


# After the check: the facts, one a line (an absent one an empty line).
_FACTS = (
    "uname -m 2>/dev/null || echo; "
    '(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-}") || echo; '
    "hostname -f 2>/dev/null || hostname 2>/dev/null || echo"
)


def check(host: RegisteredHostSpec) -> RegisteredHostSpec:
    """Log in with the host's key (pinning the key it shows now when none is pinned) and
    make sure `root` exists and is writable. Blocking."""
    return _checked(host)[0]


def _checked(host: RegisteredHostSpec) -> tuple[RegisteredHostSpec, str]:
    """check(), and what the host printed of itself (see _FACTS)."""
    if host.key is None and not os.access(host.key_file, os.R_OK):
        raise ApplicationError(
            f"{host.where()}: key file {host.key_file} cannot be read on the worker",
            type=ErrorType.REGISTERED_HOST_REFUSED,
            non_retryable=True,
        )
    pinned = host if host.host_key else host.model_copy(update={"host_key": learn_host_key(host)})
    root = ssh.quote(pinned.root)
    reach = endpoint(pinned)
    command = f"mkdir -p -- {root} && test -w {root} && {{ {_FACTS}; }}"
    code, out, err = ssh.run(reach, ssh.privileged(reach, command), timeout=CHECK_TIMEOUT)
    if code != 0:
        raise ApplicationError(
            f"{host.where()}: {pinned.root} cannot be written by "
            f"{host.user}{' through sudo' if host.sudo else ''}: "
            f"{err.strip() or f'exit {code}'}",
            type=ErrorType.REGISTERED_HOST_REFUSED,
            non_retryable=True,
        )
    return pinned, out


def learn_host_key(host: RegisteredHostSpec) -> str:
    """The host key the host presents now, as '<type> <base64>'."""
    try:
        sock = socket.create_connection((host.host, host.port), timeout=ssh.CONNECT_TIMEOUT)
    except OSError as err:
        raise ssh.unreachable(host.where(), err) from err
    transport = paramiko.Transport(sock)
    try:
        options = transport.get_security_options()
        offered = list(options.key_types)
        options.key_types = [k for k in PREFERRED_KEY_TYPES if k in offered] + [
            k for k in offered if k not in PREFERRED_KEY_TYPES
        ]
        transport.start_client(timeout=ssh.CONNECT_TIMEOUT)
        key = transport.get_remote_server_key()
    except (paramiko.SSHException, EOFError, OSError) as err:
        raise ssh.unreachable(host.where(), err) from err
    finally:
        transport.close()
    return f"{key.get_name()} {key.get_base64()}"


def endpoint(host: RegisteredHostSpec) -> SshEndpoint:
    assert host.host_key is not None
    return SshEndpoint(
        host=host.host,
        port=host.port,
        user=host.user,
        key_file=host.key_file,
        key=host.key,
        host_key=host.host_key,
        sudo=host.sudo,
    )


ACTIVITIES = [attach_host]

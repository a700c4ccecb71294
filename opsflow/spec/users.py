"""Stack users (OpsWorks' user profiles): Unix users with an SSH key and optional sudo on
every instance, or on the instances of some layers; and the Chef version of a stack."""

from __future__ import annotations

import base64
import binascii
import re
import struct
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from opsflow.spec.fields import LayerName, StrictModel

# Debian's adduser rule (NAME_REGEX), shorter than useradd's 32 characters.
_USER_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,30}$")
# Accounts every Debian system has: a stack user must never take one over.
SYSTEM_USERS = frozenset(
    {
        "root",
        "daemon",
        "bin",
        "sys",
        "sync",
        "games",
        "man",
        "lp",
        "mail",
        "news",
        "uucp",
        "proxy",
        "www-data",
        "backup",
        "list",
        "irc",
        "gnats",
        "nobody",
        "systemd-network",
        "systemd-resolve",
        "systemd-timesync",
        "messagebus",
        "sshd",
        "_apt",
        "opsflow",
    }
)
_KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ssh-dss",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)


def _user_name(value: str) -> str:
    if not _USER_NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a Unix user name (a lower-case letter, then up to 30 of "
            "a-z, 0-9, _ and -)"
        )
    if value in SYSTEM_USERS:
        raise ValueError(f"{value!r} is a system account; a stack user needs its own name")
    return value


def ssh_public_key_problem(value: str) -> str | None:
    """Why `value` is not one OpenSSH public key line (`TYPE BASE64 [comment]`), or None.

    The base64 blob must decode and begin with the same key type it is labelled with, as
    sshd itself checks, so a truncated or pasted-wrong key is refused at load time."""
    if "\n" in value.strip() or "\r" in value:
        return "must be one line (one key)"
    parts = value.strip().split(None, 2)
    if len(parts) < 2:
        return "must be `TYPE BASE64 [comment]`, as in an authorized_keys line"
    kind, blob = parts[0], parts[1]
    if kind not in _KEY_TYPES:
        return f"key type {kind[:40]!r} is not one OpenSSH takes ({', '.join(sorted(_KEY_TYPES))})"
    try:
        raw = base64.b64decode(blob, validate=True)
        (length,) = struct.unpack(">I", raw[:4])
        inner = raw[4 : 4 + length].decode("ascii")
    except (binascii.Error, struct.error, UnicodeDecodeError, ValueError):
        return "the key's base64 part does not decode"
    if inner != kind:
        return f"the key says {kind!r} but its data is a {inner[:40]!r} key"
    return None


def _ssh_public_key(value: str) -> str:
    problem = ssh_public_key_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value.strip()


UserName = Annotated[str, AfterValidator(_user_name)]
SshPublicKey = Annotated[str, AfterValidator(_ssh_public_key)]


class UserSpec(StrictModel):
    """One Unix user opsflow keeps on the stack's instances (created on setup and
    configure; removed when it leaves the file, and only if opsflow created it)."""

    name: UserName
    ssh_public_key: SshPublicKey
    sudo: bool = Field(default=False, description="passwordless sudo (/etc/sudoers.d/)")
    layers: list[LayerName] | None = Field(
        default=None, description="only on these layers' instances; default: every instance"
    )
    uid: int | None = Field(
        default=None, ge=1000, le=60000, description="the Unix user id; default: the next free"
    )


CHEF_VERSIONS = ("11.10", "11.4", "12")
"""The Chef versions OpsWorks Stacks ran on Linux (0.9 was retired before opsflow)."""


def _chef_version(value: Any) -> Any:
    """`12`, `"12"`, `"11.10"`; YAML reads an unquoted 11.10 as the float 11.1, which is
    taken for 11.10 (OpsWorks never had an 11.1)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        value = str(value)
    elif isinstance(value, float):
        value = {11.1: "11.10", 11.4: "11.4", 12.0: "12"}.get(value, repr(value))
    if isinstance(value, str) and value not in CHEF_VERSIONS:
        raise ValueError(
            f"Chef {value[:20]} is not a version OpsWorks Stacks had on Linux "
            f"(one of {', '.join(CHEF_VERSIONS)})"
        )
    return value


class ChefSpec(StrictModel):
    """How chef recipes see the stack, as on OpsWorks: 11.x through node attributes
    (`node[:opsworks]`, `node[:deploy]`), 12 through data bags (`search(:aws_opsworks_app)`)."""

    version: Annotated[str, BeforeValidator(_chef_version)] = "11.10"

    @property
    def data_bags(self) -> bool:
        return self.version == "12"

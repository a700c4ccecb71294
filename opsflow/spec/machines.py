"""What an instance runs on: EC2 launch options and EBS volumes, or a registered host."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field, model_validator

from opsflow import aws
from opsflow.secrets import SecureValue
from opsflow.spec.fields import (
    PathText,
    StrictModel,
)


class Ec2Options(StrictModel):
    """EC2 launch settings; the stack's are defaults, a layer's and an instance's override
    them key by key (tags are merged)."""

    ami: str | None = None
    instance_type: str | None = None
    subnet: str | None = None
    security_groups: list[str] | None = None
    key_pair: str | None = None
    instance_profile: str | None = Field(default=None, description="IAM instance profile name")
    tags: dict[str, str] = Field(default_factory=dict)
    ssh_user: str | None = Field(default=None, description="the AMI's login user (ec2-user)")
    ssh_key_file: str | None = Field(
        default=None, description="the key pair's private key: read by the CLI, kept for display"
    )
    ssh_key: SecureValue | None = Field(
        default=None, description="the private key of ssh_key_file, sealed by the CLI"
    )
    ssh_key_id: str | None = Field(
        default=None, description="ssh_key's public fingerprint (SHA256:...), what compares"
    )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Ec2Options):
            return NotImplemented
        return _same(self, other, "ssh_key")

    @model_validator(mode="after")
    def _shapes(self) -> Ec2Options:
        checks = [
            ("ami", self.ami, aws.AMI_ID, "an AMI id like ami-0abc1234def567890"),
            ("instance_type", self.instance_type, aws.INSTANCE_TYPE, "like t3.micro"),
            ("subnet", self.subnet, aws.SUBNET_ID, "a subnet id like subnet-0abc1234"),
        ]
        checks += [
            ("security_groups", group, aws.SECURITY_GROUP_ID, "a group id like sg-0abc1234")
            for group in self.security_groups or []
        ]
        for field, value, pattern, shape in checks:
            if value is not None and not pattern.fullmatch(value):
                raise ValueError(f"{field}: {value!r} is not {shape}")
        reserved = [key for key in self.tags if key.startswith(("opsflow:", "aws:"))]
        if reserved:
            raise ValueError(f"tags: {reserved} use a reserved prefix (opsflow:, aws:)")
        return self

    def over(self, base: Ec2Options) -> Ec2Options:
        """These options on top of `base`."""
        merged = base.model_dump() | self.model_dump(exclude_none=True, exclude={"tags"})
        merged["tags"] = base.tags | self.tags
        return Ec2Options.model_validate(merged)


class VolumeSpec(StrictModel):
    size: int = Field(ge=1, le=16384, description="GiB")
    type: str = Field(default="gp3", pattern=r"^(gp2|gp3|io1|io2|st1|sc1|standard)$")
    mount_point: str = Field(pattern=r"^/[A-Za-z0-9._/-]*$")


# An OpenSSH public key as in a known_hosts line: '<type> <base64>'.
HOST_KEY = re.compile(r"^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa) [A-Za-z0-9+/]+={0,2}$")
# A DNS name or an IPv4/IPv6 address: no spaces, no shell or URL syntax.
SSH_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.:-]{0,252}[A-Za-z0-9])?$")
SSH_USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")


class RegisteredHostSpec(StrictModel):
    """How to reach a host opsflow did not launch (OpsWorks' registered instances)."""

    host: str = Field(description="DNS name or IP address")
    port: int = Field(default=22, ge=1, le=65535)
    user: str = Field(default="root", description="must be able to write under `root`")
    key_file: PathText = Field(
        description="private key, relative to the stack file: read by the CLI, kept for display"
    )
    key: SecureValue | None = Field(
        default=None,
        description="the private key of key_file, sealed by the CLI (None: a stack made "
        "before keys travelled, whose worker reads key_file)",
    )
    key_id: str | None = Field(
        default=None, description="key's public fingerprint (SHA256:...), what compares"
    )
    host_key: str | None = Field(
        default=None,
        description="'<type> <base64>' to pin; absent: learned at registration and pinned",
    )
    root: str = Field(default="/", description="where opsflow keeps its files on the host")
    sudo: bool = Field(
        default=False, description="run recipes through `sudo -n` (a user that is not root)"
    )

    @model_validator(mode="after")
    def _shapes(self) -> RegisteredHostSpec:
        checks = [
            ("host", self.host, SSH_HOST, "a DNS name or an IP address"),
            ("user", self.user, SSH_USER, "a login name like deploy"),
            ("host_key", self.host_key, HOST_KEY, "'<type> <base64>' as in known_hosts"),
        ]
        for field, value, pattern, shape in checks:
            if value is not None and not pattern.fullmatch(value):
                raise ValueError(f"{field}: {value!r} is not {shape}")
        if not self.root.startswith("/") or ".." in self.root.split("/"):
            raise ValueError(f"root: {self.root!r} must be an absolute path")
        if not self.key_file:
            raise ValueError("key_file: the private key that logs in as `user` is needed")
        return self

    def where(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RegisteredHostSpec):
            return NotImplemented
        return _same(self, other, "key")


def _same(model: BaseModel, other: BaseModel, secure: str) -> bool:
    """Equal but for the sealed key, whose ciphertext differs at every sealing: the key's
    public fingerprint beside it tells whether the key itself changed (plans, attaches)."""
    return type(model) is type(other) and model.model_dump(exclude={secure}) == other.model_dump(
        exclude={secure}
    )

"""Machines: how to reach one, what its launch knows, and the provider activities'
inputs and results (launch, attach, stop, terminate)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from opsflow.secrets import SecureValue
from opsflow.spec import (
    Ec2Options,
    Provider,
    RegisteredHostSpec,
    Scaling,
    VolumeSpec,
)
from opsflow.status import InstanceStatus


class SshEndpoint(BaseModel):
    """How to reach an instance; host_key is pinned at launch and checked on every connect."""

    host: str
    port: int
    user: str
    key_file: str = Field(description="the private key's file: shown; read only without `key`")
    host_key: str = Field(description="'<type> <base64>' as in a known_hosts line")
    sudo: bool = Field(
        default=False, description="recipe runs go through `sudo -n` (a login user not root)"
    )
    key: SecureValue | None = Field(
        default=None,
        description="the private key, sealed (registered hosts, ec2); None: read key_file on "
        "the worker (local instances, whose key lives on their worker; stacks made before)",
    )


class MachineFacts(BaseModel):
    """What OpsWorks showed recipes of an instance's machine (`opsworks.instance`,
    aws_opsworks_instance) that opsflow can learn where it launches one: from EC2's
    answer; on a local machine its host's architecture and os and its hostname as private
    DNS name, the rest None ("as on a non-EC2 machine"). All None in views made before."""

    instance_type: str | None = None
    availability_zone: str | None = None
    region: str | None = None
    public_ip: str | None = None
    public_dns_name: str | None = None
    private_dns_name: str | None = None
    architecture: str | None = None
    ami_id: str | None = None
    os: str | None = None
    subnet_id: str | None = None
    elastic_ip: str | None = None
    root_device_type: str | None = None
    created_at: datetime | None = None
    booted_at: datetime | None = None


class InstanceView(MachineFacts):
    """What the stack knows of one instance; what `instance list` prints (its machine's
    facts from MachineFacts, as the last launch found them)."""

    hostname: str
    layers: list[str]
    status: InstanceStatus = InstanceStatus.REQUESTED
    provider: Provider = Provider.LOCAL
    root: str | None = None
    private_ip: str | None = None
    ssh: SshEndpoint | None = None
    from_file: bool = Field(default=True, description="declared in the stack file")
    scaling: Scaling = Scaling.ALWAYS
    message: str | None = Field(default=None, description="why the last command failed")
    updated_at: datetime | None = None
    ec2_instance_id: str | None = Field(
        default=None, description="ec2: the EC2 instance id (cpu then comes from CloudWatch)"
    )
    task_queue: str | None = Field(
        default=None,
        description="local: the task queue of the worker that launched it, where all its "
        "activities run; None: the shared queue (any worker)",
    )


class InstanceStatusLine(BaseModel):
    """One instance's status, all that waiting for instances to settle needs: the stack's
    `statuses` query answers these (a few dozen bytes an instance, not the whole view)."""

    hostname: str
    status: InstanceStatus
    updated_at: datetime | None = None


class Ec2Machine(BaseModel):
    """What launching one instance needs: its resolved options and the layer's extras."""

    stack: str
    layer: str
    hostname: str
    region: str
    options: Ec2Options
    elastic_ip: bool = False
    volumes: list[VolumeSpec] = Field(default_factory=list)
    target_group: str | None = Field(default=None, description="the layer's load balancer")
    token: str = Field(description="the same for every retry of one start: one instance only")


class Ec2Resources(BaseModel):
    """What opsflow created for one instance (kept in its state; all released on delete)."""

    instance_id: str
    availability_zone: str | None = None
    private_ip: str | None = None
    public_ip: str | None = None
    allocation_id: str | None = None
    association_id: str | None = None
    volume_ids: list[str] = Field(default_factory=list)


class TargetInput(BaseModel):
    region: str
    target_group: str
    instance_id: str


class LaunchInput(BaseModel):
    stack: str
    hostname: str
    provider: Provider
    ec2: Ec2Machine | None = None
    kept: Ec2Resources | None = Field(
        default=None, description="heal: the lost instance's address and volumes to take over"
    )
    registered: RegisteredHostSpec | None = Field(
        default=None, description="registered: the host to attach to (its key pinned)"
    )


class AttachHostInput(BaseModel):
    """Check that a host to register answers, and pin its host key."""

    stack: str
    hostname: str
    host: RegisteredHostSpec


class LaunchResult(BaseModel):
    ssh: SshEndpoint
    root: str
    private_ip: str
    facts: MachineFacts | None = Field(
        default=None, description="the machine's facts (None: a provider before they were)"
    )
    ec2: Ec2Resources | None = None
    task_queue: str | None = Field(
        default=None,
        description="the machine is on the launching worker's host: its own task queue",
    )


class MachineInput(BaseModel):
    stack: str
    hostname: str
    provider: Provider
    region: str | None = None
    ec2: Ec2Resources | None = None
    keep: bool = Field(default=False, description="heal: keep the address and volumes")

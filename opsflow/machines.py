"""What launching an instance needs from the stack file, per provider (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from opsflow.messages import Ec2Machine
from opsflow.spec import Ec2Options, Provider, RegisteredHostSpec, StackSpec, VolumeSpec


def ec2_machine(
    spec: StackSpec, layers: Sequence[str], hostname: str, token: str
) -> Ec2Machine | None:
    """The instance's EC2 settings: the stack's, then its FIRST layer's, then its own (tags
    merged); the volumes, elastic IP and load balancer of every layer it is in (the spec
    lets no two of them disagree). None on other providers."""
    if spec.provider != Provider.EC2:
        return None
    assert spec.region is not None  # the spec checks it for ec2 stacks
    found = [layer for name in layers if (layer := spec.layer(name)) is not None]
    options = spec.ec2 or Ec2Options()
    if found and found[0].ec2 is not None:
        options = found[0].ec2.over(options)
    instance = spec.instance_spec(hostname)
    if instance is not None and instance.ec2 is not None:
        options = instance.ec2.over(options)
    volumes: list[VolumeSpec] = []
    for layer in found:
        volumes += [v for v in layer.volumes if v not in volumes]
    return Ec2Machine(
        stack=spec.name,
        layer=layers[0] if layers else "",
        hostname=hostname,
        region=spec.region,
        options=options,
        elastic_ip=any(layer.auto_assign_elastic_ip for layer in found),
        volumes=volumes,
        target_group=next((layer.load_balancer for layer in found if layer.load_balancer), None),
        token=token,
    )


def registered_hosts(spec: StackSpec) -> dict[str, RegisteredHostSpec]:
    """hostname -> the host a `provider: registered` stack file declares for it."""
    return {d.spec.hostname: d.spec.ssh for d in spec.declared() if d.spec.ssh is not None}


def hosts_to_attach(
    wanted: Mapping[str, RegisteredHostSpec], pinned: Mapping[str, RegisteredHostSpec]
) -> dict[str, RegisteredHostSpec]:
    """The declared hosts that must be checked (and their keys pinned) before an apply:
    new ones, and ones whose settings changed. A host declared without host_key keeps the
    key learned at its registration."""
    changed: dict[str, RegisteredHostSpec] = {}
    for hostname, host in wanted.items():
        known = pinned.get(hostname)
        if known is None or known != host.model_copy(
            update={"host_key": host.host_key or known.host_key}
        ):
            changed[hostname] = host
    return changed

"""What launching an instance needs from the stack file, per provider (pure)."""

from __future__ import annotations

from collections.abc import Mapping

from opsflow.messages import Ec2Machine
from opsflow.spec import Ec2Options, Provider, RegisteredHostSpec, StackSpec


def ec2_machine(spec: StackSpec, layer_name: str, hostname: str, token: str) -> Ec2Machine | None:
    """The instance's EC2 settings: the stack's, then the layer's, then its own (tags
    merged); None on other providers."""
    if spec.provider != Provider.EC2:
        return None
    assert spec.region is not None  # the spec checks it for ec2 stacks
    layer = spec.layer(layer_name)
    options = spec.ec2 or Ec2Options()
    if layer is not None and layer.ec2 is not None:
        options = layer.ec2.over(options)
    instance = next((i for i in layer.instances if i.hostname == hostname), None) if layer else None
    if instance is not None and instance.ec2 is not None:
        options = instance.ec2.over(options)
    return Ec2Machine(
        stack=spec.name,
        layer=layer_name,
        hostname=hostname,
        region=spec.region,
        options=options,
        elastic_ip=layer.auto_assign_elastic_ip if layer else False,
        volumes=list(layer.volumes) if layer else [],
        target_group=layer.load_balancer if layer else None,
        token=token,
    )


def registered_hosts(spec: StackSpec) -> dict[str, RegisteredHostSpec]:
    """hostname -> the host a `provider: registered` stack file declares for it."""
    return {
        instance.hostname: instance.ssh
        for layer in spec.layers
        for instance in layer.instances
        if instance.ssh is not None
    }


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

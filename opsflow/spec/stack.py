"""The stack file's root, and the recipes it refers to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from pydantic import Field, model_validator

from opsflow import aws
from opsflow.spec.apps import AppSpec, RdsSpec
from opsflow.spec.fields import (
    ConfigurationManager,
    LifecycleEvent,
    Provider,
    StackName,
    StrictModel,
)
from opsflow.spec.layers import (
    InstanceSpec,
    LayerSpec,
    StackInstanceSpec,
)
from opsflow.spec.machines import (
    Ec2Options,
    VolumeSpec,
)
from opsflow.spec.schedules import Scaling
from opsflow.spec.sources import CookbookSource
from opsflow.spec.users import ChefSpec, UserSpec


class DeclaredInstance(NamedTuple):
    """An instance the file declares, nested under its one layer or in the stack-level
    `instances:` list with several."""

    where: str  # its field path: `layers[0].instances[1]` or `instances[0]`
    spec: InstanceSpec
    layers: list[str]  # in run order; the first one's loops own it


class StackSpec(StrictModel):
    name: StackName
    provider: Provider = Provider.LOCAL
    region: str | None = Field(default=None, description="ec2: the AWS region")
    ec2: Ec2Options | None = None
    configuration_manager: ConfigurationManager = ConfigurationManager.SHELL
    chef: ChefSpec = Field(
        default_factory=ChefSpec, description="the Chef version recipes see (11.10 or 12)"
    )
    cookbooks: CookbookSource | None = None
    custom_json: dict[str, Any] = Field(default_factory=dict)
    layers: list[LayerSpec] = Field(default_factory=list)
    apps: list[AppSpec] = Field(default_factory=list)
    rds: list[RdsSpec] = Field(default_factory=list, description="ec2: registered RDS instances")
    users: list[UserSpec] = Field(
        default_factory=list, description="Unix users with SSH keys on the instances"
    )
    instances: list[StackInstanceSpec] = Field(
        default_factory=list,
        description="instances in several layers (`layers: [app, memcached]`); an instance "
        "in one layer may stay nested under it",
    )

    @model_validator(mode="after")
    def _check_whole_stack(self) -> StackSpec:
        self._check_provider_settings()
        seen_layers: set[str] = set()
        seen_hosts: dict[str, str] = {}
        for layer in self.layers:
            if layer.name in seen_layers:
                raise ValueError(f"layers: layer name {layer.name!r} is used twice")
            seen_layers.add(layer.name)
            for instance in layer.instances:
                if instance.hostname in seen_hosts:
                    raise ValueError(
                        f"layers: hostname {instance.hostname!r} appears in layer "
                        f"{seen_hosts[instance.hostname]!r} and in layer {layer.name!r}"
                    )
                seen_hosts[instance.hostname] = layer.name
        self._check_multi_layer_instances(seen_hosts)
        seen_rds: set[str] = set()
        for entry in self.rds:
            if entry.name in seen_rds:
                raise ValueError(f"rds: name {entry.name!r} is used twice")
            seen_rds.add(entry.name)
        seen_apps: set[str] = set()
        for index, app in enumerate(self.apps):
            if app.name in seen_apps:
                raise ValueError(f"apps: app name {app.name!r} is used twice")
            seen_apps.add(app.name)
            unknown = [layer for layer in app.layers if layer not in seen_layers]
            if unknown:
                raise ValueError(f"apps: app {app.name!r} names unknown layer(s) {unknown}")
            if app.data_source is not None and app.data_source not in seen_rds:
                raise ValueError(
                    f"apps[{index}].data_source: {app.data_source!r} is not an `rds` entry of "
                    f"this stack (rds: {', '.join(sorted(seen_rds)) or 'none'})"
                )
        self._check_users(seen_layers)
        return self

    def _check_multi_layer_instances(self, nested: dict[str, str]) -> None:
        """The stack-level `instances:`: known layers, hostnames declared once, and the
        settings a run or a launch can take from one layer only agreeing."""
        seen: set[str] = set()
        for index, instance in enumerate(self.instances):
            where = f"instances[{index}]"
            if instance.hostname in nested:
                raise ValueError(
                    f"{where}.hostname: {instance.hostname!r} is also nested under layer "
                    f"{nested[instance.hostname]!r}; declare an instance once"
                )
            if instance.hostname in seen:
                raise ValueError(f"{where}.hostname: {instance.hostname!r} is listed twice")
            seen.add(instance.hostname)
            problem = self.layers_problem(instance.layers)
            if problem is not None:
                raise ValueError(f"{where}.layers: {problem}")

    def layers_problem(self, layers: Sequence[str]) -> str | None:
        """Why one instance cannot be in `layers` together (None: it can): each a layer of
        the stack, named once, one configuration manager (a run runs one), at most one
        load balancer (an instance registers with one target group)."""
        if not layers:
            return "an instance needs at least one layer"
        found: list[LayerSpec] = []
        for index, name in enumerate(layers):
            layer = self.layer(name)
            if layer is None:
                known = ", ".join(item.name for item in self.layers) or "none"
                return f"unknown layer {name!r} (layers: {known})"
            if name in layers[:index]:
                return f"layer {name!r} is named twice"
            found.append(layer)
        managers = {name: self.manager_for(name) for name in layers}
        if len(set(managers.values())) > 1:
            said = ", ".join(f"{name!r} ({m.value})" for name, m in managers.items())
            return f"layers {said} use different configuration managers; an instance's run runs one"
        balancers = sorted({layer.load_balancer for layer in found if layer.load_balancer})
        if len(balancers) > 1:
            return (
                f"its layers name different load balancers ({', '.join(balancers)}); an "
                "instance registers with one target group"
            )
        mounts: dict[str, str] = {}
        for layer in found:
            for volume in layer.volumes:
                other = mounts.setdefault(volume.mount_point, layer.name)
                if other != layer.name and volume not in self._volumes_of(other):
                    return (
                        f"layers {other!r} and {layer.name!r} mount different volumes at "
                        f"{volume.mount_point}"
                    )
        return None

    def _volumes_of(self, layer_name: str) -> list[VolumeSpec]:
        layer = self.layer(layer_name)
        return list(layer.volumes) if layer is not None else []

    def _check_users(self, layers: set[str]) -> None:
        seen: set[str] = set()
        uids: set[int] = set()
        for index, user in enumerate(self.users):
            if user.name in seen:
                raise ValueError(f"users[{index}].name: user {user.name!r} is listed twice")
            seen.add(user.name)
            if user.uid is not None:
                if user.uid in uids:
                    raise ValueError(f"users[{index}].uid: {user.uid} is given twice")
                uids.add(user.uid)
            unknown = [layer for layer in user.layers or [] if layer not in layers]
            if unknown:
                raise ValueError(f"users[{index}].layers: unknown layer(s) {unknown}")

    def _check_provider_settings(self) -> None:
        self._check_registered_hosts()
        if self.provider != Provider.EC2:
            used = ["region"] if self.region is not None else []
            used += ["ec2"] if self.ec2 is not None else []
            used += ["rds"] if self.rds else []
            used += [f"layers.{layer.name}.{f}" for layer in self.layers for f in layer.uses_ec2()]
            used += [f"instances.{i.hostname}.ec2" for i in self.instances if i.ec2 is not None]
            if used:
                raise ValueError(
                    f"{', '.join(used)}: only for provider ec2 (this stack is "
                    f"{self.provider.value})"
                )
            return
        if self.region is None:
            raise ValueError("region: provider ec2 needs a region (like us-east-1)")
        if not aws.REGION.fullmatch(self.region):
            raise ValueError(f"region: {self.region!r} is not an AWS region name (like us-east-1)")

    def _check_registered_hosts(self) -> None:
        """A registered stack's instances are existing hosts: each says how to reach it,
        and none can be started, stopped or added by scaling; elsewhere `ssh` is refused."""
        registered = self.provider == Provider.REGISTERED
        for li, layer in enumerate(self.layers):
            if registered and layer.load_based_scaling is not None:
                raise ValueError(
                    f"layers[{li}].load_based_scaling: provider registered cannot start, stop "
                    "or add hosts"
                )
        for where, instance, _ in self.declared():
            if registered and instance.ssh is None:
                raise ValueError(
                    f"{where}.ssh: provider registered needs each instance's host "
                    "(ssh: {host, key_file, ...})"
                )
            if registered and instance.scaling != Scaling.ALWAYS:
                raise ValueError(
                    f"{where}.scaling: provider registered cannot start or stop hosts "
                    f"(scaling {instance.scaling.value})"
                )
            if not registered and instance.ssh is not None:
                raise ValueError(
                    f"{where}.ssh: only for provider registered (this stack is "
                    f"{self.provider.value}; `opsflow instance register` brings a host in)"
                )

    def app(self, name: str) -> AppSpec | None:
        return next((app for app in self.apps if app.name == name), None)

    def rds_entry(self, name: str) -> RdsSpec | None:
        return next((entry for entry in self.rds if entry.name == name), None)

    def layer(self, name: str) -> LayerSpec | None:
        return next((layer for layer in self.layers if layer.name == name), None)

    def manager_for(self, layer_name: str) -> ConfigurationManager:
        """The configuration manager that runs a layer's recipes."""
        layer = self.layer(layer_name)
        if layer is not None and layer.configuration_manager is not None:
            return layer.configuration_manager
        return self.configuration_manager

    def declared(self) -> list[DeclaredInstance]:
        """Every instance the file declares: those nested under their layer, then the
        stack-level ones (in several layers)."""
        found = [
            DeclaredInstance(f"layers[{li}].instances[{ii}]", instance, [layer.name])
            for li, layer in enumerate(self.layers)
            for ii, instance in enumerate(layer.instances)
        ]
        found += [
            DeclaredInstance(f"instances[{index}]", instance, list(instance.layers))
            for index, instance in enumerate(self.instances)
        ]
        return found

    def declared_instances(self) -> dict[str, list[str]]:
        """hostname -> its layers (in run order), for every instance the file declares."""
        return {d.spec.hostname: d.layers for d in self.declared()}

    def instance_spec(self, hostname: str) -> InstanceSpec | None:
        """What the file says of one instance (nested or stack-level), if it declares it."""
        return next((d.spec for d in self.declared() if d.spec.hostname == hostname), None)


def recipe_references(spec: StackSpec) -> list[tuple[str, str]]:
    """Every recipe the spec names, with the field path that names it."""
    refs: list[tuple[str, str]] = []
    for li, layer in enumerate(spec.layers):
        for event in LifecycleEvent:
            for ri, recipe in enumerate(layer.recipes.for_event(event)):
                refs.append((f"layers[{li}].recipes.{event.value}[{ri}]", recipe))
    return refs


def missing_recipes(
    spec: StackSpec, available: Mapping[ConfigurationManager, set[str]]
) -> list[str]:
    """Problems for recipes the spec names that the cookbooks do not provide (each layer's
    recipes are looked up for the layer's configuration manager)."""
    problems: list[str] = []
    for li, layer in enumerate(spec.layers):
        manager = spec.manager_for(layer.name)
        for event in LifecycleEvent:
            for ri, recipe in enumerate(layer.recipes.for_event(event)):
                if recipe not in available.get(manager, set()):
                    problems.append(
                        f"layers[{li}].recipes.{event.value}[{ri}]: recipe {recipe!r} does not "
                        f"exist in the cookbooks (as a {manager.value} recipe)"
                    )
    return problems

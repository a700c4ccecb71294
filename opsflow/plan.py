"""What `stack apply` changes: a pure diff of the running stack against a stack file."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, Field

from opsflow.messages import InstanceView
from opsflow.secrets import conceal
from opsflow.spec import InstanceSpec, LayerSpec, Provider, Scaling, StackSpec
from opsflow.status import InstanceStatus

# The statuses in which an instance's layers may change (it runs no recipe, and its next
# start sets it up as a member of the new ones).
RELAYERABLE = frozenset({InstanceStatus.STOPPED})


class StackPlan(BaseModel):
    changes: list[str] = Field(default_factory=list, description="human-readable, in order")
    create_instances: dict[str, list[str]] = Field(
        default_factory=dict, description="hostname -> its layers"
    )
    relayer_instances: dict[str, list[str]] = Field(
        default_factory=dict, description="stopped instances whose layers change: their new ones"
    )
    delete_instances: list[str] = Field(default_factory=list)
    restart_instances: list[str] = Field(
        default_factory=list, description="declared, existing, stopped or failed: start again"
    )
    stay_stopped: list[str] = Field(
        default_factory=list, description="created but not started: time or load based"
    )
    converge_users: bool = Field(
        default=False,
        description="the stack's users changed: a configure round converges them on every "
        "online instance now (OpsWorks synced users at once too)",
    )

    @property
    def empty(self) -> bool:
        return not self.changes


def conflicts(
    current: StackSpec | None, instances: Mapping[str, InstanceView], desired: StackSpec
) -> list[str]:
    """Reasons the file cannot be applied to the running stack; empty means it can."""
    problems: list[str] = []
    if current is None:
        return problems
    if current.name != desired.name:
        problems.append(f"name: the file names stack {desired.name!r}, not {current.name!r}")
    if current.provider != desired.provider:
        problems.append(
            f"provider: a stack's provider cannot change ({current.provider.value} -> "
            f"{desired.provider.value}); create a new stack instead"
        )
    declared = desired.declared_instances()
    for view in instances.values():
        if view.from_file:
            continue
        for layer in view.layers:
            if desired.layer(layer) is None:
                problems.append(
                    f"layers: layer {layer!r} is removed but still has instance "
                    f"{view.hostname!r} (added with `instance add`); delete it first"
                )
        if view.hostname in declared and view.layers != declared[view.hostname]:
            problems.append(
                f"layers: instance {view.hostname!r} exists in layer(s) "
                f"{', '.join(view.layers)}; the file puts it in "
                f"{', '.join(declared[view.hostname])}"
            )
    for hostname, layers in declared.items():
        existing = instances.get(hostname)
        if (
            existing is not None
            and existing.from_file
            and existing.layers != layers
            and existing.status not in RELAYERABLE
        ):
            # As on OpsWorks: an instance's layers change only while it is stopped.
            problems.append(
                f"layers: instance {hostname!r} is {existing.status.value}: stop {hostname} "
                f"first to change its layers ({', '.join(existing.layers)} -> "
                f"{', '.join(layers)})"
            )
    return problems


def plan_stack(
    current: StackSpec | None, instances: Mapping[str, InstanceView], desired: StackSpec
) -> StackPlan:
    """The changes that applying `desired` makes; assumes `conflicts` found none."""
    plan = StackPlan()
    if current is None:
        plan.changes.append(f"create stack {desired.name} (provider {desired.provider.value})")
        current_layers: dict[str, LayerSpec] = {}
    else:
        current_layers = {layer.name: layer for layer in current.layers}
        for field in ("configuration_manager", "cookbooks", "custom_json"):
            if getattr(current, field) != getattr(desired, field):
                plan.changes.append(f"change stack {field}")
        if current.chef != desired.chef:
            plan.changes.append(
                f"change stack chef version {current.chef.version} -> {desired.chef.version}"
            )
        plan.changes += _app_changes(current, desired)
        user_changes = _user_changes(current, desired)
        plan.changes += user_changes
        plan.converge_users = bool(user_changes)
    desired_layers = {layer.name: layer for layer in desired.layers}
    for name, wanted in desired_layers.items():
        old = current_layers.get(name)
        if old is None:
            plan.changes.append(f"add layer {name}")
            continue
        fields = [
            *("auto_healing", "health_check", "healing", "load_based_scaling", "ec2"),
            *("auto_assign_elastic_ip", "volumes", "load_balancer", "on_setup_failure"),
        ]
        for field in ("recipes", "custom_json", *fields):
            if getattr(old, field) != getattr(wanted, field):
                plan.changes.append(f"change layer {name} {field}")
    for name in current_layers:
        if name not in desired_layers:
            plan.changes.append(f"remove layer {name}")
    declared = desired.declared_instances()
    scaled = {d.spec.hostname: d.spec.scaling for d in desired.declared()}
    scaled = {hostname: kind for hostname, kind in scaled.items() if kind != Scaling.ALWAYS}
    hosts = {d.spec.hostname: d.spec.ssh.where() for d in desired.declared() if d.spec.ssh}
    for hostname, layers in declared.items():
        layer_name = ", ".join(layers)
        in_layer = f"layer {layer_name}" if len(layers) == 1 else f"layers {layer_name}"
        view = instances.get(hostname)
        if view is not None and view.layers != layers and view.status in RELAYERABLE:
            plan.relayer_instances[hostname] = list(layers)
            plan.changes.append(
                f"change instance {hostname} layers {', '.join(view.layers)} -> {layer_name}"
            )
        if view is None:
            plan.create_instances[hostname] = list(layers)
            if hostname in scaled:
                plan.stay_stopped.append(hostname)
                by = "its schedule" if scaled[hostname] == Scaling.TIME else "load-based scaling"
                plan.changes.append(
                    f"add {scaled[hostname].value}-based instance {hostname} to "
                    f"{in_layer} (started and stopped by {by})"
                )
            elif hostname in hosts:
                plan.changes.append(
                    f"register host {hostname} ({hosts[hostname]}) in {in_layer} and set it up"
                )
            else:
                plan.changes.append(f"add instance {hostname} to {in_layer} and start it")
        elif hostname not in scaled and view.status in (
            InstanceStatus.STOPPED,
            InstanceStatus.START_FAILED,
            InstanceStatus.SETUP_FAILED,
            InstanceStatus.REQUESTED,
        ):
            plan.restart_instances.append(hostname)
            plan.changes.append(f"start instance {hostname} (now {view.status.value})")
    before = _instance_specs(current) if current is not None else {}
    for hostname, wanted_spec in _instance_specs(desired).items():
        old_spec = before.get(hostname)
        if old_spec is None or hostname in plan.create_instances:
            continue
        if old_spec.scaling != wanted_spec.scaling:
            plan.changes.append(
                f"change instance {hostname} scaling {old_spec.scaling.value} -> "
                f"{wanted_spec.scaling.value}"
            )
        elif old_spec.schedule != wanted_spec.schedule:
            plan.changes.append(f"change instance {hostname} schedule")
        if old_spec.ec2 != wanted_spec.ec2:
            plan.changes.append(f"change instance {hostname} ec2 (used from its next start)")
        if old_spec.ssh != wanted_spec.ssh:
            plan.changes.append(
                f"change instance {hostname} ssh (the host is checked now, used from its next "
                "start)"
            )
    for hostname, view in sorted(instances.items()):
        if view.from_file and hostname not in declared:
            plan.delete_instances.append(hostname)
            if view.provider == Provider.REGISTERED:
                plan.changes.append(
                    f"deregister host {hostname} (shutdown recipes; the machine keeps running)"
                )
            else:
                plan.changes.append(f"stop and delete instance {hostname}")
    return plan


def _app_changes(current: StackSpec, desired: StackSpec) -> list[str]:
    """Apps added, removed or changed. Secure values are compared masked: each load seals
    them anew (a fresh ciphertext), so a changed secret cannot be told from an unchanged
    one here; it reaches the instances with the app's next deploy either way."""
    before = {app.name: conceal(app.model_dump(mode="json")) for app in current.apps}
    after = {app.name: conceal(app.model_dump(mode="json")) for app in desired.apps}
    changes = [f"add app {name}" for name in after if name not in before]
    changes += [f"remove app {name}" for name in before if name not in after]
    for name, wanted in after.items():
        old = before.get(name)
        if old is not None and old != wanted:
            fields = sorted(
                key for key in wanted.keys() | old.keys() if old.get(key) != wanted.get(key)
            )
            changes.append(f"change app {name} {', '.join(fields)} (used from its next deploy)")
    return changes


def _user_changes(current: StackSpec, desired: StackSpec) -> list[str]:
    before = {user.name: user for user in current.users}
    after = {user.name: user for user in desired.users}
    changes = [f"add user {name}" for name in after if name not in before]
    changes += [
        f"remove user {name} (from the instances where opsflow created it)"
        for name in before
        if name not in after
    ]
    for name, wanted in after.items():
        old = before.get(name)
        if old is not None and old != wanted:
            fields = [
                f
                for f in ("ssh_public_key", "sudo", "layers", "uid")
                if getattr(old, f) != getattr(wanted, f)
            ]
            changes.append(f"change user {name} {', '.join(fields)}")
    return changes


def _instance_specs(spec: StackSpec) -> dict[str, InstanceSpec]:
    return {d.spec.hostname: d.spec for d in spec.declared()}

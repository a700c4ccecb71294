"""What starting an instance asks of it (pure): launch (an EC2 machine, or a registered
host as pinned), setup, then the current release of each app on its layer."""

from __future__ import annotations

from collections.abc import Sequence

from opsflow.machines import ec2_machine
from opsflow.messages import AppRelease, InstanceCommand, InstanceCommandKind
from opsflow.spec import LifecycleEvent, RegisteredHostSpec, SetupFailure, StackSpec

# rollback, start, stop and restart run the deploy recipes (OPSFLOW_EVENT tells which),
# on the release they leave current.
APP_EVENTS = frozenset({"rollback", "start", "stop", "restart"})


def start_command(
    command_id: str,
    spec: StackSpec,
    layers: Sequence[str],
    hostname: str,
    releases: Sequence[AppRelease],
    registered: RegisteredHostSpec | None,
) -> InstanceCommand:
    """Start an instance of `layers`: the command carries them, so an instance whose
    layers changed while it was stopped starts as a member of the new ones."""
    command = InstanceCommand(id=command_id, kind=InstanceCommandKind.START)
    command.deploy_after_setup = list(releases)
    command.registered = registered
    command.layers = list(layers)
    if registered is None:  # a registered host in an ec2 stack is no EC2 machine
        command.machine = ec2_machine(spec, layers, hostname, token=command_id)
    command.terminate_on_setup_failure = any(
        (settings := spec.layer(name)) is not None
        and settings.on_setup_failure == SetupFailure.TERMINATE
        for name in layers
    )
    return command


def recipes_for(spec: StackSpec, layers: Sequence[str], event: str) -> list[str]:
    """The recipes a run of `event` executes on an instance of `layers`: each layer's, in
    the order the layers are listed. A recipe two layers both name runs once, where it
    first comes (OpsWorks ran the layers' lists one after the other; running e.g. a shared
    `base::setup` twice in one run only repeats its work, and some recipes are not safe to
    run twice)."""
    recipes_of = "deploy" if event in APP_EVENTS else event
    if recipes_of not in {e.value for e in LifecycleEvent}:
        return []
    lifecycle = LifecycleEvent(recipes_of)
    recipes: list[str] = []
    for layer_name in layers:
        layer = spec.layer(layer_name)
        if layer is not None:
            recipes.extend(r for r in layer.recipes.for_event(lifecycle) if r not in recipes)
    return recipes

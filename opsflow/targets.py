"""Which instances a command runs on, and whether its recipes exist there (pure). Errors
are opsflow's own (NotFound, InvalidInput); the stack workflow turns them into refusals."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from opsflow import names
from opsflow.app_releases import app_of
from opsflow.errors import InvalidInput, NotFound
from opsflow.messages import InstanceView, ResolvedCookbooks, RunCommandInput
from opsflow.spec import ConfigurationManager, StackSpec
from opsflow.status import InstanceStatus, why_not_run_recipes


def instance_of(
    spec: StackSpec, instances: Mapping[str, InstanceView], hostname: str
) -> InstanceView:
    view = instances.get(hostname)
    if view is None:
        raise NotFound(f"stack {spec.name} has no instance {hostname!r}")
    return view


def command_targets(
    spec: StackSpec, instances: Mapping[str, InstanceView], request: RunCommandInput
) -> list[str]:
    """The one instance asked for, or every online instance (of the layer asked for)."""
    if request.layer is not None and spec.layer(request.layer) is None:
        raise NotFound(f"stack {spec.name} has no layer {request.layer!r}")
    if request.instance is not None:
        view = instance_of(spec, instances, request.instance)
        if request.layer is not None and request.layer not in view.layers:
            raise InvalidInput(f"instance {request.instance} is not in layer {request.layer}")
        why = why_not_run_recipes(view.status)
        if why:
            raise InvalidInput(f"cannot run {request.command} on {request.instance}: {why}")
        return [request.instance]
    targets = sorted(
        h
        for h, v in instances.items()
        if v.status == InstanceStatus.ONLINE
        and (request.layer is None or request.layer in v.layers)
    )
    if not targets:
        where = f"layer {request.layer}" if request.layer else f"stack {spec.name}"
        raise InvalidInput(f"no online instance in {where} to run {request.command} on")
    return targets


def app_targets(spec: StackSpec, instances: Mapping[str, InstanceView], app: str) -> list[str]:
    """Every online instance in one of the app's layers."""
    layers = app_of(spec, app).layers
    targets = sorted(
        h
        for h, v in instances.items()
        if v.status == InstanceStatus.ONLINE and set(v.layers) & set(layers)
    )
    if not targets:
        raise InvalidInput(f"no online instance in layer(s) {', '.join(layers)} of app {app}")
    return targets


def inventory(cookbooks: ResolvedCookbooks | None) -> dict[ConfigurationManager, set[str]]:
    """The recipes the fetched cookbooks hold, per configuration manager."""
    if cookbooks is None:
        return {}
    return {manager: set(found) for manager, found in cookbooks.recipes.items()}


def manager_of(spec: StackSpec, view: InstanceView) -> ConfigurationManager:
    """The configuration manager of the instance's (first) layer."""
    return spec.manager_for(view.layers[0]) if view.layers else spec.configuration_manager


def check_recipes_to_execute(
    spec: StackSpec,
    instances: Mapping[str, InstanceView],
    cookbooks: ResolvedCookbooks | None,
    recipes: Sequence[str],
    targets: Sequence[str],
) -> None:
    """execute_recipes: named recipes that each target's manager finds in the cookbooks."""
    if not recipes:
        raise InvalidInput("execute_recipes needs --recipes cookbook::recipe[,...]")
    names.check_recipes(recipes, "--recipes")
    found = inventory(cookbooks)
    for hostname in targets:
        manager = manager_of(spec, instances[hostname])
        missing = [r for r in recipes if r not in found.get(manager, set())]
        if missing:
            raise InvalidInput(
                f"--recipes: {', '.join(missing)} not in the stack's cookbooks "
                f"(as {manager.value} recipes for {hostname})"
            )

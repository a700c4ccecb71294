"""The stack configuration every recipe sees, shaped like OpsWorks' Chef 11 attributes.

custom_json is deep-merged on top in increasing precedence: stack, then the instance's
layers, then the command's own (deployment) custom_json.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opsflow.messages import InstanceView
from opsflow.spec import StackSpec


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """A new dict: `override` on top of `base`, merging nested mappings key by key."""
    merged: dict[str, Any] = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = value
    return merged


def _instance_entry(view: InstanceView) -> dict[str, Any]:
    return {
        "hostname": view.hostname,
        "status": view.status.value,
        "provider": view.provider.value,  # registered hosts are marked in a local stack
        "private_ip": view.private_ip,
        "layers": list(view.layers),
    }


def stack_configuration(
    spec: StackSpec,
    instances: Iterable[InstanceView],
    this: InstanceView,
    event: str,
    command_json: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The attributes document for one recipe run on `this` instance."""
    views = {v.hostname: v for v in instances}
    views[this.hostname] = this  # the instance's own view is always the freshest
    layers: dict[str, Any] = {}
    for layer in spec.layers:
        members = sorted(
            (v for v in views.values() if layer.name in v.layers), key=lambda v: v.hostname
        )
        layers[layer.name] = {
            "name": layer.name,
            "instances": {v.hostname: _instance_entry(v) for v in members},
        }
    document: dict[str, Any] = {
        "opsflow": {
            "stack": {
                "name": spec.name,
                "provider": spec.provider.value,
                "configuration_manager": spec.configuration_manager.value,
            },
            "instance": {**_instance_entry(this), "root": this.root},
            "layers": layers,
            "activity": event,
        },
        "deploy": {},
    }
    document = deep_merge(document, spec.custom_json)
    for layer_name in this.layers:
        own_layer = spec.layer(layer_name)
        if own_layer is not None:
            document = deep_merge(document, own_layer.custom_json)
    if command_json:
        document = deep_merge(document, command_json)
    return document


def chef_node(configuration: dict[str, Any]) -> dict[str, Any]:
    """The node JSON: the attributes, plus `opsworks` as an alias of `opsflow` (with any
    `opsworks` keys of the custom JSON on top), for cookbooks ported from OpsWorks."""
    alias = deep_merge(configuration.get("opsflow") or {}, configuration.get("opsworks") or {})
    return {**configuration, "opsworks": alias}

"""OpsWorks' GUIDs for a stack, its layers, instances and apps, derived from their names.

OpsWorks gave each a random GUID (`opsworks.instance.id`, `layer_id`, `app_id`, ...);
opsflow names things by name, so it derives a stable one: uuid5 of a fixed namespace and
`stack`, `stack/layer`, `stack/hostname` or `stack/app`. The same stack file gives the same
ids on every run, every worker and in golden tests; an instance healed or replaced keeps
its id, as its hostname is its identity. Layers, instances and apps get different kinds
in the name, so a layer and an app of the same name never share an id.
"""

from __future__ import annotations

import uuid

NAMESPACE = uuid.UUID("6f0c1d3e-8a55-5a57-9d5e-0b5f1a0f5e15")
"""Fixed for ever: changing it changes every id recipes have seen."""


def _id(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "/".join(parts)))


def stack_id(stack: str) -> str:
    return _id(stack)


def layer_id(stack: str, layer: str) -> str:
    return _id(stack, "layer", layer)


def instance_id(stack: str, hostname: str) -> str:
    return _id(stack, "instance", hostname)


def app_id(stack: str, app: str) -> str:
    return _id(stack, "app", app)

"""Configuration snapshots: the stack-wide part of every recipe run's context, published
once per configuration generation, and the run's own context derived from it.

The stack workflow answers `run_context` through the same two functions, so a run that
reads a snapshot gets what the query would have answered for the same state.
"""

from __future__ import annotations

from collections.abc import Iterable

from opsflow.attributes import stack_configuration
from opsflow.messages import ConfigurationSnapshot, InstanceView, ResolvedCookbooks, RunContext
from opsflow.spec import StackSpec
from opsflow.starts import recipes_for
from opsflow.targets import manager_of
from opsflow.users import instance_users

# Where a stack's newest snapshot is named in the artifact store (its digest).
POINTER = "snapshots/{stack}"


def _member(view: InstanceView) -> InstanceView:
    """Only what the attributes document shows of an instance (no SSH, no root)."""
    return InstanceView(
        hostname=view.hostname,
        layers=list(view.layers),
        status=view.status,
        provider=view.provider,
        private_ip=view.private_ip,
    )


def configuration_snapshot(
    spec: StackSpec,
    instances: Iterable[InstanceView],
    cookbooks: ResolvedCookbooks | None,
    generation: int,
) -> ConfigurationSnapshot:
    return ConfigurationSnapshot(
        stack=spec.name,
        generation=generation,
        spec=spec,
        instances=[_member(v) for v in sorted(instances, key=lambda v: v.hostname)],
        cookbooks=cookbooks,
    )


def run_context(snapshot: ConfigurationSnapshot, this: InstanceView, event: str) -> RunContext:
    """One run's context: the snapshot's, seen from `this` instance (its own view is the
    freshest) for `event`."""
    spec = snapshot.spec
    cookbooks = snapshot.cookbooks
    return RunContext(
        configuration=stack_configuration(spec, snapshot.instances, this, event),
        recipes=recipes_for(spec, this.layers, event),
        configuration_manager=manager_of(spec, this),
        cookbooks_dir=cookbooks.directory if cookbooks else None,
        cookbooks_digest=cookbooks.digest if cookbooks else None,
        cookbooks_blob=cookbooks.blob if cookbooks else None,
        users=instance_users(spec.users, this.layers) if spec.users else None,
    )


def encode(snapshot: ConfigurationSnapshot) -> bytes:
    """The bytes stored (and so the digest): the same snapshot gives the same bytes."""
    return snapshot.model_dump_json().encode()


def decode(data: bytes) -> ConfigurationSnapshot:
    return ConfigurationSnapshot.model_validate_json(data)

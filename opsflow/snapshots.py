"""Configuration snapshots: the stack-wide part of every recipe run's context, published
once per configuration generation, and the run's own context derived from it.

The stack workflow answers `run_context` through the same two functions, so a run that
reads a snapshot gets what the query would have answered for the same state.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime

from opsflow.attributes import stack_configuration
from opsflow.databags import data_bags
from opsflow.messages import (
    AppAction,
    ConfigurationSnapshot,
    InstanceView,
    MachineFacts,
    RdsInfo,
    RecipeRunInput,
    ResolvedCookbooks,
    RunContext,
)
from opsflow.spec import ConfigurationManager, StackSpec
from opsflow.starts import recipes_for
from opsflow.targets import manager_of
from opsflow.users import instance_users

# Where a stack's newest snapshot is named in the artifact store (its digest).
POINTER = "snapshots/{stack}"


def _member(view: InstanceView) -> InstanceView:
    """Only what the attributes document shows of an instance (no SSH, no root): its
    name, layers, status, provider, private address, EC2 id, scaling and machine facts."""
    facts = {name: getattr(view, name) for name in MachineFacts.model_fields}
    return InstanceView(
        hostname=view.hostname,
        layers=list(view.layers),
        status=view.status,
        provider=view.provider,
        private_ip=view.private_ip,
        ec2_instance_id=view.ec2_instance_id,
        scaling=view.scaling,
        **facts,
    )


def configuration_snapshot(
    spec: StackSpec,
    instances: Iterable[InstanceView],
    cookbooks: ResolvedCookbooks | None,
    generation: int,
    rds: Mapping[str, RdsInfo] | None = None,
) -> ConfigurationSnapshot:
    return ConfigurationSnapshot(
        stack=spec.name,
        generation=generation,
        spec=spec,
        instances=[_member(v) for v in sorted(instances, key=lambda v: v.hostname)],
        cookbooks=cookbooks,
        rds=dict(rds or {}),
    )


def run_context(
    snapshot: ConfigurationSnapshot,
    this: InstanceView,
    event: str,
    *,
    run: RecipeRunInput | None = None,
    sent_at: datetime | None = None,
) -> RunContext:
    """One run's context: the snapshot's, seen from `this` instance (its own view is the
    freshest) for `event`; with `run`, its command (`opsworks.deployment`, the app it
    deploys, its own custom JSON merged last); `sent_at`: when the command was sent
    (default: the instance's last change).

    Chef 12 stacks (`chef: {version: 12}`) get the data bags when the instance's manager
    is chef; shell and puppet recipes read the same facts from the attributes document
    (`opsworks`), and a data bag means nothing to them."""
    spec = snapshot.spec
    cookbooks = snapshot.cookbooks
    manager = manager_of(spec, this)
    command_id = run.command_id if run is not None else None
    bags = None
    if spec.chef.data_bags and manager == ConfigurationManager.CHEF:
        bags = data_bags(
            spec,
            snapshot.instances,
            this,
            event,
            command_id=command_id,
            sent_at=sent_at,
            rds=snapshot.rds,
            deploying=_deploying(run),
        )
    configuration = stack_configuration(
        spec,
        snapshot.instances,
        this,
        event,
        run.custom_json if run is not None else None,
        command_id=command_id,
        sent_at=sent_at,
        rds=snapshot.rds,
    )
    return RunContext(
        configuration=configuration,
        recipes=recipes_for(spec, this.layers, event),
        configuration_manager=manager,
        cookbooks_dir=cookbooks.directory if cookbooks else None,
        cookbooks_digest=cookbooks.digest if cookbooks else None,
        cookbooks_blob=cookbooks.blob if cookbooks else None,
        users=instance_users(spec.users, this.layers) if spec.users else None,
        data_bags=bags,
    )


def _deploying(run: RecipeRunInput | None) -> list[str]:
    """The app the run deploys, if it deploys one."""
    if run is None or run.app is None or run.app.action != AppAction.DEPLOY:
        return []
    return [run.app.app]


def encode(snapshot: ConfigurationSnapshot) -> bytes:
    """The bytes stored (and so the digest): the same snapshot gives the same bytes.

    Instances leave out their unknown (None) facts: a local machine knows few of them,
    and a snapshot of a thousand instances is read by every worker that runs recipes."""
    document = snapshot.model_dump(mode="json", exclude={"instances"})
    document["instances"] = [
        view.model_dump(mode="json", exclude_none=True) for view in snapshot.instances
    ]
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def decode(data: bytes) -> ConfigurationSnapshot:
    return ConfigurationSnapshot.model_validate_json(data)

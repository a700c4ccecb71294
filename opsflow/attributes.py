"""The stack configuration every recipe sees, shaped like OpsWorks' Chef 11 attributes.

Two views of the stack side by side: `opsflow`, opsflow's own (every instance with its
status, the stack's provider, the instance's root), and `opsworks` with `deploy`: the keys
OpsWorks Stacks handed Chef 11.10 recipes (`node[:opsworks]`, `node[:deploy][APP]`; the
guide's "Stack Configuration and Deployment Attributes"), so cookbooks written for it run
unchanged. As on OpsWorks, `opsworks.layers.L.instances` lists online instances only and
`deploy` holds every app of the instance's layers. Ids are opsflow.opsworks_ids' GUIDs;
facts opsflow cannot know (ELB backends, an instance's public address on a non-EC2
machine) are null, as OpsWorks had them on a machine it did not launch.

Secure values (app environment, SSL key, RDS password) stay sealed here, as dumped
SecureValues: the recipe runner reveals them on the worker when it writes the files (and
redacts them from logs); the CLI conceals them.

custom_json is deep-merged on top in increasing precedence: stack, then the instance's
layers (in the instance's layer order), then the command's own (deployment) custom_json.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from opsflow import opsworks_ids
from opsflow.messages import InstanceView, RdsInfo
from opsflow.secrets import SecureValue
from opsflow.spec import AppSpec, CookbookSource, Provider, StackSpec
from opsflow.status import InstanceStatus

AGENT_VERSION = "opsflow"
# What OpsWorks' agent said it could do (`opsworks.valid_client_activities`); deploy and
# undeploy are commands here as they were there.
VALID_CLIENT_ACTIVITIES = (
    "reboot",
    "stop",
    "deploy",
    "undeploy",
    "setup",
    "configure",
    "shutdown",
    "update_custom_cookbooks",
    "execute_recipes",
)
MEMCACHED_PORT = 11211


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


# ---- pieces shared with the Chef 12 data bags (opsflow.databags) --------------------------


def iso_time(moment: datetime | None) -> str | None:
    """OpsWorks' time format, `2013-02-26T20:41:10+00:00` (a naive time is taken as UTC)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def sealed(value: str | SecureValue | None) -> str | dict[str, Any] | None:
    """A value as it goes into a document: a secure value as its dumped, sealed form."""
    if isinstance(value, SecureValue):
        return value.model_dump(mode="json")
    return value


def app_environment(app: AppSpec) -> dict[str, Any]:
    return {name: sealed(value) for name, value in app.environment.items()}


def scm_type(source: CookbookSource | None) -> str | None:
    """OpsWorks' scm_type / app_source type: git, archive; a directory packed by the CLI
    is `other` (OpsWorks' type for sources it did not fetch itself); no source: None."""
    if source is None:
        return None
    return {"git": "git", "archive": "archive"}.get(source.kind, "other")


def source_url(source: CookbookSource | None) -> str | None:
    """The repository or archive URL; a directory's path is on the CLI's machine: None."""
    if source is None:
        return None
    return source.git or source.archive


def sent_at_of(this: InstanceView, sent_at: datetime | None) -> datetime | None:
    """When the command was sent: given by the caller, else the instance's last change
    (deterministic for a run derived from a snapshot; never the clock)."""
    return sent_at if sent_at is not None else this.updated_at


def database_adapter(engine: str | None) -> str | None:
    """OpsWorks' `database.adapter` from the RDS engine."""
    if engine is None:
        return None
    if engine.startswith(("mysql", "mariadb", "aurora-mysql")) or engine == "aurora":
        return "mysql"
    if engine.startswith(("postgres", "aurora-postgresql")):
        return "postgresql"
    return engine


def online(views: Iterable[InstanceView]) -> list[InstanceView]:
    return [v for v in views if v.status == InstanceStatus.ONLINE]


def apps_on(spec: StackSpec, layers: Iterable[str]) -> list[AppSpec]:
    """The stack's apps deployed on an instance of `layers`, in the stack file's order."""
    own = set(layers)
    return [app for app in spec.apps if own.intersection(app.layers)]


def deploy_to(app: AppSpec, root: str | None) -> str:
    """Where the app goes on an instance (as activities/recipes/releases.py has it)."""
    return app.deploy_to or posixpath.join(root or "/", "srv/www", app.name)


def target_group_name(arn: str) -> str:
    """`arn:...:targetgroup/NAME/ID` -> NAME (what stands for OpsWorks' ELB name)."""
    parts = arn.split(":", 5)[-1].split("/")
    return parts[1] if len(parts) >= 2 else arn


# ---- the opsflow view (unchanged: recipes written for opsflow read it) ---------------------


def _instance_entry(view: InstanceView) -> dict[str, Any]:
    return {
        "hostname": view.hostname,
        "status": view.status.value,
        "provider": view.provider.value,  # registered hosts are marked in a local stack
        "private_ip": view.private_ip,
        "layers": list(view.layers),
    }


def _opsflow_view(
    spec: StackSpec, views: Mapping[str, InstanceView], this: InstanceView, event: str
) -> dict[str, Any]:
    layers: dict[str, Any] = {}
    for layer in spec.layers:
        members = sorted(
            (v for v in views.values() if layer.name in v.layers), key=lambda v: v.hostname
        )
        layers[layer.name] = {
            "name": layer.name,
            "instances": {v.hostname: _instance_entry(v) for v in members},
        }
    return {
        "stack": {
            "name": spec.name,
            "provider": spec.provider.value,
            "configuration_manager": spec.configuration_manager.value,
        },
        "instance": {**_instance_entry(this), "root": this.root},
        "layers": layers,
        "activity": event,
    }


# ---- the OpsWorks Chef 11 view -------------------------------------------------------------


def _machine(view: InstanceView) -> dict[str, Any]:
    """The keys OpsWorks gave every instance, in `opsworks.instance` and in the layers."""
    return {
        "aws_instance_id": view.ec2_instance_id,
        "availability_zone": view.availability_zone,
        "backends": None,  # OpsWorks' ELB backend count by instance type: unknown here
        "instance_type": view.instance_type,
        "ip": view.elastic_ip or view.public_ip,
        "private_dns_name": view.private_dns_name,
        "private_ip": view.private_ip,
        "public_dns_name": view.public_dns_name,
        "region": view.region,
    }


def _layer_member(view: InstanceView) -> dict[str, Any]:
    return {
        **_machine(view),
        "booted_at": iso_time(view.booted_at),
        "created_at": iso_time(view.created_at),
        "elastic_ip": view.elastic_ip,
        "status": view.status.value,
    }


def infrastructure_class(view: InstanceView) -> str:
    """OpsWorks' `ec2` or `on-premises` (its registered hosts): AWS's own cookbooks branch
    on it (`infrastructure_class?('ec2')` mounts EBS volumes, for one)."""
    return "ec2" if view.provider == Provider.EC2 else "on-premises"


def _this_instance(spec: StackSpec, this: InstanceView) -> dict[str, Any]:
    return {
        **_machine(this),
        "architecture": this.architecture,
        "hostname": this.hostname,
        "id": opsworks_ids.instance_id(spec.name, this.hostname),
        "infrastructure_class": infrastructure_class(this),
        "layers": list(this.layers),
    }


def _stack(spec: StackSpec, rds: Mapping[str, RdsInfo]) -> dict[str, Any]:
    return {
        "id": opsworks_ids.stack_id(spec.name),
        "name": spec.name,
        "vpc_id": None,
        "elb-load-balancers": [
            {
                "name": target_group_name(layer.load_balancer),
                "dns_name": None,
                "layer_id": opsworks_ids.layer_id(spec.name, layer.name),
            }
            for layer in spec.layers
            if layer.load_balancer is not None
        ],
        "rds_instances": [
            {
                "address": info.address if info else None,
                "port": info.port if info else None,
                "db_instance_identifier": entry.identifier,
                "db_user": entry.username,
                "db_password": sealed(entry.password),
                "engine": info.engine if info else None,
                "region": spec.region,
                "arn": info.arn if info else None,
            }
            for entry in spec.rds
            for info in [rds.get(entry.name)]
        ],
    }


def _database(spec: StackSpec, rds: Mapping[str, RdsInfo], app: AppSpec) -> dict[str, Any]:
    """`deploy.APP.database`: {} without a data source, as OpsWorks had it."""
    entry = spec.rds_entry(app.data_source) if app.data_source else None
    if entry is None:
        return {}
    info = rds.get(entry.name)
    return {
        "adapter": database_adapter(info.engine if info else None),
        "host": info.address if info else None,
        "port": info.port if info else None,
        "username": entry.username,
        "password": sealed(entry.password),
        "database": entry.database_name or (info.database_name if info else None),
    }


def deploy_entry(
    spec: StackSpec, rds: Mapping[str, RdsInfo], app: AppSpec, root: str | None
) -> dict[str, Any]:
    """`deploy.APP` with the keys OpsWorks gave it; the runner adds the run's own (the
    release, release_path, current_path, action) for the app it deploys."""
    source = app.source
    environment = app_environment(app)
    ssl = app.ssl
    return {
        "application": app.name,
        "application_type": app.type.value,
        "auto_bundle_on_deploy": True,
        "database": _database(spec, rds, app),
        "deploy_to": deploy_to(app, root),
        "deploying_user": None,
        "document_root": app.document_root,
        "domains": list(app.domains) or [app.name],
        "environment": environment,
        "environment_variables": dict(environment),
        "memcached": {"host": None, "port": MEMCACHED_PORT},
        "migrate": False,
        "mounted_at": None,
        "rails_env": None,
        "restart_command": None,
        "scm": {
            "scm_type": scm_type(source),
            "repository": source_url(source),
            "revision": source.revision if source else None,
            "ssh_key": None,
            "user": None,
            "password": None,
        },
        "sleep_before_restart": 0,
        "ssl_support": ssl is not None,
        "ssl_certificate": ssl.certificate if ssl else None,
        "ssl_certificate_key": sealed(ssl.key) if ssl else None,
        "ssl_certificate_ca": ssl.chain if ssl else None,
        "stack": {"needs_reload": False},
        "symlink_before_migrate": {},
        "symlinks": {},
    }


def _opsworks_view(
    spec: StackSpec,
    views: Mapping[str, InstanceView],
    this: InstanceView,
    event: str,
    command_id: str | None,
    sent_at: datetime | None,
    rds: Mapping[str, RdsInfo],
) -> dict[str, Any]:
    up = online(views.values())
    moment = sent_at_of(this, sent_at)
    return {
        "activity": event,
        "agent_version": AGENT_VERSION,
        "applications": [
            {"name": app.name, "slug_name": app.name, "application_type": app.type.value}
            for app in spec.apps
        ],
        "deployment": command_id,
        "instance": _this_instance(spec, this),
        "layers": {
            layer.name: {
                "id": opsworks_ids.layer_id(spec.name, layer.name),
                "name": layer.name,
                "instances": {
                    v.hostname: _layer_member(v)
                    for v in sorted(up, key=lambda v: v.hostname)
                    if layer.name in v.layers
                },
            }
            for layer in spec.layers
        },
        "sent_at": int(moment.timestamp()) if moment is not None else None,
        "stack": _stack(spec, rds),
        "valid_client_activities": list(VALID_CLIENT_ACTIVITIES),
    }


def stack_configuration(
    spec: StackSpec,
    instances: Iterable[InstanceView],
    this: InstanceView,
    event: str,
    command_json: Mapping[str, Any] | None = None,
    *,
    command_id: str | None = None,
    sent_at: datetime | None = None,
    rds: Mapping[str, RdsInfo] | None = None,
) -> dict[str, Any]:
    """The attributes document for one recipe run on `this` instance: `opsflow`,
    `opsworks` and `deploy`, custom JSON merged stack < layers < `command_json`.

    `command_id` is `opsworks.deployment`; `sent_at` (default: this instance's last
    change) `opsworks.sent_at`; `rds` (rds entry name -> what AWS said at the last apply)
    fills the apps' databases and `opsworks.stack.rds_instances`."""
    views = {v.hostname: v for v in instances}
    views[this.hostname] = this  # the instance's own view is always the freshest
    found = rds or {}
    document: dict[str, Any] = {
        "opsflow": _opsflow_view(spec, views, this, event),
        "opsworks": _opsworks_view(spec, views, this, event, command_id, sent_at, found),
        "deploy": {
            app.name: deploy_entry(spec, found, app, this.root)
            for app in apps_on(spec, this.layers)
        },
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
    """The node JSON of a chef run: the attributes as they are (`opsworks` is OpsWorks'
    own document, custom JSON's `opsworks` keys already merged over it). A document made
    before it had one gets `opsworks` as an alias of `opsflow`, as it did then."""
    if "opsworks" in configuration:
        return dict(configuration)
    return {**configuration, "opsworks": dict(configuration.get("opsflow") or {})}

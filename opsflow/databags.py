"""OpsWorks' Chef 12 data bags, built from the stack (pure): what a Chef 12 recipe finds
with `search(:aws_opsworks_instance, "self:true")` or `data_bag_item("aws_opsworks_app",
"shop")` (the guide's "Data Bag Reference").

`{BAG: {ITEM_ID: item}}`, each item carrying `"id": ITEM_ID` as Chef requires; item ids are
the shortnames OpsWorks used (app and layer names, hostnames, user names, the RDS DB
instance identifier, the stack name, the command id). Every documented field is there,
null where opsflow cannot know it (ECS, IAM users, the SSH host keys, which opsflow never
hands recipes). As on OpsWorks, aws_opsworks_instance lists every instance with its status
(not only the online ones) and `self: true` on the run's own; aws_opsworks_user the stack
users that apply to this instance. Secure values (environment, SSL key, RDS password)
stay sealed, as in opsflow.attributes: the runner reveals them on the worker.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import Any

from opsflow import opsworks_ids
from opsflow.attributes import (
    app_environment,
    apps_on,
    infrastructure_class,
    iso_time,
    scm_type,
    sealed,
    sent_at_of,
    source_url,
    target_group_name,
)
from opsflow.messages import InstanceView, RdsInfo
from opsflow.spec import AppSpec, Scaling, StackSpec

BAGS = (
    "aws_opsworks_app",
    "aws_opsworks_command",
    "aws_opsworks_ecs_cluster",
    "aws_opsworks_elastic_load_balancer",
    "aws_opsworks_instance",
    "aws_opsworks_layer",
    "aws_opsworks_rds_db_instance",
    "aws_opsworks_stack",
    "aws_opsworks_user",
)
ItemId = str
DataBags = dict[str, dict[ItemId, dict[str, Any]]]

_AUTO_SCALING = {Scaling.ALWAYS: None, Scaling.TIME: "timer", Scaling.LOAD: "load"}


def _items(pairs: Iterable[tuple[ItemId, dict[str, Any]]]) -> dict[ItemId, dict[str, Any]]:
    return {item_id: {"id": item_id, **item} for item_id, item in pairs}


def _app(spec: StackSpec, app: AppSpec, rds: Mapping[str, RdsInfo], deploy: bool) -> dict[str, Any]:
    source = app.source
    entry = spec.rds_entry(app.data_source) if app.data_source else None
    info = rds.get(entry.name) if entry else None
    return {
        "app_id": opsworks_ids.app_id(spec.name, app.name),
        "app_source": {
            "type": scm_type(source),
            "url": source_url(source),
            "revision": source.revision if source else None,
            "ssh_key": None,
            "user": None,
            "password": None,
        },
        "attributes": dict(app.attributes),
        "data_sources": [
            {
                "arn": info.arn if info else None,
                "database_name": entry.database_name or (info.database_name if info else None),
                "type": "RdsDbInstance",
            }
        ]
        if entry
        else [],
        "deploy": deploy,
        "document_root": app.document_root,
        "domains": list(app.domains) or [app.name],
        "enable_ssl": app.ssl is not None,
        "environment": app_environment(app),
        "name": app.name,
        "shortname": app.name,
        "ssl_configuration": {
            "certificate": app.ssl.certificate if app.ssl else None,
            "private_key": sealed(app.ssl.key) if app.ssl else None,
            "chain": app.ssl.chain if app.ssl else None,
        },
        "type": app.type.value,
    }


def _instance(spec: StackSpec, view: InstanceView, this: InstanceView) -> dict[str, Any]:
    return {
        "ami_id": view.ami_id,
        "architecture": view.architecture,
        "auto_scaling_type": _AUTO_SCALING.get(view.scaling),
        "availability_zone": view.availability_zone,
        "created_at": iso_time(view.created_at),
        "ebs_optimized": False,
        "ec2_instance_id": view.ec2_instance_id,
        "elastic_ip": view.elastic_ip,
        "hostname": view.hostname,
        "infrastructure_class": infrastructure_class(view),
        "instance_id": opsworks_ids.instance_id(spec.name, view.hostname),
        "instance_type": view.instance_type,
        "layer_ids": [opsworks_ids.layer_id(spec.name, layer) for layer in view.layers],
        "os": view.os,
        "private_dns": view.private_dns_name,
        "private_ip": view.private_ip,
        "public_dns": view.public_dns_name,
        "public_ip": view.public_ip,
        "root_device_type": view.root_device_type,
        "root_device_volume_id": None,
        "self": view.hostname == this.hostname,
        # The instance's SSH host keys: never handed to recipes by opsflow.
        "ssh_host_dsa_key_fingerprint": None,
        "ssh_host_dsa_key_private": None,
        "ssh_host_dsa_key_public": None,
        "ssh_host_rsa_key_fingerprint": None,
        "ssh_host_rsa_key_private": None,
        "ssh_host_rsa_key_public": None,
        "status": view.status.value,
        "subnet_id": view.subnet_id,
        "virtualization_type": None,
    }


def _stack(spec: StackSpec) -> dict[str, Any]:
    cookbooks = spec.cookbooks
    return {
        "arn": None,
        "custom_cookbooks_source": {
            "type": scm_type(cookbooks),
            "url": source_url(cookbooks),
            "username": None,
            "password": None,
            "ssh_key": None,
            "revision": cookbooks.revision if cookbooks else None,
        },
        "name": spec.name,
        "region": spec.region,
        "stack_id": opsworks_ids.stack_id(spec.name),
        "use_custom_cookbooks": cookbooks is not None,
        "vpc_id": None,
    }


def data_bags(
    spec: StackSpec,
    instances: Iterable[InstanceView],
    this: InstanceView,
    event: str,
    *,
    command_id: str | None = None,
    sent_at: datetime | None = None,
    rds: Mapping[str, RdsInfo] | None = None,
    deploying: Collection[str] = (),
) -> DataBags:
    """The nine data bags for one recipe run on `this` instance for `event`.

    `deploying`: the apps this command deploys (`deploy: true`; on setup every app of the
    instance's layers is, as the guide says); `command_id` names the aws_opsworks_command
    item (default: the event); `sent_at` as in opsflow.attributes.stack_configuration."""
    views = {v.hostname: v for v in instances}
    views[this.hostname] = this  # the instance's own view is always the freshest
    found = rds or {}
    own_apps = {app.name for app in apps_on(spec, this.layers)}
    deployed = own_apps if event == "setup" else own_apps.intersection(deploying)
    own_layers = set(this.layers)
    command = command_id or event
    return {
        "aws_opsworks_app": _items(
            (app.name, _app(spec, app, found, app.name in deployed)) for app in spec.apps
        ),
        "aws_opsworks_command": _items(
            [
                (
                    _item_id(command),
                    {
                        "args": {
                            "app_ids": [
                                opsworks_ids.app_id(spec.name, name) for name in sorted(deployed)
                            ]
                        },
                        "command_id": command,
                        "iam_user_arn": None,
                        "instance_id": opsworks_ids.instance_id(spec.name, this.hostname),
                        "sent_at": iso_time(sent_at_of(this, sent_at)),
                        "type": event,
                    },
                )
            ]
        ),
        "aws_opsworks_ecs_cluster": {},
        "aws_opsworks_elastic_load_balancer": _items(
            (
                layer.name,
                {
                    "elastic_load_balancer_name": target_group_name(layer.load_balancer),
                    "dns_name": None,
                    "layer_id": opsworks_ids.layer_id(spec.name, layer.name),
                },
            )
            for layer in spec.layers
            if layer.load_balancer is not None
        ),
        "aws_opsworks_instance": _items(
            (hostname, _instance(spec, views[hostname], this)) for hostname in sorted(views)
        ),
        "aws_opsworks_layer": _items(
            (
                layer.name,
                {
                    "ecs_cluster_arn": None,
                    "layer_id": opsworks_ids.layer_id(spec.name, layer.name),
                    "name": layer.name,
                    "packages": [],
                    "shortname": layer.name,
                    "type": "custom",
                    "volume_configurations": [
                        {
                            "mount_point": volume.mount_point,
                            "number_of_disks": 1,
                            "raid_level": None,
                            "size": volume.size,
                            "volume_type": volume.type,
                        }
                        for volume in layer.volumes
                    ],
                },
            )
            for layer in spec.layers
        ),
        "aws_opsworks_rds_db_instance": _items(
            (
                entry.identifier,
                {
                    "address": info.address if info else None,
                    "port": info.port if info else None,
                    "db_instance_identifier": entry.identifier,
                    "db_password": sealed(entry.password),
                    "db_user": entry.username,
                    "engine": info.engine if info else None,
                    "rds_db_instance_arn": info.arn if info else None,
                    "region": spec.region,
                },
            )
            for entry in spec.rds
            for info in [found.get(entry.name)]
        ),
        "aws_opsworks_stack": _items([(spec.name, _stack(spec))]),
        "aws_opsworks_user": _items(
            (
                user.name,
                {
                    "administrator_privileges": user.sudo,
                    "iam_user_arn": None,
                    "remote_access": False,
                    "ssh_public_key": user.ssh_public_key,
                    "unix_user_id": user.uid,
                    "username": user.name,
                },
            )
            for user in spec.users
            if user.layers is None or own_layers.intersection(user.layers)
        ),
    }


def _item_id(text: str) -> ItemId:
    """A Chef data bag item id allows only letters, digits, `_` and `-`."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "-" for c in text)

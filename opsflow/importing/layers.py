"""OpsWorks layers and instances as opsflow layers and instances: recipes per lifecycle
event, auto healing, volumes, Elastic IPs, load balancers, load- and time-based scaling;
an instance in one layer nested under it, one in several in the stack-level list."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from opsflow import aws, names
from opsflow.importing.fields import (
    FILTERED,
    Context,
    Fields,
    NameRule,
    Names,
    as_number,
    custom_json_of,
    is_secret,
)
from opsflow.importing.model import OpsWorksStack, Resource, fill_in
from opsflow.spec import WEEKDAYS, LoadBasedScaling

LAYER_NAMES = NameRule("layer name", names.LAYER_NAME, 39, "layer", letter_first=True)
HOSTNAMES = NameRule("hostname", names.HOSTNAME, 63, "host", letter_first=False)

# What AWS's own recipes did on a built-in layer type (opsflow runs the custom ones only).
BUILT_IN = {
    "php-app": "Apache with mod_php, and each php app deployed",
    "rails-app": "Ruby, Passenger or Unicorn with nginx, and each rails app deployed",
    "nodejs-app": "Node.js, and each nodejs app deployed and run",
    "java-app": "Java and Tomcat, and each java app deployed",
    "web": "nginx serving each static app",
    "aws-flow-ruby": "the AWS Flow (Ruby) workers of each aws-flow-ruby app",
    "db-master": "a MySQL server, its root password and each app's database",
    "memcached": "memcached",
    "lb": "HAProxy balancing the app server layers",
    "monitoring-master": "a Ganglia server",
    "ecs-cluster": "the ECS container agent",
}
EVENTS = {
    "Setup": "setup",
    "Configure": "configure",
    "Deploy": "deploy",
    "Undeploy": "undeploy",
    "Shutdown": "shutdown",
}
VOLUME_TYPES = frozenset({"gp2", "gp3", "io1", "io2", "st1", "sc1", "standard"})


class Layers:
    """The stack's layers by OpsWorks id, as they are mapped."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.by_id: dict[str, dict[str, Any]] = {}
        self.types: dict[str, str] = {}  # layer name -> OpsWorks Type
        self.names = Names(LAYER_NAMES, ctx.report)

    def name_of(self, layer_id: str) -> str | None:
        layer = self.by_id.get(layer_id)
        return None if layer is None else str(layer["name"])

    def all(self) -> list[dict[str, Any]]:
        return list(self.by_id.values())


def map_layers(found: OpsWorksStack, ctx: Context) -> Layers:
    layers = Layers(ctx)
    for resource in found.layers:
        fields = ctx.fields(resource)
        layer = _layer(fields, layers)
        layers.by_id[resource.id] = layer
        fields.finish()
    for attachment in found.elb_attachments:
        _load_balancer(ctx, attachment, layers)
    return layers


def _layer(fields: Fields, layers: Layers) -> dict[str, Any]:
    ctx = layers.ctx
    shortname = fields.text("Shortname")
    display = fields.text("Name")
    name = layers.names.give(shortname or display, fields.where, "Shortname")
    if display is not None and shortname is not None and display != name:
        fields.note("Name", f"the display name {display!r} is not carried over (named {name!r})")
    layer: dict[str, Any] = {"name": name}
    kind = fields.text("Type") or "custom"
    layers.types[name] = kind
    if kind in BUILT_IN:
        fields.note(
            "Type",
            f"{kind}: AWS's built-in recipes ({BUILT_IN[kind]}) are not carried over; opsflow "
            "runs the layer's custom recipes only",
        )
    elif kind != "custom":
        fields.note("Type", f"{kind}: an unknown layer type, taken as custom")
    healing = fields.flag("EnableAutoHealing")
    layer["auto_healing"] = bool(healing)
    layer["recipes"] = _recipes(fields)
    custom_json = custom_json_of(fields, "CustomJson")
    if custom_json:
        layer["custom_json"] = custom_json
    ec2 = ec2_options(fields, ctx, layer_level=True)
    if ec2:
        layer["ec2"] = ec2
    elastic_ip = fields.flag("AutoAssignElasticIps")
    if elastic_ip and ctx.ec2:
        layer["auto_assign_elastic_ip"] = True
    elif elastic_ip:
        fields.note("AutoAssignElasticIps", "not carried over: an EC2 setting, provider local")
    volumes = _volumes(fields, ctx)
    if volumes:
        layer["volumes"] = volumes
    scaling = fields.mapping("LoadBasedAutoScaling")
    if scaling:
        load_based = _load_based(fields.nested("LoadBasedAutoScaling", scaling))
        if load_based is not None:
            layer["load_based_scaling"] = load_based
    _attributes(fields)
    fields.drop("AutoAssignPublicIps", "an instance gets a public IP as its subnet says")
    fields.drop_all(_NOT_CARRIED)
    return layer


_NOT_CARRIED = {
    "Packages": "opsflow installs no packages itself: install them in a setup recipe",
    "InstallUpdatesOnBoot": "opsflow runs no updates on boot: do it in a setup recipe",
    "UseEbsOptimizedInstances": "opsflow launches with the instance type's default",
    "LifecycleEventConfiguration": "opsflow's shutdown waits for the load balancer's draining "
    "and the recipes, without OpsWorks' timeout",
    "CloudWatchLogsConfiguration": "opsflow keeps run logs in its artifact store",
}


def _recipes(fields: Fields) -> dict[str, list[str]]:
    given = fields.mapping("CustomRecipes") or {}
    inner = fields.nested("CustomRecipes", given)
    recipes: dict[str, list[str]] = {}
    for event, key in EVENTS.items():
        found: list[str] = []
        for index, recipe in enumerate(inner.items(event)):
            text = str(recipe).strip()
            full = text if "::" in text else f"{text}::default"
            if names.RECIPE.fullmatch(full):
                found.append(full)
            else:
                inner.note(f"{event}[{index}]", f"{text!r} is not cookbook::recipe: left out")
        if found:
            recipes[key] = found
    inner.finish()
    return recipes


def _attributes(fields: Fields) -> None:
    """Layer attributes (MysqlRootPassword, HaproxyStatsUrl, ...) configured AWS's built-in
    recipes; opsflow has none of them. Each one set is a report line; secrets unquoted."""
    attributes = fields.mapping("Attributes") or {}
    for key, value in attributes.items():
        if value is None or value == "":
            continue
        secret = is_secret(key) or value == FILTERED
        said = "a secret (not shown)" if secret else repr(value)[:80]
        fields.note(
            f"Attributes.{key}", f"{said}: not carried over (a setting of AWS's built-in recipes)"
        )


def ec2_options(fields: Fields, ctx: Context, *, layer_level: bool) -> dict[str, Any]:
    """A layer's or an instance's EC2 launch settings (report lines on provider local)."""
    options: dict[str, Any] = {}
    keys: list[tuple[str, str, Any]] = (
        [
            ("CustomSecurityGroupIds", "security_groups", aws.SECURITY_GROUP_ID),
            ("CustomInstanceProfileArn", "instance_profile", None),
        ]
        if layer_level
        else [
            ("InstanceType", "instance_type", aws.INSTANCE_TYPE),
            ("SubnetId", "subnet", aws.SUBNET_ID),
            ("AmiId", "ami", aws.AMI_ID),
            ("SshKeyName", "key_pair", None),
        ]
    )
    for key, option, pattern in keys:
        value = ctx.ec2_only(fields, key)
        if value is None:
            continue
        if option == "instance_profile":
            value = instance_profile(fields, key, str(value))
        elif option == "security_groups":
            groups = [str(group) for group in value] if isinstance(value, list) else [str(value)]
            bad = [group for group in groups if not aws.SECURITY_GROUP_ID.fullmatch(group)]
            if bad:
                fields.note(key, f"{bad} are not security group ids: left out")
            value = [group for group in groups if group not in bad] or None
        elif pattern is not None and not pattern.fullmatch(str(value)):
            fields.note(key, f"{value!r} is not {option.replace('_', ' ')}: not carried over")
            value = None
        if value is not None:
            options[option] = str(value) if isinstance(value, str | int) else value
    tags = tags_of(fields, ctx)
    if tags:
        options["tags"] = tags
    return options


def tags_of(fields: Fields, ctx: Context) -> dict[str, str]:
    """CloudFormation's `Tags: [{Key, Value}]`, which OpsWorks gave the instances it
    launched: the ec2 tags (those with a reserved prefix reported)."""
    found: dict[str, str] = {}
    for index, tag in enumerate(ctx.ec2_only(fields, "Tags", "EC2 tags") or []):
        key = tag.get("Key") if isinstance(tag, dict) else None
        if not isinstance(key, str) or key.startswith(("aws:", "opsflow:")):
            fields.note(f"Tags[{index}]", "not a tag opsflow can set: left out")
        else:
            found[key] = str(tag.get("Value", ""))
    return found


def instance_profile(fields: Fields, key: str, arn: str) -> str | None:
    """`arn:aws:iam::123456789012:instance-profile/NAME` -> NAME (what EC2 takes)."""
    _, marker, name = arn.partition(":instance-profile/")
    if not marker or not name:
        fields.note(key, f"{arn!r} is not an instance profile ARN: not carried over")
        return None
    return name.rsplit("/", 1)[-1]


def _volumes(fields: Fields, ctx: Context) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    given = ctx.ec2_only(fields, "VolumeConfigurations", "EBS volumes") or []
    for index, value in enumerate(given if isinstance(given, list) else []):
        if not isinstance(value, dict):
            fields.note(f"VolumeConfigurations[{index}]", "not a mapping: left out")
            continue
        volume = fields.nested("VolumeConfigurations", value, index)
        mount = volume.text("MountPoint")
        size = volume.number("Size")
        disks = volume.number("NumberOfDisks") or 1
        raid = volume.text("RaidLevel")
        kind = (volume.text("VolumeType") or "gp2").lower()
        if disks > 1 or raid is not None:
            volume.note(
                "NumberOfDisks",
                f"{disks:g} disks in RAID {raid or 'none'}: opsflow attaches one volume, "
                "given their total size",
            )
            size = (size or 0) * disks if raid in (None, "0") else size
        if kind not in VOLUME_TYPES:
            volume.note("VolumeType", f"{kind!r} is not a volume type opsflow takes: gp3 used")
            kind = "gp3"
        volume.drop("Iops", "opsflow's volumes take their type's default IOPS")
        volume.drop("Encrypted", "opsflow's volumes are encrypted as the account's default says")
        volume.finish()
        if mount is None or size is None:
            fields.note(f"VolumeConfigurations[{index}]", "no MountPoint or Size: left out")
            continue
        found.append({"size": int(size), "type": kind, "mount_point": mount})
    return found


def _load_based(fields: Fields) -> dict[str, Any] | None:
    enabled = fields.flag("Enable")
    found: dict[str, Any] = {"enabled": bool(enabled)}
    for key, side in (("UpScaling", "up"), ("DownScaling", "down")):
        found[side] = _thresholds(fields, key)
    fields.finish()
    thresholds = {k for side in ("up", "down") for k in found[side]} & set(_METRICS.values())
    if not enabled and not thresholds:
        return None  # never set up: nothing to carry
    try:
        LoadBasedScaling.model_validate(found)
    except ValidationError as err:
        problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in err.errors())
        fields.note("", f"not carried over: {problems}")
        return None
    return found


_METRICS = {"CpuThreshold": "cpu", "MemoryThreshold": "memory", "LoadThreshold": "load"}


def _thresholds(fields: Fields, key: str) -> dict[str, Any]:
    inner = fields.nested(key, fields.mapping(key) or {})
    found: dict[str, Any] = {}
    for field, metric in _METRICS.items():
        value = inner.number(field)
        if value is not None and value >= 0:  # OpsWorks says -1 for "not set"
            found[metric] = value
    count = inner.number("InstanceCount")
    if count is not None:
        found["instance_count"] = int(count)
    for field, option in (
        ("ThresholdsWaitTime", "thresholds_wait_time"),
        ("IgnoreMetricsTime", "ignore_metrics_time"),
    ):
        minutes = inner.number(field)
        if minutes is not None:
            found[option] = f"{minutes:g}m"  # OpsWorks counted in minutes
    inner.drop("Alarms", "opsflow reads the metrics itself, not CloudWatch alarms")
    inner.finish()
    return found


def _load_balancer(ctx: Context, attachment: Resource, layers: Layers) -> None:
    fields = ctx.fields(attachment)
    name = fields.text("ElasticLoadBalancerName")
    layer_id = fields.text("LayerId")
    fields.take("Region")
    fields.take("VpcId")
    layer = layers.by_id.get(layer_id or "")
    if layer is None:
        fields.note("LayerId", f"{layer_id!r} is not a layer of the stack: not carried over")
    else:
        message = f"Classic ELB {name!r}: opsflow registers instances with an ELBv2 target group"
        if ctx.ec2:
            layer["load_balancer"] = fill_in(
                f"the ARN of an ELBv2 target group to take the place of Classic ELB {name}"
            )
            fields.note(
                "ElasticLoadBalancerName",
                message + f"; layer {layer['name']!r} holds a placeholder for one",
            )
        else:
            fields.note("ElasticLoadBalancerName", message + "; provider local: left out")
    fields.finish()


def map_instances(found: OpsWorksStack, ctx: Context, layers: Layers) -> list[dict[str, Any]]:
    """Each instance nested under its one layer, or in the returned stack-level list (an
    instance in several layers); hostnames made valid and unique, `{layer}{n}` when none."""
    hostnames = Names(HOSTNAMES, ctx.report)
    named: list[tuple[Resource, Fields, str | None]] = []
    for resource in found.instances:
        fields = ctx.fields(resource)
        given = fields.text("Hostname")
        hostname = hostnames.give(given, fields.where, "Hostname") if given else None
        named.append((resource, fields, hostname))
    stack_level: list[dict[str, Any]] = []
    for _, fields, hostname in named:
        in_layers = _instance_layers(fields, layers)
        if not in_layers:
            fields.note("LayerIds", "the instance is in no layer of the stack: left out")
            fields.finish()
            continue
        if hostname is None:
            hostname = _next_hostname(in_layers[0], hostnames)
            fields.note("Hostname", f"none given: named {hostname!r}")
        if _registered(fields, ctx, hostname, in_layers):
            fields.finish()
            continue
        instance: dict[str, Any] = {"hostname": hostname}
        ec2 = ec2_options(fields, ctx, layer_level=False)
        if ec2:
            instance["ec2"] = ec2
        instance.update(_scaling(fields))
        fields.drop_all(_INSTANCE_NOT_CARRIED)
        fields.finish()
        if len(in_layers) == 1:
            layer = next(item for item in layers.all() if item["name"] == in_layers[0])
            layer.setdefault("instances", []).append(instance)
        else:
            stack_level.append({**instance, "layers": in_layers})
    return stack_level


def _registered(fields: Fields, ctx: Context, hostname: str, in_layers: list[str]) -> bool:
    """Whether the instance was a host registered with OpsWorks (on-premises, or an EC2
    instance OpsWorks did not launch), said in the report. On ec2 it is left out, with the
    command that brings it in: opsflow must not launch a machine in its place. On local a
    local machine stands in, as for every instance."""
    infrastructure = (fields.text("InfrastructureClass") or "").lower()
    registered_by = fields.text("RegisteredBy")
    if infrastructure != "on-premises" and not registered_by:
        return False
    what = "an on-premises host" if infrastructure == "on-premises" else "an EC2 instance"
    prop = "InfrastructureClass" if infrastructure == "on-premises" else "RegisteredBy"
    if not ctx.ec2:
        fields.note(prop, f"{what} registered with OpsWorks: a local machine stands in")
        return False
    address = next((str(fields.take(key)) for key in _ADDRESSES if fields.has(key)), None)
    layer_options = " ".join(f"--layer {layer}" for layer in in_layers)
    command = (
        f"opsflow instance register {ctx.stack_name} {layer_options} "
        f"--host {address or 'ADDRESS'} --hostname {hostname} --key-file KEY"
    )
    fields.note(
        prop,
        f"{what} registered with OpsWorks, which opsflow does not launch: left out; "
        f"bring it in after `stack apply` with `{command}`",
    )
    fields.discard()
    return True


# Where a registered host was reached, best first.
_ADDRESSES = ("PublicIp", "PublicDns", "PrivateIp", "PrivateDns")


def _instance_layers(fields: Fields, layers: Layers) -> list[str]:
    found: list[str] = []
    for layer_id in fields.items("LayerIds"):
        name = layers.name_of(str(layer_id))
        if name is None:
            fields.note("LayerIds", f"{layer_id!r} is not a layer of the stack: left out")
        elif name not in found:
            found.append(name)
    return found


def _next_hostname(layer: str, hostnames: Names) -> str:
    n = 1
    while f"{layer}{n}" in hostnames.taken:
        n += 1
    hostnames.reserve(f"{layer}{n}")
    return f"{layer}{n}"


def _scaling(fields: Fields) -> dict[str, Any]:
    kind = (fields.text("AutoScalingType") or "").lower()
    hours = fields.mapping("TimeBasedAutoScaling")
    if kind == "load":
        if hours:
            fields.note("TimeBasedAutoScaling", "not carried over: the instance is load-based")
        return {"scaling": "load"}
    if kind == "timer":
        schedule: dict[str, Any] = {"timezone": "UTC"}  # OpsWorks' schedules were in UTC
        inner = fields.nested("TimeBasedAutoScaling", hours or {})
        for day in WEEKDAYS:
            on = _hours_on(inner, day.capitalize())
            if on:
                schedule[day] = on
        inner.finish()
        if len(schedule) == 1:
            fields.note(
                "TimeBasedAutoScaling",
                "no hours on: the instance never runs until its schedule is given hours",
            )
        return {"scaling": "time", "schedule": schedule}
    if kind:
        fields.note("AutoScalingType", f"{kind!r} is not timer or load: the instance is 24/7")
    if hours:
        fields.note("TimeBasedAutoScaling", "not carried over: the instance is not time-based")
    return {}


def _hours_on(fields: Fields, day: str) -> list[int]:
    given = fields.mapping(day) or {}
    on: list[int] = []
    for hour, state in given.items():
        value = as_number(hour, fields, f"{day}.{hour}")
        if value is None or not 0 <= value <= 23 or value != int(value):
            fields.note(f"{day}.{hour}", "not an hour 0-23: left out")
        elif str(state).lower() == "on":
            on.append(int(value))
    return sorted(on)


_INSTANCE_NOT_CARRIED = {
    "Os": "opsflow launches the `ami` of its ec2 settings",
    "AvailabilityZone": "opsflow places an instance by its subnet",
    "Architecture": "the AMI and instance type decide it",
    "RootDeviceType": "the AMI decides it",
    "VirtualizationType": "the AMI decides it",
    "Tenancy": "opsflow launches on shared tenancy",
    "EbsOptimized": "opsflow launches with the instance type's default",
    "BlockDeviceMappings": "opsflow attaches its layers' volumes",
    "InstallUpdatesOnBoot": "opsflow runs no updates on boot: do it in a setup recipe",
    "AgentVersion": "opsflow has no agent on the instance",
    "ElasticIps": "opsflow allocates a new Elastic IP for a layer with auto_assign_elastic_ip",
    "Volumes": "opsflow attaches new volumes of its layers' `volumes`, not existing ones",
    "Attributes": "opsflow has no instance attributes",
}


def map_volumes(found: OpsWorksStack, ctx: Context) -> None:
    """Existing EBS volumes registered with the stack (AWS::OpsWorks::Volume): opsflow
    attaches new volumes only; each is a report line."""
    for resource in found.volumes:
        fields = ctx.fields(resource)
        volume = fields.text("Ec2VolumeId") or resource.id
        mount = fields.text("MountPoint")
        fields.take("Name")
        for key in (
            "Device",
            "Size",
            "VolumeType",
            "Iops",
            "AvailabilityZone",
            "Region",
            "RaidArrayId",
            "Encrypted",
            "VolumeId",
        ):
            fields.take(key)
        fields.note(
            "Ec2VolumeId",
            f"existing volume {volume} (mount point {mount or 'none'}) is not carried over: "
            "opsflow creates its layers' volumes new",
        )
        fields.finish()

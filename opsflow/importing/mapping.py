"""An OpsWorks stack (as either importer found it) as an opsflow stack file: the plain dict
YAML would load, and a report line for everything not carried over or changed on the way.

Pure: no I/O. Where a person must decide (a secret the input did not hold, a Classic ELB's
replacement, the AMI OpsWorks chose by its OS), the value is the `<FILL IN: reason>`
placeholder, which the stack-file loader refuses by field name; everything else validates
as a StackSpec.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opsflow import aws, names
from opsflow.errors import InvalidInput
from opsflow.importing.apps import map_apps, map_databases
from opsflow.importing.fields import Context, Fields, NameRule, Names, custom_json_of
from opsflow.importing.layers import (
    instance_profile,
    map_instances,
    map_layers,
    map_volumes,
    tags_of,
)
from opsflow.importing.model import OpsWorksStack, Report, fill_in
from opsflow.importing.sources import code_source
from opsflow.importing.users import map_users
from opsflow.spec import CHEF_VERSIONS, Provider

STACK_NAMES = NameRule("stack name", names.STACK_NAME, 39, "imported", letter_first=True)

# The login user of the AMIs OpsWorks chose for each DefaultOs (its family, by prefix).
_SSH_USERS = {
    "Amazon Linux": "ec2-user",
    "Red Hat Enterprise Linux": "ec2-user",
    "Ubuntu": "ubuntu",
    "CentOS": "centos",
}


def stack_file(
    found: OpsWorksStack,
    report: Report,
    *,
    provider: Provider,
    sources: Mapping[str, str],
    stack_name: str | None = None,
    region: str | None = None,
) -> dict[str, Any]:
    """The stack file for `found` on `provider` (ec2 or local); `sources` (`--source
    NAME=PATH`: `cookbooks` or an app's name) replace those sources with local directories;
    `stack_name` names the stack when its resource has no Name, `region` (`--region`) is
    its region when it has no Region (a template's stack is in the CloudFormation stack's
    region, AWS::Region). InvalidInput for a `sources` name that names nothing."""
    if provider not in (Provider.EC2, Provider.LOCAL):
        raise InvalidInput(f"--provider: an import makes an ec2 or local stack, not {provider}")
    ctx = Context(report, ec2=provider == Provider.EC2, sources=dict(sources))
    if region is not None and "Region" not in found.stack.fields:
        found = found.model_copy(
            update={
                "stack": found.stack.model_copy(
                    update={"fields": {**found.stack.fields, "Region": region}}
                )
            }
        )
    stack = ctx.fields(found.stack)
    name = Names(STACK_NAMES, report).give(stack.text("Name") or stack_name, stack.where, "Name")
    ctx.stack_name = name
    result: dict[str, Any] = {"name": name, "provider": provider.value}
    settings = _stack_settings(stack, ctx)
    layers = map_layers(found, ctx)
    if "cookbooks" not in settings and any(layer.get("recipes") for layer in layers.all()):
        # OpsWorks found such recipes in AWS's built-in cookbooks, or failed the run.
        stack.note(
            "UseCustomCookbooks",
            "not true, yet the layers name recipes: the file holds a placeholder for the "
            "cookbooks they are in (or give --source cookbooks=DIR)",
        )
        settings["cookbooks"] = {
            "source": fill_in("the directory of the cookbooks the layers' recipes are in")
        }
    stack_level = map_instances(found, ctx, layers)
    map_volumes(found, ctx)
    stack.take("RdsDbInstances")  # read by map_databases
    databases = map_databases(found, ctx)
    apps = map_apps(found, ctx, layers, databases)
    users = map_users(found, ctx, layers)
    ec2 = settings.pop("ec2", None)
    if ctx.ec2:
        ec2 = _launch_defaults(found, stack, ec2 or {})
    else:
        stack.drop("DefaultOs", "provider local runs the host's own system")
    stack.finish()
    _unused_sources(ctx)
    if ctx.ec2:
        result["region"] = settings.pop("region", None) or fill_in(
            "the AWS region the stack ran in (like us-east-1)"
        )
        result["ec2"] = ec2
    result.update(settings)
    result["layers"] = layers.all()
    if stack_level:
        result["instances"] = stack_level
    if apps:
        result["apps"] = apps
    if databases.entries():
        result["rds"] = databases.entries()
    if users:
        result["users"] = users
    return result


def _stack_settings(stack: Fields, ctx: Context) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    region = ctx.ec2_only(stack, "Region", "the AWS region")
    if region is not None:
        if aws.REGION.fullmatch(str(region)):
            settings["region"] = str(region)
        else:
            stack.note("Region", f"{region!r} is not an AWS region: the file holds a placeholder")
    settings.update(_manager(stack))
    cookbooks = _cookbooks(stack, ctx)
    if cookbooks is not None:
        settings["cookbooks"] = cookbooks
    custom_json = custom_json_of(stack, "CustomJson")
    if custom_json:
        settings["custom_json"] = custom_json
    ec2: dict[str, Any] = {}
    subnet = ctx.ec2_only(stack, "DefaultSubnetId", "the default subnet")
    if subnet is not None and aws.SUBNET_ID.fullmatch(str(subnet)):
        ec2["subnet"] = str(subnet)
    elif subnet is not None:
        stack.note("DefaultSubnetId", f"{subnet!r} is not a subnet id: not carried over")
    key_pair = ctx.ec2_only(stack, "DefaultSshKeyName", "the EC2 key pair")
    if key_pair is not None:
        ec2["key_pair"] = str(key_pair)
    profile = ctx.ec2_only(stack, "DefaultInstanceProfileArn", "the instance profile")
    if profile is not None:
        name = instance_profile(stack, "DefaultInstanceProfileArn", str(profile))
        if name is not None:
            ec2["instance_profile"] = name
    tags = tags_of(stack, ctx)
    if tags:
        ec2["tags"] = tags
    if ctx.ec2:
        settings["ec2"] = ec2
    stack.drop_all(_STACK_NOT_CARRIED)
    return settings


_STACK_NOT_CARRIED = {
    "ServiceRoleArn": "opsflow calls AWS with the worker's own credentials",
    "VpcId": "the subnets of the ec2 settings place the instances",
    "DefaultAvailabilityZone": "opsflow places instances by their subnet",
    "DefaultRootDeviceType": "the AMI decides it",
    "HostnameTheme": "opsflow names instances `{layer}{n}` where no hostname is given",
    "Attributes": "stack attributes (Color) were for OpsWorks' console",
    "ChefConfiguration": "opsflow runs no Berkshelf: vendor the cookbooks' dependencies",
    "AgentVersion": "opsflow has no agent on the instance",
    "UseOpsworksSecurityGroups": "opsflow creates no security groups: give `security_groups`",
    "ElasticIps": "opsflow allocates a new Elastic IP for a layer with auto_assign_elastic_ip",
    "EcsClusterArn": "opsflow runs no ECS cluster layer",
    "CloneAppIds": "cloning a stack is not carried over",
    "ClonePermissions": "cloning a stack is not carried over",
    "SourceStackId": "cloning a stack is not carried over",
}


def _manager(stack: Fields) -> dict[str, Any]:
    """ConfigurationManager {Name: Chef, Version} as `configuration_manager: chef` and
    `chef.version`; a version OpsWorks Linux stacks did not have is a placeholder."""
    given = stack.mapping("ConfigurationManager")
    if given is None:
        stack.note(
            "ConfigurationManager",
            "none given: Chef 12, OpsWorks' default for new "
            "stacks (set chef.version 11.10 for cookbooks that read node[:deploy])",
        )
        return {"configuration_manager": "chef", "chef": {"version": "12"}}
    inner = stack.nested("ConfigurationManager", given)
    name = (inner.text("Name") or "Chef").lower()
    version = inner.text("Version") or "12"
    inner.finish()
    if name != "chef":
        inner.note("Name", f"{name!r}: OpsWorks Stacks ran Chef; the file holds a placeholder")
        return {"configuration_manager": fill_in(f"shell, puppet or chef (was {name})")}
    if version == "11.1":  # YAML reads an unquoted 11.10 as the number 11.1
        inner.note("Version", "11.1 (an unquoted 11.10 in YAML is a number): taken as 11.10")
        version = "11.10"
    if version == "12.2":
        inner.note("Version", "Chef 12.2 was for Windows stacks: Chef 12 on Linux")
        version = "12"
    if version not in CHEF_VERSIONS:
        inner.note(
            "Version", f"Chef {version} is not one opsflow runs: the file holds a placeholder"
        )
        version = fill_in(f"the Chef version, one of {', '.join(CHEF_VERSIONS)} (was {version})")
    return {"configuration_manager": "chef", "chef": {"version": version}}


def _cookbooks(stack: Fields, ctx: Context) -> dict[str, Any] | None:
    use = stack.flag("UseCustomCookbooks")
    if "cookbooks" in ctx.sources:
        ctx.used_sources.add("cookbooks")
        if stack.has("CustomCookbooksSource"):
            stack.take("CustomCookbooksSource")
            stack.note(
                "CustomCookbooksSource",
                f"replaced by --source cookbooks={ctx.sources['cookbooks']}",
            )
        return {"source": ctx.sources["cookbooks"]}
    if not use:
        if stack.has("CustomCookbooksSource"):
            stack.take("CustomCookbooksSource")
            stack.note("CustomCookbooksSource", "not carried over: UseCustomCookbooks is not true")
        return None
    found = code_source(stack, "CustomCookbooksSource", "the cookbooks")
    if found is None:
        stack.note("UseCustomCookbooks", "true but no source given: the file holds a placeholder")
        return {"source": fill_in("the directory of the stack's cookbooks")}
    return found


def _launch_defaults(found: OpsWorksStack, stack: Fields, ec2: dict[str, Any]) -> dict[str, Any]:
    """The stack's ec2 settings, with what OpsWorks chose itself and opsflow needs said:
    the AMI (OpsWorks picked it by DefaultOs), the login user, the key pair's private key
    (opsflow runs recipes over SSH, where OpsWorks had its agent)."""
    os_name = stack.text("DefaultOs")
    all_have_ami = bool(found.instances) and all(
        instance.fields.get("AmiId") for instance in found.instances
    )
    if not all_have_ami:
        ec2["ami"] = fill_in(
            f"the AMI id to launch (OpsWorks chose one for {os_name or 'its default OS'})"
        )
        stack.note(
            "DefaultOs",
            f"{os_name or 'none given'}: opsflow launches an AMI; the file "
            "holds a placeholder for it",
        )
    user = next((u for prefix, u in _SSH_USERS.items() if (os_name or "").startswith(prefix)), None)
    if user is not None:
        ec2["ssh_user"] = user
    if "key_pair" not in ec2:
        ec2["key_pair"] = fill_in("the EC2 key pair instances are launched with")
    ec2["ssh_key_file"] = fill_in(
        f"the private key file of key pair {ec2['key_pair']}: opsflow runs recipes over SSH"
        if "<FILL IN" not in ec2["key_pair"]
        else "the private key file of that key pair: opsflow runs recipes over SSH"
    )
    stack.note(
        "DefaultSshKeyName",
        "opsflow logs in over SSH with the key pair's private "
        "key: the file holds a placeholder for ssh_key_file",
    )
    return ec2


def _unused_sources(ctx: Context) -> None:
    unused = sorted(set(ctx.sources) - ctx.used_sources)
    if unused:
        raise InvalidInput(
            f"--source {unused[0]}: names neither `cookbooks` nor an app of the stack"
        )

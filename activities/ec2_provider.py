"""The ec2 provider: an instance is an EC2 instance, with its Elastic IP and EBS volumes.

boto3 is configured the standard way (AWS_PROFILE, AWS_REGION / the stack's region,
AWS_ENDPOINT_URL, instance roles); nothing here reads credentials itself.

launch (idempotent per stack/hostname: an instance tagged opsflow:stack + opsflow:hostname
that is pending or running is reused, a stopped one is started):
  run_instances (tags opsflow:stack, opsflow:layer, opsflow:hostname and the user's) ->
  wait until running (heartbeating) -> Elastic IP (allocate + associate) when the layer
  asks -> each EBS volume (create in the instance's zone, wait available, attach as
  /dev/sdf, /dev/sdg, ...). A step that fails undoes what this launch created, in reverse
  order (detach/delete volumes, disassociate/release the address, terminate the instance),
  then raises: the instance ends in a clear failed state with AWS's message.
stop: stop_instances (EBS-backed machines keep their disks), wait until stopped.
terminate: terminate_instances, wait until terminated, release the Elastic IP, delete the
  volumes opsflow created (found by their opsflow tags: nothing opsflow made is left).

Errors: throttling (Throttling, RequestLimitExceeded, ...) is retried by botocore's
standard retry mode and, past it, is a retryable Ec2Throttled; a request AWS refuses
(InvalidAMIID.NotFound, InvalidSubnetID.NotFound, AddressLimitExceeded, ...) is a
non-retryable Ec2Refused carrying AWS's code and message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError, WaiterError
from temporalio.exceptions import ApplicationError

from activities import aws
from opsflow.errors import ErrorType
from opsflow.messages import Ec2Machine, Ec2Resources, MachineFacts
from opsflow.spec import VolumeSpec
from opsflow.volumes import device_name

REUSABLE_STATES = ("pending", "running", "stopping", "stopped")
WAIT_SECONDS = 600


def client(region: str) -> Any:
    return aws.client("ec2", region)


def launch(
    machine: Ec2Machine,
    heartbeat: Callable[[], None] = lambda: None,
    kept: Ec2Resources | None = None,
) -> Ec2Resources:
    """Launch the instance; with `kept` (what a lost instance had, see terminate(keep=True))
    its Elastic IP is associated and its volumes attached to the new one, as they were."""
    ec2 = client(machine.region)
    undo: list[tuple[str, Callable[[], None]]] = []
    try:
        zone = kept.availability_zone if kept is not None and kept.volume_ids else None
        resources = _run_or_reuse(ec2, machine, undo, zone)
        _wait(ec2, "instance_running", heartbeat, InstanceIds=[resources.instance_id])
        _describe_addresses(ec2, resources)
        if kept is not None:  # a replacement: the lost machine's address and disks
            _move_kept(ec2, kept, resources, heartbeat)
            return resources
        if machine.elastic_ip:
            _elastic_ip(ec2, machine, resources, undo)
        for index, volume in enumerate(machine.volumes):
            _volume(ec2, machine, resources, volume, device_name(index), undo, heartbeat)
        return resources
    except BaseException as err:
        problems = _compensate(undo)
        raise as_application_error(err, machine, problems) from err


def facts(region: str, resources: Ec2Resources) -> MachineFacts:
    """What DescribeInstances says of the launched machine, for the stack configuration
    (`opsworks.instance`, aws_opsworks_instance): asked once its address is final."""
    try:
        found = client(region).describe_instances(InstanceIds=[resources.instance_id])
    except ClientError as err:
        raise as_application_error(err, None, []) from err
    return machine_facts(found["Reservations"][0]["Instances"][0], region, resources)


def machine_facts(instance: dict[str, Any], region: str, resources: Ec2Resources) -> MachineFacts:
    """An EC2 instance description (DescribeInstances) as MachineFacts; AWS's empty
    strings (no public DNS name in a VPC without it) as None."""

    def text(value: Any) -> str | None:
        return value if isinstance(value, str) and value else None

    launched = instance.get("LaunchTime")
    return MachineFacts(
        instance_type=text(instance.get("InstanceType")),
        availability_zone=text(instance.get("Placement", {}).get("AvailabilityZone")),
        region=region,
        public_ip=text(instance.get("PublicIpAddress")) or resources.public_ip,
        public_dns_name=text(instance.get("PublicDnsName")),
        private_dns_name=text(instance.get("PrivateDnsName")),
        architecture=text(instance.get("Architecture")),
        ami_id=text(instance.get("ImageId")),
        os=text(instance.get("PlatformDetails")),
        subnet_id=text(instance.get("SubnetId")),
        elastic_ip=resources.public_ip if resources.allocation_id else None,
        root_device_type=text(instance.get("RootDeviceType")),
        created_at=launched,
        booted_at=launched,
    )


def stop(region: str, instance_id: str, heartbeat: Callable[[], None] = lambda: None) -> None:
    ec2 = client(region)
    try:
        ec2.stop_instances(InstanceIds=[instance_id])
        _wait(ec2, "instance_stopped", heartbeat, InstanceIds=[instance_id])
    except ClientError as err:
        if aws.error_code(err) != "InvalidInstanceID.NotFound":
            raise as_application_error(err, None, []) from err


def terminate(
    region: str,
    resources: Ec2Resources,
    heartbeat: Callable[[], None] = lambda: None,
    keep: bool = False,
) -> None:
    """Terminate the instance and release what opsflow created for it; an absent one is
    a no-op, so a retried delete succeeds. With `keep` (a heal), its volumes are detached
    and its Elastic IP kept, for the replacement to take over."""
    ec2 = client(region)
    try:
        if keep:
            for volume_id in resources.volume_ids:
                _ignore_missing(lambda v=volume_id: _detach(ec2, v, heartbeat))  # type: ignore[misc]
        _ignore_missing(lambda: ec2.terminate_instances(InstanceIds=[resources.instance_id]))
        _ignore_missing(
            lambda: _wait(
                ec2, "instance_terminated", heartbeat, InstanceIds=[resources.instance_id]
            )
        )
        if keep:
            return
        if resources.allocation_id is not None:
            _ignore_missing(lambda: ec2.release_address(AllocationId=resources.allocation_id))
        for volume_id in resources.volume_ids:
            _ignore_missing(lambda v=volume_id: _delete_volume(ec2, v, heartbeat))  # type: ignore[misc]
    except ClientError as err:
        raise as_application_error(err, None, []) from err


# ---- steps -------------------------------------------------------------------------------


def _tags(machine: Ec2Machine) -> list[dict[str, str]]:
    tags = machine.options.tags | {
        "opsflow:stack": machine.stack,
        "opsflow:layer": machine.layer,
        "opsflow:hostname": machine.hostname,
        "Name": f"{machine.stack}-{machine.hostname}",
    }
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def _run_or_reuse(
    ec2: Any,
    machine: Ec2Machine,
    undo: list[tuple[str, Callable[[], None]]],
    zone: str | None = None,
) -> Ec2Resources:
    found = ec2.describe_instances(
        Filters=[
            {"Name": "tag:opsflow:stack", "Values": [machine.stack]},
            {"Name": "tag:opsflow:hostname", "Values": [machine.hostname]},
            {
                "Name": "instance-state-name",
                "Values": ["pending", "running", "stopping", "stopped"],
            },
        ]
    )
    existing = [i for r in found["Reservations"] for i in r["Instances"]]
    if existing:  # a retried launch, or a stopped instance started again
        instance = existing[0]
        if instance["State"]["Name"] in ("stopping", "stopped"):
            ec2.start_instances(InstanceIds=[instance["InstanceId"]])
        return Ec2Resources(
            instance_id=instance["InstanceId"],
            availability_zone=instance.get("Placement", {}).get("AvailabilityZone"),
        )
    options = machine.options
    if options.ami is None or options.instance_type is None:
        raise ApplicationError(
            f"{machine.stack}/{machine.hostname}: ec2 needs `ami` and `instance_type` (in the "
            "stack's, the layer's or the instance's ec2 settings)",
            type=ErrorType.EC2_REFUSED,
            non_retryable=True,
        )
    request: dict[str, Any] = {
        "ImageId": options.ami,
        "InstanceType": options.instance_type,
        "MinCount": 1,
        "MaxCount": 1,
        "TagSpecifications": [{"ResourceType": "instance", "Tags": _tags(machine)}],
        # The same token on a retry gives the same instance, never a second one.
        "ClientToken": machine.token[:64],
    }
    if options.subnet:
        request["SubnetId"] = options.subnet
    elif zone is not None:  # volumes kept from a lost instance only attach in their zone
        request["Placement"] = {"AvailabilityZone": zone}
    if options.security_groups:
        request["SecurityGroupIds"] = options.security_groups
    if options.key_pair:
        request["KeyName"] = options.key_pair
    if options.instance_profile:
        request["IamInstanceProfile"] = {"Name": options.instance_profile}
    instance = ec2.run_instances(**request)["Instances"][0]
    instance_id = instance["InstanceId"]
    undo.append(("terminate instance", lambda: ec2.terminate_instances(InstanceIds=[instance_id])))
    return Ec2Resources(
        instance_id=instance_id,
        availability_zone=instance.get("Placement", {}).get("AvailabilityZone"),
    )


def _describe_addresses(ec2: Any, resources: Ec2Resources) -> None:
    found = ec2.describe_instances(InstanceIds=[resources.instance_id])
    instance = found["Reservations"][0]["Instances"][0]
    resources.private_ip = instance.get("PrivateIpAddress")
    resources.public_ip = instance.get("PublicIpAddress")
    resources.availability_zone = instance.get("Placement", {}).get("AvailabilityZone")


def _elastic_ip(
    ec2: Any,
    machine: Ec2Machine,
    resources: Ec2Resources,
    undo: list[tuple[str, Callable[[], None]]],
) -> None:
    address = ec2.allocate_address(
        Domain="vpc",
        TagSpecifications=[{"ResourceType": "elastic-ip", "Tags": _tags(machine)}],
    )
    allocation_id = address["AllocationId"]
    undo.append(("release address", lambda: ec2.release_address(AllocationId=allocation_id)))
    associated = ec2.associate_address(AllocationId=allocation_id, InstanceId=resources.instance_id)
    association_id = associated["AssociationId"]
    undo.append(
        ("disassociate address", lambda: ec2.disassociate_address(AssociationId=association_id))
    )
    resources.allocation_id, resources.association_id = allocation_id, association_id
    resources.public_ip = address.get("PublicIp")


def _volume(
    ec2: Any,
    machine: Ec2Machine,
    resources: Ec2Resources,
    volume: VolumeSpec,
    device: str,
    undo: list[tuple[str, Callable[[], None]]],
    heartbeat: Callable[[], None],
) -> None:
    tags = [*_tags(machine), {"Key": "opsflow:mount_point", "Value": volume.mount_point}]
    created = ec2.create_volume(
        AvailabilityZone=resources.availability_zone,
        Size=volume.size,
        VolumeType=volume.type,
        TagSpecifications=[{"ResourceType": "volume", "Tags": tags}],
    )
    volume_id = created["VolumeId"]
    undo.append(("delete volume", lambda: _delete_volume(ec2, volume_id, heartbeat)))
    resources.volume_ids.append(volume_id)
    _wait(ec2, "volume_available", heartbeat, VolumeIds=[volume_id])
    ec2.attach_volume(VolumeId=volume_id, InstanceId=resources.instance_id, Device=device)
    undo.append(("detach volume", lambda: ec2.detach_volume(VolumeId=volume_id, Force=True)))


def _detach(ec2: Any, volume_id: str, heartbeat: Callable[[], None]) -> None:
    found = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"]
    attachments = found[0].get("Attachments", []) if found else []
    for attachment in attachments:
        ec2.detach_volume(
            VolumeId=volume_id,
            InstanceId=attachment["InstanceId"],
            Device=attachment["Device"],
            Force=True,
        )
    if attachments:
        _wait(ec2, "volume_available", heartbeat, VolumeIds=[volume_id])


def _delete_volume(ec2: Any, volume_id: str, heartbeat: Callable[[], None]) -> None:
    _detach(ec2, volume_id, heartbeat)
    ec2.delete_volume(VolumeId=volume_id)


def _move_kept(
    ec2: Any, kept: Ec2Resources, resources: Ec2Resources, heartbeat: Callable[[], None]
) -> None:
    """The lost instance's Elastic IP and volumes onto its replacement (same devices)."""
    if kept.allocation_id is not None:
        associated = ec2.associate_address(
            AllocationId=kept.allocation_id,
            InstanceId=resources.instance_id,
            AllowReassociation=True,  # from the terminated instance, if still shown on it
        )
        resources.allocation_id = kept.allocation_id
        resources.association_id = associated["AssociationId"]
        found = ec2.describe_addresses(AllocationIds=[kept.allocation_id])["Addresses"]
        resources.public_ip = found[0].get("PublicIp") if found else resources.public_ip
    for index, volume_id in enumerate(kept.volume_ids):
        _detach(ec2, volume_id, heartbeat)
        device = device_name(index)
        ec2.attach_volume(VolumeId=volume_id, InstanceId=resources.instance_id, Device=device)
        resources.volume_ids.append(volume_id)


# ---- plumbing ----------------------------------------------------------------------------


def _wait(ec2: Any, name: str, heartbeat: Callable[[], None], **request: Any) -> None:
    """A boto3 waiter in short rounds, heartbeating between them."""
    waiter = ec2.get_waiter(name)
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        heartbeat()
        try:
            waiter.wait(WaiterConfig={"Delay": 1, "MaxAttempts": 3}, **request)
            return
        except WaiterError as err:
            if "Max attempts exceeded" not in str(err) or time.monotonic() > deadline:
                raise


def _compensate(undo: list[tuple[str, Callable[[], None]]]) -> list[str]:
    """Run the undo steps, last first; what could not be undone, for the message."""
    problems = []
    for what, step in reversed(undo):
        try:
            step()
        except Exception as err:  # keep undoing the rest
            problems.append(f"{what}: {err}")
    return problems


def _ignore_missing(step: Callable[[], object]) -> None:
    try:
        step()
    except ClientError as err:
        if not aws.error_code(err).endswith(".NotFound"):
            raise
    except WaiterError:
        pass  # already gone


def as_application_error(
    err: BaseException, machine: Ec2Machine | None, problems: list[str]
) -> BaseException:
    """`err` as the activity raises it: AWS's errors mapped (activities.aws), naming the
    machine and what a failed launch could not undo."""
    where = f"{machine.stack}/{machine.hostname}: " if machine else ""
    left = f" (not undone: {'; '.join(problems)})" if problems else ""
    if isinstance(err, ApplicationError):
        if left:
            return ApplicationError(
                err.message + left, type=err.type, non_retryable=err.non_retryable
            )
        return err
    if isinstance(err, ClientError):
        return aws.refusal(err, aws.EC2_ERRORS, prefix=where, suffix=left)
    if isinstance(err, WaiterError):
        return aws.wait_failure(err, aws.EC2_ERRORS, prefix=where, suffix=left)
    return err

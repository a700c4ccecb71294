"""The ec2 provider against a real moto server, faults injected over HTTP by the proxy:
launch with an Elastic IP and volumes, compensation in reverse order, retries of
throttling, refusals that are not retried, and a delete that leaves nothing behind."""

from __future__ import annotations

import subprocess
import time
from typing import Any

import boto3
import pytest
from temporalio.exceptions import ApplicationError

from activities import ec2_provider, providers, ssh
from activities import volumes as volume_activities
from opsflow.errors import ErrorType
from opsflow.messages import Ec2Machine, LaunchInput
from opsflow.spec import Ec2Options, Provider, VolumeSpec
from tests.aws.conftest import AwsEnv

pytestmark = pytest.mark.integration

AMI = "ami-0abc1234def567890"


def machine(token: str = "t1", **extra: Any) -> Ec2Machine:
    fields: dict[str, Any] = {
        "stack": "shop",
        "layer": "web",
        "hostname": "web1",
        "region": "us-east-1",
        "options": Ec2Options(ami=AMI, instance_type="t3.micro", tags={"team": "ops"}),
        "token": token,
    }
    return Ec2Machine.model_validate(fields | extra)


def behind(aws: AwsEnv) -> Any:
    """An EC2 client straight to moto, past the proxy: what really exists."""
    return boto3.client("ec2", region_name="us-east-1", endpoint_url=aws.moto_url)


def instances(aws: AwsEnv) -> dict[str, str]:
    found = behind(aws).describe_instances()["Reservations"]
    return {i["InstanceId"]: i["State"]["Name"] for r in found for i in r["Instances"]}


def live(aws: AwsEnv) -> list[str]:
    return [i for i, state in instances(aws).items() if state != "terminated"]


def addresses(aws: AwsEnv) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = behind(aws).describe_addresses()["Addresses"]
    return found


def volumes(aws: AwsEnv) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = behind(aws).describe_volumes(
        Filters=[{"Name": "tag:opsflow:stack", "Values": ["shop"]}]
    )["Volumes"]
    return found


def test_launch_tags_addresses_and_attaches_then_terminate_leaves_nothing(aws_env: AwsEnv) -> None:
    disks = [VolumeSpec(size=10, mount_point="/data"), VolumeSpec(size=5, mount_point="/logs")]
    made = ec2_provider.launch(machine(elastic_ip=True, volumes=disks))
    assert instances(aws_env)[made.instance_id] == "running"
    described = behind(aws_env).describe_instances(InstanceIds=[made.instance_id])
    tags = {t["Key"]: t["Value"] for t in described["Reservations"][0]["Instances"][0]["Tags"]}
    assert tags["opsflow:stack"] == "shop" and tags["opsflow:layer"] == "web"
    assert tags["opsflow:hostname"] == "web1" and tags["team"] == "ops"
    [address] = addresses(aws_env)
    assert address["InstanceId"] == made.instance_id and made.public_ip == address["PublicIp"]
    attached = {v["VolumeId"]: v["Attachments"][0]["Device"] for v in volumes(aws_env)}
    assert attached == dict(zip(made.volume_ids, ["/dev/sdf", "/dev/sdg"], strict=True))

    ec2_provider.terminate("us-east-1", made)
    assert instances(aws_env)[made.instance_id] == "terminated"
    assert addresses(aws_env) == [] and volumes(aws_env) == []
    ec2_provider.terminate("us-east-1", made)  # again: nothing left, no error


def test_an_address_that_cannot_be_allocated_undoes_the_instance(aws_env: AwsEnv) -> None:
    aws_env.proxy.fail(
        "AllocateAddress",
        "AddressLimitExceeded",
        "The maximum number of addresses has been reached.",
    )
    with pytest.raises(ApplicationError) as raised:
        ec2_provider.launch(machine(elastic_ip=True))
    error = raised.value
    assert error.type == ErrorType.EC2_REFUSED and error.non_retryable
    assert (
        "shop/web1: AWS refused AllocateAddress: AddressLimitExceeded: The maximum" in error.message
    )
    assert live(aws_env) == [] and addresses(aws_env) == []
    assert aws_env.proxy.calls[-1] == "TerminateInstances"


def test_a_failed_attach_undoes_everything_in_reverse_order(aws_env: AwsEnv) -> None:
    aws_env.proxy.fail("AttachVolume", "InvalidParameterValue", "no such device")
    disks = [VolumeSpec(size=10, mount_point="/data")]
    with pytest.raises(
        ApplicationError, match="AttachVolume: InvalidParameterValue: no such device"
    ):
        ec2_provider.launch(machine(elastic_ip=True, volumes=disks))
    calls = aws_env.proxy.calls
    undoing = ["DeleteVolume", "DisassociateAddress", "ReleaseAddress", "TerminateInstances"]
    assert [c for c in calls[calls.index("AttachVolume") :] if c in undoing] == undoing
    assert live(aws_env) == [] and addresses(aws_env) == [] and volumes(aws_env) == []


def test_throttling_is_retried_and_a_bad_ami_is_not(aws_env: AwsEnv) -> None:
    aws_env.proxy.throttle("RunInstances", 2, "RequestLimitExceeded")
    made = ec2_provider.launch(machine())
    assert aws_env.proxy.count("RunInstances") == 3 and live(aws_env) == [made.instance_id]

    aws_env.proxy.reset()
    aws_env.proxy.fail(
        "RunInstances", "InvalidAMIID.NotFound", f"The image id '[{AMI}]' does not exist"
    )
    with pytest.raises(ApplicationError) as raised:
        ec2_provider.launch(machine(hostname="web2", token="t2"))
    assert raised.value.non_retryable and "InvalidAMIID.NotFound" in raised.value.message
    assert aws_env.proxy.count("RunInstances") == 1  # not retried


def test_throttling_past_the_sdk_retries_is_a_retryable_error(aws_env: AwsEnv) -> None:
    aws_env.proxy.throttle("RunInstances", 10, "RequestLimitExceeded")
    with pytest.raises(ApplicationError) as raised:
        ec2_provider.launch(machine())
    assert raised.value.type == ErrorType.EC2_THROTTLED and not raised.value.non_retryable


def test_a_retried_launch_finds_its_instance_and_waits_while_it_is_pending(
    aws_env: AwsEnv, instances_pending_for: Any
) -> None:
    instances_pending_for(2)
    beats: list[float] = []
    started = time.monotonic()
    first = ec2_provider.launch(machine(), heartbeat=lambda: beats.append(time.monotonic()))
    assert time.monotonic() - started >= 2 and beats  # it waited, heartbeating
    again = ec2_provider.launch(machine())  # a retry of the same start
    assert again.instance_id == first.instance_id and live(aws_env) == [first.instance_id]


def test_a_replacement_takes_over_the_lost_instances_address_and_volumes(aws_env: AwsEnv) -> None:
    disks = [VolumeSpec(size=10, mount_point="/data")]
    lost = ec2_provider.launch(machine(elastic_ip=True, volumes=disks))
    ec2_provider.terminate("us-east-1", lost, keep=True)  # a heal: the machine goes, not its data
    assert instances(aws_env)[lost.instance_id] == "terminated"
    [address] = addresses(aws_env)
    assert address["AllocationId"] == lost.allocation_id
    new = ec2_provider.launch(machine(token="heal-1", elastic_ip=True, volumes=disks), kept=lost)
    assert new.instance_id != lost.instance_id
    assert (new.allocation_id, new.volume_ids) == (lost.allocation_id, lost.volume_ids)
    [address] = addresses(aws_env)
    assert address["InstanceId"] == new.instance_id
    [volume] = volumes(aws_env)
    attachment = volume["Attachments"][0]
    assert (attachment["InstanceId"], attachment["Device"]) == (new.instance_id, "/dev/sdf")
    ec2_provider.terminate("us-east-1", new)
    assert live(aws_env) == [] and addresses(aws_env) == [] and volumes(aws_env) == []


def test_an_instance_that_never_answers_ssh_is_released_with_all_it_holds(
    aws_env: AwsEnv, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """The real launch path past AWS: moto has no machine, so its addresses never answer
    SSH; only the console's host key (printed by a real machine at boot) is supplied."""
    host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG0a7QxJ2k3Yp0CwqzYgYF2mhF9x8cdgQ6q5W7G7b7bX"
    monkeypatch.setattr(providers, "_console_host_key", lambda region, instance_id: host_key)
    monkeypatch.delenv(providers.STANDIN_VARIABLE, raising=False)
    monkeypatch.setattr(volume_activities, "READY_SECONDS", 1.0)
    monkeypatch.setattr(ssh, "CONNECT_TIMEOUT", 1)
    key = tmp_path / "ops.pem"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    options = Ec2Options(ami=AMI, instance_type="t3.micro", ssh_key_file=str(key))
    disks = [VolumeSpec(size=10, mount_point="/data")]
    request = LaunchInput(
        stack="shop",
        hostname="web1",
        provider=Provider.EC2,
        ec2=machine(options=options, elastic_ip=True, volumes=disks),
    )
    with pytest.raises(ApplicationError, match="SSH failed"):
        providers._launch_ec2(request)
    assert live(aws_env) == [] and addresses(aws_env) == [] and volumes(aws_env) == []


@pytest.mark.parametrize(
    ("fault", "expected", "retryable"),
    [
        ("refused", ErrorType.EC2_REFUSED, False),
        ("throttled", ErrorType.EC2_THROTTLED, True),
    ],
)
def test_a_console_that_aws_will_not_read_releases_the_instance_with_a_mapped_error(
    aws_env: AwsEnv,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
    fault: str,
    expected: ErrorType,
    retryable: bool,
) -> None:
    """GetConsoleOutput refused or throttled past the SDK's retries: an EC2 error as every
    AWS call reports it, and the launch still undoes what it made (it compensates only on
    an ApplicationError, so a raw botocore error left the instance running)."""
    monkeypatch.delenv(providers.STANDIN_VARIABLE, raising=False)
    if fault == "refused":
        aws_env.proxy.fail("GetConsoleOutput", "UnauthorizedOperation", "not allowed")
    else:
        aws_env.proxy.throttle("GetConsoleOutput", 10, "RequestLimitExceeded")
    options = Ec2Options(ami=AMI, instance_type="t3.micro", ssh_key_file=str(tmp_path / "k"))
    request = LaunchInput(
        stack="shop",
        hostname="web1",
        provider=Provider.EC2,
        ec2=machine(options=options, elastic_ip=True),
    )
    with pytest.raises(ApplicationError) as raised:
        providers._launch_ec2(request)
    error = raised.value
    assert error.type == expected and error.non_retryable is not retryable
    assert "AWS refused GetConsoleOutput" in error.message
    assert live(aws_env) == [] and addresses(aws_env) == []


def test_the_launched_machine_s_facts_come_from_describe_instances(aws_env: AwsEnv) -> None:
    made = ec2_provider.launch(machine(elastic_ip=True))
    facts = ec2_provider.facts("us-east-1", made)
    assert facts.instance_type == "t3.micro" and facts.ami_id == AMI
    assert facts.region == "us-east-1"
    assert facts.availability_zone == made.availability_zone
    assert facts.availability_zone is not None and facts.availability_zone.startswith("us-east-1")
    assert facts.elastic_ip == made.public_ip and facts.public_ip == made.public_ip
    assert facts.architecture == "x86_64"
    assert facts.private_dns_name and facts.created_at is not None
    assert facts.booted_at == facts.created_at
    plain = ec2_provider.launch(machine(hostname="web2", token="t2"))
    assert ec2_provider.facts("us-east-1", plain).elastic_ip is None

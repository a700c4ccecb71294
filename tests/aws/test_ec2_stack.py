"""An ec2 stack end to end: the real dev server, the real worker activities, every AWS call
to a real moto server (through the fault proxy), and a local sshd standing in for each EC2
machine (OPSFLOW_EC2_SSH_STANDIN=local: moto has no machines to SSH into).

Apply starts the instances (tagged, with an Elastic IP and a volume), setup runs, they go
online; delete leaves no instance, address or volume opsflow made (described after). A
start whose address cannot be allocated ends start_failed with AWS's message, and what it
had made is gone. The layer's healing loop publishes its gauges to CloudWatch, and heals
an instance whose machine died even when CloudWatch refuses them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from activities import local_provider
from client.api import OpsflowClient, settled
from client.stackfile import load_stack_file
from opsflow.errors import SpecError
from opsflow.messages import InstanceActionKind, StackDescription
from opsflow.status import InstanceStatus
from tests.aws.conftest import AwsEnv
from tests.helpers import quiet, stop_local_sshds
from worker import build_worker

pytestmark = pytest.mark.integration

STACK = """name: {name}
provider: ec2
region: us-east-1
ec2: {{ami: ami-0abc1234def567890, instance_type: t3.micro, tags: {{team: ops}}}}
cookbooks: {{source: ./cookbooks}}
layers:
  - name: web
    auto_healing: false
    auto_assign_elastic_ip: true
    volumes: [{{size: 8, mount_point: /data}}]
    recipes: {{setup: [web::setup]}}
    instances: [{{hostname: web1}}, {{hostname: web2, ec2: {{instance_type: t3.small}}}}]
"""


@pytest.fixture
def stack_file(tmp_path: Path) -> Path:
    (tmp_path / "cookbooks" / "web").mkdir(parents=True)
    (tmp_path / "cookbooks" / "web" / "setup.sh").write_text('echo up > "$OPSFLOW_ROOT/up"\n')
    name = f"e{uuid.uuid4().hex[:8]}"
    path = tmp_path / "stack.yml"
    path.write_text(STACK.format(name=name))
    return path


@pytest_asyncio.fixture(loop_scope="session")
async def opsflow(
    dev_env: WorkflowEnvironment, aws_env: AwsEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[OpsflowClient]:
    monkeypatch.setenv("OPSFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OPSFLOW_EC2_SSH_STANDIN", "local")
    queue = f"ec2-{uuid.uuid4().hex[:8]}"
    async with build_worker(dev_env.client, task_queue=queue):
        yield OpsflowClient(dev_env.client, task_queue=queue)
    stop_local_sshds(tmp_path / "home")


def moto(aws: AwsEnv) -> Any:
    return boto3.client("ec2", region_name="us-east-1", endpoint_url=aws.moto_url)


def made_by(aws: AwsEnv, stack: str) -> dict[str, list[Any]]:
    """What exists in moto with the stack's opsflow tag."""
    ec2, tag = moto(aws), [{"Name": "tag:opsflow:stack", "Values": [stack]}]
    reservations = ec2.describe_instances(Filters=tag)["Reservations"]
    return {
        "instances": [
            i for r in reservations for i in r["Instances"] if i["State"]["Name"] != "terminated"
        ],
        "addresses": ec2.describe_addresses(Filters=tag)["Addresses"],
        "volumes": ec2.describe_volumes(Filters=tag)["Volumes"],
    }


async def test_an_ec2_stack_comes_online_and_delete_leaves_nothing(
    opsflow: OpsflowClient, aws_env: AwsEnv, stack_file: Path
) -> None:
    spec = load_stack_file(stack_file)
    await opsflow.apply(spec)
    found = await quiet(opsflow, spec.name, timeout=180)
    assert {v.hostname: v.status for v in found.instances} == {
        "web1": InstanceStatus.ONLINE,
        "web2": InstanceStatus.ONLINE,
    }
    assert all((Path(v.root or "") / "up").read_text() == "up\n" for v in found.instances)
    made = made_by(aws_env, spec.name)
    types = {
        next(t["Value"] for t in i["Tags"] if t["Key"] == "opsflow:hostname"): i["InstanceType"]
        for i in made["instances"]
    }
    assert types == {"web1": "t3.micro", "web2": "t3.small"}
    assert len(made["addresses"]) == 2 and len(made["volumes"]) == 2
    assert all(v["Attachments"] for v in made["volumes"])

    await opsflow.delete_stack(spec.name)
    await opsflow.wait_stack_deleted(spec.name, timeout=180)
    assert made_by(aws_env, spec.name) == {"instances": [], "addresses": [], "volumes": []}


async def test_a_start_that_fails_after_launching_is_undone_and_start_failed(
    opsflow: OpsflowClient, aws_env: AwsEnv, stack_file: Path
) -> None:
    aws_env.proxy.fail(
        "AllocateAddress",
        "AddressLimitExceeded",
        "The maximum number of addresses has been reached.",
    )
    spec = load_stack_file(stack_file)
    await opsflow.apply(spec)
    found = await opsflow.wait_instances(spec.name, settled, timeout=180)
    for view in found.instances:
        assert view.status == InstanceStatus.START_FAILED
        assert "AddressLimitExceeded: The maximum number of addresses" in (view.message or "")
    assert made_by(aws_env, spec.name) == {"instances": [], "addresses": [], "volumes": []}
    assert aws_env.proxy.count("AllocateAddress") == 2  # refused: not retried
    await opsflow.delete_stack(spec.name)
    await opsflow.wait_stack_deleted(spec.name, timeout=180)


def test_a_region_aws_does_not_have_is_refused_before_any_aws_call(
    stack_file: Path, aws_env: AwsEnv
) -> None:
    stack_file.write_text(stack_file.read_text().replace("us-east-1", "us-moon-1"))
    with pytest.raises(SpecError, match="region: 'us-moon-1' is not an AWS region"):
        load_stack_file(stack_file)
    assert aws_env.proxy.calls == []


def target_group(aws: AwsEnv) -> str:
    """A real target group in moto, in the default VPC."""
    vpc = moto(aws).describe_vpcs()["Vpcs"][0]["VpcId"]
    elbv2 = boto3.client("elbv2", region_name="us-east-1", endpoint_url=aws.moto_url)
    created = elbv2.create_target_group(
        Name="web", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="instance"
    )
    arn: str = created["TargetGroups"][0]["TargetGroupArn"]
    return arn


def targets(aws: AwsEnv, arn: str) -> set[str]:
    elbv2 = boto3.client("elbv2", region_name="us-east-1", endpoint_url=aws.moto_url)
    health = elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    return {t["Target"]["Id"] for t in health}


async def test_instances_join_the_load_balancer_when_online_and_leave_it_before_stopping(
    opsflow: OpsflowClient, aws_env: AwsEnv, stack_file: Path
) -> None:
    arn = target_group(aws_env)
    text = stack_file.read_text().replace(
        "    auto_assign_elastic_ip: true\n", f"    load_balancer: {arn}\n"
    )
    stack_file.write_text(text)
    spec = load_stack_file(stack_file)
    await opsflow.apply(spec)
    await quiet(opsflow, spec.name, timeout=180)
    ids = {i["InstanceId"] for i in made_by(aws_env, spec.name)["instances"]}
    assert targets(aws_env, arn) == ids and len(ids) == 2
    await opsflow.instance_action(spec.name, "web1", InstanceActionKind.STOP)
    found = await opsflow.wait_instances(
        spec.name, lambda v: v is not None and v.status == "stopped", ["web1"], timeout=180
    )
    assert next(v for v in found.instances if v.hostname == "web1").status == "stopped"
    calls = aws_env.proxy.calls
    assert calls.index("DeregisterTargets") < calls.index("StopInstances")
    assert len(targets(aws_env, arn)) == 1
    await opsflow.delete_stack(spec.name)
    await opsflow.wait_stack_deleted(spec.name, timeout=180)
    assert targets(aws_env, arn) == set()


async def test_a_target_group_that_does_not_exist_fails_the_start_and_undoes_it(
    opsflow: OpsflowClient, aws_env: AwsEnv, stack_file: Path
) -> None:
    missing = (
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/gone/0123456789abcdef"
    )
    stack_file.write_text(
        stack_file.read_text().replace(
            "    volumes:", f"    load_balancer: {missing}\n    volumes:"
        )
    )
    spec = load_stack_file(stack_file)
    await opsflow.apply(spec)
    found = await opsflow.wait_instances(spec.name, settled, timeout=180)
    for view in found.instances:
        assert view.status == InstanceStatus.START_FAILED
        assert (view.message or "").startswith("load balancer: ")
        assert "TargetGroupNotFound" in (view.message or "")
    assert made_by(aws_env, spec.name) == {"instances": [], "addresses": [], "volumes": []}
    await opsflow.delete_stack(spec.name)
    await opsflow.wait_stack_deleted(spec.name, timeout=180)


async def test_a_failed_setup_with_on_setup_failure_terminate_leaves_nothing(
    opsflow: OpsflowClient, aws_env: AwsEnv, stack_file: Path
) -> None:
    (stack_file.parent / "cookbooks" / "web" / "setup.sh").write_text("echo broken >&2; exit 3\n")
    text = stack_file.read_text().replace(
        "    auto_healing: false\n", "    auto_healing: false\n    on_setup_failure: terminate\n"
    )
    stack_file.write_text(text)
    spec = load_stack_file(stack_file)
    await opsflow.apply(spec)
    found = await opsflow.wait_instances(spec.name, settled, timeout=180)
    for view in found.instances:
        assert view.status == InstanceStatus.SETUP_FAILED
        assert "exit code 3" in (view.message or "")
        assert "machine terminated: on_setup_failure is terminate" in (view.message or "")
    assert made_by(aws_env, spec.name) == {"instances": [], "addresses": [], "volumes": []}
    await opsflow.delete_stack(spec.name)
    await opsflow.wait_stack_deleted(spec.name, timeout=180)


# ---- the healing loop's CloudWatch gauges ------------------------------------------------

HEALING_OFF = "    auto_healing: false\n"
HEALING_ON = "    health_check: {interval: 1s, grace_period: 0s}\n"
GAUGES = ("HealingEvents", "InstancesOnline", "InstancesTotal")


def cloudwatch(aws: AwsEnv) -> Any:
    return boto3.client("cloudwatch", region_name="us-east-1", endpoint_url=aws.moto_url)


def latest_gauges(aws: AwsEnv, stack: str) -> dict[str, float]:
    """The newest value of each of the stack's web layer gauges in moto (by metric name)."""
    dims = [{"Name": "Stack", "Value": stack}, {"Name": "Layer", "Value": "web"}]
    now = datetime.now(UTC)
    answer = cloudwatch(aws).get_metric_data(
        MetricDataQueries=[
            {
                "Id": name.lower(),
                "MetricStat": {
                    "Metric": {"Namespace": "opsflow", "MetricName": name, "Dimensions": dims},
                    "Period": 60,
                    "Stat": "Maximum",
                },
            }
            for name in GAUGES
        ],
        StartTime=now - timedelta(minutes=10),
        EndTime=now + timedelta(minutes=1),
        ScanBy="TimestampDescending",
    )
    names = {name.lower(): name for name in GAUGES}
    return {names[r["Id"]]: r["Values"][0] for r in answer["MetricDataResults"] if r["Values"]}


async def test_the_healing_loop_publishes_the_layer_s_gauges_to_cloudwatch(
    opsflow: OpsflowClient, aws_env: AwsEnv, stack_file: Path
) -> None:
    spec = load_stack_file(stack_file)
    await opsflow.apply(spec)
    await quiet(opsflow, spec.name, timeout=180)
    assert cloudwatch(aws_env).list_metrics(Namespace="opsflow")["Metrics"] == []

    stack_file.write_text(stack_file.read_text().replace(HEALING_OFF, HEALING_ON))
    await opsflow.apply(load_stack_file(stack_file))  # the loop starts: gauges at once
    for _ in range(100):
        if len(latest_gauges(aws_env, spec.name)) == len(GAUGES):
            break
        await asyncio.sleep(0.2)
    listed = cloudwatch(aws_env).list_metrics(Namespace="opsflow")["Metrics"]
    assert sorted(m["MetricName"] for m in listed) == sorted(GAUGES)
    assert all(
        {d["Name"]: d["Value"] for d in m["Dimensions"]} == {"Stack": spec.name, "Layer": "web"}
        for m in listed
    )
    assert latest_gauges(aws_env, spec.name) == {
        "HealingEvents": 0.0,
        "InstancesOnline": 2.0,
        "InstancesTotal": 2.0,
    }
    await opsflow.delete_stack(spec.name)
    await opsflow.wait_stack_deleted(spec.name, timeout=180)


async def healed(opsflow: OpsflowClient, stack: str, timeout: float) -> StackDescription:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await opsflow.describe(stack)
        if any(e.kind == "healed" for e in found.events):
            return found
        assert asyncio.get_running_loop().time() < deadline, found.events[-5:]
        await asyncio.sleep(0.5)


async def test_a_refused_publish_does_not_stop_healing_an_ec2_instance(
    opsflow: OpsflowClient, aws_env: AwsEnv, stack_file: Path
) -> None:
    aws_env.proxy.fail("PutMetricData", "AccessDenied", "not allowed to put metrics")
    stack_file.write_text(stack_file.read_text().replace(HEALING_OFF, HEALING_ON))
    spec = load_stack_file(stack_file)
    await opsflow.apply(spec)
    before = await quiet(opsflow, spec.name, timeout=180)
    lost = next(v.ec2_instance_id for v in before.instances if v.hostname == "web1")

    assert local_provider.kill(spec.name, "web1")  # its (stand-in) machine dies
    found = await healed(opsflow, spec.name, timeout=180)
    web1 = next(v for v in found.instances if v.hostname == "web1")
    assert web1.status == InstanceStatus.ONLINE and web1.ec2_instance_id != lost
    refused = [e for e in found.events if e.kind == "gauges_failed"]
    assert len(refused) == 1
    assert (
        "AccessDenied" in refused[0].message and "not allowed to put metrics" in refused[0].message
    )
    assert aws_env.proxy.count("PutMetricData") >= 1
    assert cloudwatch(aws_env).list_metrics(Namespace="opsflow")["Metrics"] == []
    await opsflow.delete_stack(spec.name)
    await opsflow.wait_stack_deleted(spec.name, timeout=180)

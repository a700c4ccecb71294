"""Configuration snapshots: a run's context derived from a stored snapshot is what the
stack's query answers for the same state; and how big a snapshot is."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsflow import snapshots
from opsflow.attributes import stack_configuration
from opsflow.messages import (
    AppAction,
    AppRelease,
    InstanceView,
    RecipeRunInput,
    ResolvedCookbooks,
    RunContext,
    SshEndpoint,
)
from opsflow.spec import ChefSpec, ConfigurationManager, Provider, StackSpec
from opsflow.starts import recipes_for
from opsflow.status import InstanceStatus
from opsflow.targets import manager_of
from tests.opsflow.opsworks_fixture import APP1, INSTANCES, RDS, SPEC

COOKBOOKS = ResolvedCookbooks(
    directory="/cache/cookbooks/abc", digest="abc", description="./cookbooks"
)


def spec(instances: int = 3) -> StackSpec:
    return StackSpec.model_validate(
        {
            "name": "shop",
            "custom_json": {"shop": {"greeting": "hello", "port": 80}},
            "layers": [
                {
                    "name": "web",
                    "custom_json": {"shop": {"port": 8080}},
                    "recipes": {"setup": ["web::setup"], "configure": ["web::configure"]},
                    "instances": [{"hostname": f"web{i}"} for i in range(1, instances + 1)],
                },
                {
                    "name": "db",
                    "configuration_manager": "puppet",
                    "recipes": {"configure": ["db::configure"]},
                    "instances": [{"hostname": "db1"}],
                },
            ],
        }
    )


def view(hostname: str, layer: str, status: InstanceStatus, port: int = 2200) -> InstanceView:
    """A view with everything the stack keeps (SSH, root, times, messages)."""
    return InstanceView(
        hostname=hostname,
        layers=[layer],
        status=status,
        provider=Provider.LOCAL,
        private_ip=f"10.0.0.{port % 250}",
        root=f"/r/{hostname}",
        ssh=SshEndpoint(
            host="127.0.0.1", port=port, user="opsflow", key_file="/k/id", host_key="ssh-ed25519 A"
        ),
        message="last run failed" if status == InstanceStatus.SETUP_FAILED else None,
        updated_at=datetime(2026, 1, 2, tzinfo=UTC),
    )


def queried(
    stack: StackSpec, instances: list[InstanceView], this: InstanceView, event: str
) -> RunContext:
    """What the stack's run_context query answered before snapshots, for this state."""
    return RunContext(
        configuration=stack_configuration(stack, instances, this, event),
        recipes=recipes_for(stack, this.layers, event),
        configuration_manager=manager_of(stack, this),
        cookbooks_dir=COOKBOOKS.directory,
        cookbooks_digest=COOKBOOKS.digest,
    )


STATUSES = st.sampled_from(list(InstanceStatus))


@given(
    statuses=st.lists(STATUSES, min_size=4, max_size=4),
    own=STATUSES,
    event=st.sampled_from(["setup", "configure", "deploy", "shutdown", "undeploy"]),
    which=st.integers(min_value=0, max_value=3),
)
def test_context_from_a_stored_snapshot_is_what_the_query_answered(
    statuses: list[InstanceStatus], own: InstanceStatus, event: str, which: int
) -> None:
    stack = spec()
    hosts = [("web1", "web"), ("web2", "web"), ("web3", "web"), ("db1", "db")]
    instances = [
        view(h, layer, status, 2200 + i)
        for i, ((h, layer), status) in enumerate(zip(hosts, statuses, strict=True))
    ]
    # The run's own view is fresher than the stack's (it has moved on since).
    this = instances[which].model_copy(update={"status": own, "private_ip": "10.9.9.9"})
    snapshot = snapshots.configuration_snapshot(stack, instances, COOKBOOKS, generation=7)
    stored = snapshots.decode(snapshots.encode(snapshot))
    assert stored == snapshot
    assert snapshots.run_context(stored, this, event) == queried(stack, instances, this, event)


def test_the_same_state_gives_the_same_bytes_and_no_ssh_details() -> None:
    stack = spec()
    instances = [
        view("web1", "web", InstanceStatus.ONLINE),
        view("db1", "db", InstanceStatus.ONLINE),
    ]
    one = snapshots.encode(snapshots.configuration_snapshot(stack, instances, COOKBOOKS, 3))
    other = snapshots.encode(
        snapshots.configuration_snapshot(stack, list(reversed(instances)), COOKBOOKS, 3)
    )
    assert one == other
    assert b"ssh-ed25519" not in one and b"/r/web1" not in one


def test_puppet_layer_and_recipes_come_from_the_snapshot() -> None:
    stack = spec()
    this = view("db1", "db", InstanceStatus.ONLINE)
    snapshot = snapshots.configuration_snapshot(stack, [this], None, 1)
    context = snapshots.run_context(snapshot, this, "configure")
    assert context.configuration_manager == ConfigurationManager.PUPPET
    assert context.recipes == ["db::configure"]
    assert context.cookbooks_dir is None


@pytest.mark.parametrize("count", [200, 1000])
def test_snapshot_size(count: int) -> None:
    """The figure the issue asks for: bytes of one stack-wide snapshot of `count` online
    instances (one layer, declared in the stack file), printed with `-s`."""
    stack = spec(count)
    instances = [view(f"web{i}", "web", InstanceStatus.ONLINE, 2200 + i) for i in range(count)]
    data = snapshots.encode(snapshots.configuration_snapshot(stack, instances, COOKBOOKS, 1))
    print(
        f"snapshot of {count} instances: {len(data)} bytes ({len(data) / count:.0f} per instance)"
    )
    assert len(data) < 400 * count  # a few hundred bytes an instance, never their whole views


def test_a_snapshot_keeps_the_machine_facts_and_a_run_sees_them_as_opsworks_did() -> None:
    data = snapshots.encode(snapshots.configuration_snapshot(SPEC, INSTANCES, None, 2, RDS))
    stored = snapshots.decode(data)
    member = next(v for v in stored.instances if v.hostname == "app1")
    assert member.instance_type == "t3.small" and member.ec2_instance_id == APP1.ec2_instance_id
    assert member.created_at == APP1.created_at and member.root is None and member.ssh is None
    assert stored.rds == RDS
    context = snapshots.run_context(stored, APP1, "configure")
    layer = context.configuration["opsworks"]["layers"]["app"]["instances"]
    assert layer["app1"]["instance_type"] == "t3.small"
    assert context.configuration["deploy"]["shop"]["database"]["host"] == RDS["orders"].address


def test_chef_12_runs_get_data_bags_with_the_run_s_command_and_custom_json() -> None:
    chef12 = SPEC.model_copy(update={"chef": ChefSpec(version="12")})
    snapshot = snapshots.configuration_snapshot(chef12, INSTANCES, None, 1)
    run = RecipeRunInput(
        stack="shop",
        hostname="app1",
        event="deploy",
        run_id="r1",
        command_id="cmd-9",
        ssh=SshEndpoint(host="h", port=22, user="root", key_file="/k", host_key="ssh-ed25519 A"),
        root="/",
        instance=APP1,
        app=AppRelease(app="shop", action=AppAction.DEPLOY, release="0001-x"),
        custom_json={"shop": {"greeting": "from the command"}},
    )
    context = snapshots.run_context(snapshot, APP1, "deploy", run=run)
    assert context.data_bags is not None
    assert context.data_bags["aws_opsworks_app"]["shop"]["deploy"] is True
    assert set(context.data_bags["aws_opsworks_command"]) == {"cmd-9"}
    assert context.configuration["opsworks"]["deployment"] == "cmd-9"
    assert context.configuration["shop"]["greeting"] == "from the command"
    # Chef 11 (the default) has none, nor has a shell instance of a Chef 12 stack.
    assert (
        snapshots.run_context(
            snapshots.configuration_snapshot(SPEC, INSTANCES, None, 1), APP1, "deploy"
        ).data_bags
        is None
    )
    shell = chef12.model_copy(update={"configuration_manager": ConfigurationManager.SHELL})
    assert (
        snapshots.run_context(
            snapshots.configuration_snapshot(shell, INSTANCES, None, 1), APP1, "deploy"
        ).data_bags
        is None
    )

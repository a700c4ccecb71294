"""Registered hosts for real: the dev server, the real worker, the real CLI, and a real sshd
as the existing host (a local instance of another stack, which opsflow is not told about:
from the registering stack's point of view it is just a machine at 127.0.0.1:PORT)."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from activities import local_provider, ssh
from client.api import OpsflowClient
from opsflow.messages import LaunchInput, LaunchResult, MachineInput, StackDescription
from opsflow.spec import Provider
from opsflow.status import InstanceStatus
from tests.helpers import quiet, wait_for_event
from tests.integration.conftest import make_stack_dir, opsflow_cli

pytestmark = pytest.mark.integration

OUTSIDE = "outside"  # the stack whose local instances play the existing hosts
RECIPES = {
    "web::setup": 'echo "setup $OPSFLOW_INSTANCE" >> "$OPSFLOW_ROOT/setup.log"\n',
    "web::configure": 'echo configure >> "$OPSFLOW_ROOT/configure.log"\n',
    "web::shutdown": 'echo "shutdown $OPSFLOW_INSTANCE" >> "$OPSFLOW_ROOT/shutdown.log"\n',
}
LAYER = """layers:
  - name: web
    health_check: {interval: 1s, unhealthy_threshold: 2, timeout: 2s, grace_period: 0s}
    recipes: {setup: [web::setup], configure: [web::configure], shutdown: [web::shutdown]}
"""


@pytest.fixture
def address(dev_env: WorkflowEnvironment) -> str:
    return dev_env.client.service_client.config.target_host


@pytest.fixture
def existing_hosts() -> Iterator[list[str]]:
    """Hostnames of `outside` machines started by the test, stopped at its end."""
    started: list[str] = []
    yield started
    for hostname in started:
        local_provider.terminate(
            MachineInput(stack=OUTSIDE, hostname=hostname, provider=Provider.LOCAL)
        )


def boot(existing_hosts: list[str], hostname: str) -> LaunchResult:
    """An existing machine: an sshd with its own host key, a key that logs in, a root."""
    if hostname not in existing_hosts:
        existing_hosts.append(hostname)
    return local_provider.launch(
        LaunchInput(stack=OUTSIDE, hostname=hostname, provider=Provider.LOCAL)
    )


def answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def fingerprint(host_key: str) -> str:
    """What ssh-keygen says of the key (the fingerprint an operator compares)."""
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-f", "-"], input=host_key, capture_output=True, text=True, check=True
    )
    return listed.stdout.split()[1]


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def status(found: StackDescription, hostname: str) -> InstanceStatus:
    return next(v.status for v in found.instances if v.hostname == hostname)


def register_args(stack: str, machine: LaunchResult, root: Path, *extra: str) -> list[str]:
    return [
        "instance",
        "register",
        stack,
        "--layer",
        "web",
        "--host",
        machine.ssh.host,
        "--port",
        str(machine.ssh.port),
        "--user",
        machine.ssh.user,
        "--key-file",
        machine.ssh.key_file,
        "--root",
        str(root),
        *extra,
    ]


async def test_a_registered_host_is_set_up_watched_and_handed_back_untouched(
    opsflow: OpsflowClient,
    address: str,
    task_queue: str,
    tmp_path: Path,
    existing_hosts: list[str],
) -> None:
    # A second layer: a registered host may join several, as on OpsWorks.
    stack_file = make_stack_dir(
        tmp_path,
        "regd",
        LAYER + "    instances: [{hostname: web1}]\n  - name: cache\n"
        "    recipes: {setup: [cache::setup]}\n",
        {
            **RECIPES,
            "cache::setup": 'echo "cache $OPSFLOW_INSTANCE" >> "$OPSFLOW_ROOT/setup.log"\n',
        },
    )
    applied = await opsflow_cli(["stack", "apply", str(stack_file), "--wait"], address, task_queue)
    assert applied.returncode == 0, applied.stderr
    before = await quiet(opsflow, "regd")
    web1_root = Path(next(v.root for v in before.instances if v.root))
    configured = len(lines(web1_root / "configure.log"))
    machine = boot(existing_hosts, "legacy1")
    root = tmp_path / "legacy root"

    registered = await opsflow_cli(
        register_args("regd", machine, root, "--layer", "cache", "--hostname", "legacy1", "--wait"),
        address,
        task_queue,
    )
    assert registered.returncode == 0, registered.stderr
    assert "instance legacy1 registered in layers web, cache" in registered.stdout
    # The key it was first seen with is pinned, and shown as ssh-keygen shows it.
    assert fingerprint(machine.ssh.host_key) in registered.stdout
    assert "legacy1: online" in registered.stdout
    found = await quiet(opsflow, "regd")
    legacy = next(v for v in found.instances if v.hostname == "legacy1")
    assert (legacy.provider, legacy.status, legacy.from_file) == (
        Provider.REGISTERED,
        InstanceStatus.ONLINE,
        False,
    )
    assert legacy.ssh is not None and legacy.ssh.host_key == machine.ssh.host_key
    assert lines(root / "setup.log") == ["setup legacy1", "cache legacy1"]  # layer order
    assert legacy.layers == ["web", "cache"]
    assert len(lines(web1_root / "configure.log")) > configured  # a new member: configure

    # Its machine crashes: opsflow cannot replace a host it does not own, says so, and
    # takes it back when it answers again (same address, same host key).
    assert local_provider.kill(OUTSIDE, "legacy1")
    lost = await wait_for_event(opsflow, "regd", "heal_not_possible", "legacy1", timeout=60)
    assert [e.kind for e in lost.events if e.hostname == "legacy1" and "heal" in e.kind] == [
        "health_detected",
        "heal_not_possible",
    ]
    assert status(await opsflow.describe("regd"), "legacy1") == InstanceStatus.CONNECTION_LOST
    again = boot(existing_hosts, "legacy1")
    assert again.ssh.port == machine.ssh.port
    await wait_for_event(opsflow, "regd", "health_recovered", "legacy1", timeout=60)
    found = await quiet(opsflow, "regd")
    assert status(found, "legacy1") == InstanceStatus.ONLINE
    assert lines(root / "setup.log") == ["setup legacy1", "cache legacy1"]  # no new setup

    # Stop runs the shutdown recipes and leaves the machine running; delete deregisters.
    stopped = await opsflow_cli(
        ["instance", "stop", "regd", "legacy1", "--wait"], address, task_queue
    )
    assert stopped.returncode == 0, stopped.stderr
    assert "legacy1: stopped" in stopped.stdout
    assert lines(root / "shutdown.log") == ["shutdown legacy1"]
    assert answers(machine.ssh.port)
    deleted = await opsflow_cli(
        ["instance", "delete", "regd", "legacy1", "--wait"], address, task_queue
    )
    assert deleted.returncode == 0, deleted.stderr
    found = await quiet(opsflow, "regd")
    assert [v.hostname for v in found.instances] == ["web1"]
    assert answers(machine.ssh.port)
    assert lines(root / "setup.log") == ["setup legacy1", "cache legacy1"]  # owner's again

    await opsflow.delete_stack("regd")
    await opsflow.wait_stack_deleted("regd", timeout=120)


async def test_a_host_that_cannot_be_registered_leaves_nothing_behind(
    opsflow: OpsflowClient,
    address: str,
    task_queue: str,
    tmp_path: Path,
    existing_hosts: list[str],
) -> None:
    stack_file = make_stack_dir(tmp_path, "regbad", LAYER, RECIPES)
    assert (
        await opsflow_cli(["stack", "apply", str(stack_file)], address, task_queue)
    ).returncode == 0
    machine = boot(existing_hosts, "legacy2")
    other = boot(existing_hosts, "legacy3")
    root = tmp_path / "root"

    closed = machine.model_copy(update={"ssh": machine.ssh.model_copy(update={"port": 1})})
    unreachable = await opsflow_cli(
        register_args("regbad", closed, root, "--hostname", "legacy2"), address, task_queue
    )
    assert unreachable.returncode == 1
    assert "legacy2: " in unreachable.stderr and "SSH failed" in unreachable.stderr
    assert "nothing changed" in unreachable.stderr

    wrong_key = await opsflow_cli(
        register_args(
            "regbad", machine, root, "--hostname", "legacy2", "--host-key", other.ssh.host_key
        ),
        address,
        task_queue,
    )
    assert wrong_key.returncode == 1
    assert "host key does not match" in wrong_key.stderr

    no_key = await opsflow_cli(
        [*register_args("regbad", machine, root, "--hostname", "legacy2"), "--key-file", "/nope"],
        address,
        task_queue,
    )
    assert no_key.returncode == 2
    assert "--key-file: '/nope' is not a file" in no_key.stderr
    (tmp_path / "notes.txt").write_text("not a key\n")
    not_a_key = await opsflow_cli(
        [
            *register_args("regbad", machine, root, "--hostname", "legacy2"),
            *("--key-file", str(tmp_path / "notes.txt")),
        ],
        address,
        task_queue,
    )
    assert not_a_key.returncode == 2
    assert (
        f"--key-file: {tmp_path / 'notes.txt'} is not an unencrypted SSH private key"
        in not_a_key.stderr
    )

    no_name = await opsflow_cli(register_args("regbad", machine, root), address, task_queue)
    assert no_name.returncode == 2
    assert "--hostname: needed" in no_name.stderr

    bad_root = await opsflow_cli(
        [*register_args("regbad", machine, root, "--hostname", "legacy2"), "--root", "srv"],
        address,
        task_queue,
    )
    assert bad_root.returncode == 2
    assert "--root: 'srv' must be an absolute path" in bad_root.stderr

    no_layer = await opsflow_cli(
        [*register_args("regbad", machine, root, "--hostname", "legacy2"), "--layer", "db"],
        address,
        task_queue,
    )
    assert no_layer.returncode == 2
    assert "has no layer 'db'" in no_layer.stderr

    found = await opsflow.describe("regbad")
    assert found.instances == []
    assert not root.exists()  # not even its root was made on the host
    await opsflow.delete_stack("regbad")
    await opsflow.wait_stack_deleted("regbad", timeout=120)


async def test_a_registered_stack_file_brings_its_hosts_in_and_refuses_launching(
    opsflow: OpsflowClient,
    address: str,
    task_queue: str,
    tmp_path: Path,
    existing_hosts: list[str],
) -> None:
    machine = boot(existing_hosts, "legacy4")
    shutil.copy(machine.ssh.key_file, tmp_path / "deploy_key")
    (tmp_path / "deploy_key").chmod(0o600)
    root = tmp_path / "legacy4 root"

    def instance(hostname: str, port: int) -> str:
        return (
            f"      - hostname: {hostname}\n"
            f"        ssh: {{host: 127.0.0.1, port: {port}, user: {machine.ssh.user}, "
            f"key_file: deploy_key, root: '{root}'}}\n"
        )

    body = (
        "provider: registered\n"
        + LAYER
        + "    instances:\n"
        + instance("legacy4", machine.ssh.port)
    )
    stack_file = make_stack_dir(tmp_path, "regfile", body, RECIPES)
    applied = await opsflow_cli(["stack", "apply", str(stack_file), "--wait"], address, task_queue)
    assert applied.returncode == 0, applied.stderr
    found = await quiet(opsflow, "regfile")
    legacy = next(v for v in found.instances if v.hostname == "legacy4")
    assert (legacy.provider, legacy.status) == (Provider.REGISTERED, InstanceStatus.ONLINE)
    assert legacy.ssh is not None and legacy.ssh.host_key == machine.ssh.host_key
    assert lines(root / "setup.log") == ["setup legacy4"]

    # The key travelled sealed: with the file gone and no open connection, the worker
    # still logs in (from the key in memory) to run a command.
    assert legacy.ssh.key is not None and legacy.ssh.key_file == str(tmp_path / "deploy_key")
    (tmp_path / "deploy_key").unlink()
    ssh.close_all()
    configured = len(lines(root / "configure.log"))
    ran = await opsflow_cli(["run", "regfile", "configure", "--wait"], address, task_queue)
    assert ran.returncode == 0, ran.stderr
    assert len(lines(root / "configure.log")) == configured + 1
    shutil.copy(machine.ssh.key_file, tmp_path / "deploy_key")  # the file is read again below

    # A host in the file that does not answer: the apply fails and nothing changes.
    stack_file.write_text(stack_file.read_text() + instance("legacy5", 1))
    refused = await opsflow_cli(["stack", "apply", str(stack_file)], address, task_queue)
    assert refused.returncode == 1
    assert "legacy5: " in refused.stderr and "nothing changed" in refused.stderr
    found = await opsflow.describe("regfile")
    assert [v.hostname for v in found.instances] == ["legacy4"]

    added = await opsflow_cli(
        ["instance", "add", "regfile", "--layer", "web", "--hostname", "web9"], address, task_queue
    )
    assert added.returncode == 2
    assert "provider registered" in added.stderr and "opsflow instance register" in added.stderr

    await opsflow.delete_stack("regfile")
    await opsflow.wait_stack_deleted("regfile", timeout=120)
    assert answers(machine.ssh.port)  # deleting the stack hands the host back running
    assert lines(root / "shutdown.log") == ["shutdown legacy4"]

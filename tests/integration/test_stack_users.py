"""Stack users on isolated machines, for real: after start each user logs in over SSH with
its own key where its layers say, `sudo -n` works only where granted; a user removed from
the file is removed at the next configure, and an account opsflow did not create is
never deleted (only its stack key and sudo go)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from client.api import OpsflowClient
from opsflow.messages import InstanceView
from tests.integration.conftest import opsflow_cli
from tests.integration.isolated import machines, on_machine

pytestmark = pytest.mark.integration
__all__ = ["machines"]  # the fixture, used by name

STACK = """name: users
cookbooks: {source: ./cookbooks}
layers:
  - name: a
    auto_healing: false
    instances: [{hostname: a1}]
  - name: b
    auto_healing: false
    instances: [{hostname: b1}]
"""


@pytest.fixture
def address(dev_env: WorkflowEnvironment) -> str:
    return dev_env.client.service_client.config.target_host


def keygen(tmp_path: Path, name: str) -> Path:
    key = tmp_path / f"{name}_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@test", "-f", str(key)],
        check=True,
    )
    return key


def user(name: str, key: Path, sudo: bool = False, layers: str = "") -> str:
    public = key.with_suffix(".pub").read_text().strip()
    text = f"  - name: {name}\n    ssh_public_key: {public}\n    sudo: {str(sudo).lower()}\n"
    return text + (f"    layers: [{layers}]\n" if layers else "")


def login(view: InstanceView, name: str, key: Path, command: str) -> int:
    """`command` run as `name` logged in over SSH with its own key; its exit code (255:
    the login itself failed)."""
    assert view.private_ip is not None
    done = subprocess.run(
        [
            "ssh",
            "-i",
            str(key),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "BatchMode=yes",
            f"{name}@{view.private_ip}",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.returncode


async def test_users_log_in_with_their_keys_where_their_layers_say_and_leave_with_the_file(
    opsflow: OpsflowClient, address: str, task_queue: str, tmp_path: Path, machines: str
) -> None:
    (tmp_path / "cookbooks").mkdir()
    alice, bob, carol = (keygen(tmp_path, n) for n in ("alice", "bob", "carol"))
    path = tmp_path / "stack.yml"

    async def apply(users: str) -> dict[str, InstanceView]:
        path.write_text(STACK + (f"users:\n{users}" if users else ""))
        applied = await opsflow_cli(["stack", "apply", str(path), "--wait"], address, task_queue)
        assert applied.returncode == 0, applied.stderr
        found = await opsflow.describe("users")
        return {v.hostname: v for v in found.instances}

    async def configure() -> None:
        ran = await opsflow_cli(["run", "users", "configure", "--wait"], address, task_queue)
        assert ran.returncode == 0, ran.stderr + ran.stdout

    views = await apply(user("alice", alice, sudo=True) + user("bob", bob, layers="b"))
    a1, b1 = views["a1"], views["b1"]
    for view in (a1, b1):
        assert login(view, "alice", alice, "sudo -n true") == 0
    assert login(b1, "bob", bob, "id -un") == 0
    assert login(b1, "bob", bob, "sudo -n true") == 1  # logged in, sudo refused
    assert login(a1, "bob", bob, "true") == 255  # not on layer a
    assert on_machine(b1, "stat -c '%a %U' /etc/sudoers.d/opsflow-alice") == "440 root\n"
    assert on_machine(b1, "stat -c '%a %U' ~alice/.ssh ~alice/.ssh/authorized_keys") == (
        "700 alice\n600 alice\n"
    )

    # carol's account exists before the file names her; she keeps her own key line.
    on_machine(
        b1,
        "useradd -m -s /bin/bash -p '*' carol && mkdir -m 700 ~carol/.ssh && "
        "echo 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOwnkeyOfCarolsOwn own' > "
        "~carol/.ssh/authorized_keys && chown -R carol: ~carol/.ssh",
    )
    views = await apply(user("bob", bob, layers="b") + user("carol", carol, sudo=True, layers="b"))
    await configure()
    a1, b1 = views["a1"], views["b1"]
    for view in (a1, b1):
        assert login(view, "alice", alice, "true") == 255
        assert on_machine(view, "id alice >/dev/null 2>&1 || echo gone") == "gone\n"
        sudoers = on_machine(view, "ls /etc/sudoers.d | grep '^opsflow-' || true").split()
        assert sudoers == (["opsflow-carol"] if view is b1 else [])
    # Her home is kept for its data, root's from now on.
    assert on_machine(a1, "stat -c '%a %U' /home/alice") == "700 root\n"
    assert login(b1, "carol", carol, "sudo -n true") == 0
    assert login(b1, "bob", bob, "true") == 0
    assert "CarolsOwn own" in on_machine(b1, "cat ~carol/.ssh/authorized_keys")

    views = await apply(user("bob", bob, layers="b"))
    await configure()
    b1 = views["b1"]
    assert login(b1, "carol", carol, "true") == 255
    assert on_machine(b1, "id -un carol") == "carol\n"  # opsflow did not create her
    assert on_machine(b1, "cat ~carol/.ssh/authorized_keys") == (
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOwnkeyOfCarolsOwn own\n"
    )
    assert on_machine(b1, "test -e /etc/sudoers.d/opsflow-carol || echo gone") == "gone\n"
    assert login(b1, "bob", bob, "true") == 0
    # What opsflow manages there now: bob alone, in a root-only directory.
    state = on_machine(b1, "ls /var/lib/opsflow/users; stat -c %a /var/lib/opsflow/users")
    assert state == "bob\n700\n"

    # Idempotent: converged again, nothing changes, and the run's log says so.
    await configure()
    newest = on_machine(b1, 'cd /var/lib/opsflow/runs && cat "$(ls -1t | head -1)/log"')
    assert "opsflow: users: up to date: bob\n" in newest
    assert "created" not in newest and "written" not in newest

    # sudo granted where no sudo is installed (moved aside on b1's own disk): the run fails
    # naming the user, and nothing changes.
    on_machine(b1, "mv /usr/bin/sudo /usr/bin/sudo.off")
    await apply(user("bob", bob, sudo=True, layers="b"))
    ran = await opsflow_cli(["run", "users", "configure", "--wait"], address, task_queue)
    assert ran.returncode != 0
    assert "users: bob has sudo: true, but sudo is not installed" in ran.stdout + ran.stderr
    assert on_machine(b1, "test -e /etc/sudoers.d/opsflow-bob || echo none") == "none\n"

    deleted = await opsflow_cli(["stack", "delete", "users", "--wait"], address, task_queue)
    assert deleted.returncode == 0, deleted.stderr

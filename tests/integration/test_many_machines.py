"""The many-machines drill: the CLI and two real workers, each a process that cannot see
the others' files (tests/integration/machines.py: its own mount namespace with the others'
directories hidden), one Temporal, one artifact store (a directory every machine mounts,
and a real moto server speaking S3), registered hosts that are real sshds.

A stack whose cookbooks and app are directories next to the stack file, on the CLI's
machine only, is applied and deployed three times; during each deploy one worker is
SIGKILLed mid-run and started again. Every deploy must succeed, each host's deploy recipe
must have run exactly once per release, and `command log` must work from the CLI's side.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3  # type: ignore[import-untyped, unused-ignore]
import pytest
from temporalio.testing import WorkflowEnvironment

from activities import local_provider
from opsflow.messages import LaunchInput, LaunchResult, MachineInput
from opsflow.secrets import new_key
from opsflow.spec import Provider
from tests.aws.conftest import moto_server
from tests.integration.conftest import REPO
from tests.integration.machines import namespaces_work, on_another_machine, start

__all__ = ["moto_server"]

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not namespaces_work(), reason="other machines need mount namespaces"),
]

HOSTS = ("alpha", "beta", "gamma")
OUTSIDE = "mm-hosts"  # the stack whose local instances play the registered machines
DEPLOYS = 3
RECIPES = {
    "web/setup.sh": 'echo "setup $OPSFLOW_INSTANCE" >> "$OPSFLOW_ROOT/setup.log"\n',
    # Written before the sleep: a run started twice would leave its release twice.
    "web/deploy.sh": (
        'echo "$OPSFLOW_RELEASE $(cat "$OPSFLOW_RELEASE_PATH/index.html")"'
        ' >> "$OPSFLOW_ROOT/deploys.log"\n'
        'echo "deployed $(cat "$OPSFLOW_RELEASE_PATH/index.html") on $OPSFLOW_INSTANCE"\n'
        "sleep 4\n"
    ),
    "web/shared.sh": "echo shared\n",
}


class Machines:
    """The layout: every machine's own directory, and who may see what."""

    def __init__(self, base: Path, session_home: Path) -> None:
        self.laptop = base / "laptop"  # the CLI's machine: stack file, cookbooks, app, keys
        self.workers = [base / "worker1", base / "worker2"]
        self.hosts = base / "hosts"  # the registered machines' roots
        self.session_home = session_home  # where the test's sshds keep their files
        for path in (self.laptop / "home", self.hosts, *self.workers):
            path.mkdir(parents=True)

    def hidden_from_worker(self, index: int) -> list[Path]:
        others = [w for i, w in enumerate(self.workers) if i != index]
        return [self.laptop, self.hosts, self.session_home, *others]

    def hidden_from_cli(self) -> list[Path]:
        return [self.hosts, self.session_home, *self.workers]


@pytest.fixture(params=["directory", "s3"])
def store_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """What every machine is told about the store (and only that)."""
    if request.param == "directory":
        shared = tmp_path / "shared-store"  # a filesystem every machine mounts
        shared.mkdir()
        return {"OPSFLOW_ARTIFACTS": str(shared)}
    url: str = request.getfixturevalue("moto_server")
    env = {
        "OPSFLOW_ARTIFACTS": "s3://mm-drill/opsflow",
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
    }
    s3 = boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket="mm-drill")
    return env


@pytest.fixture
def registered_hosts() -> Iterator[dict[str, LaunchResult]]:
    machines = {
        host: local_provider.launch(
            LaunchInput(stack=OUTSIDE, hostname=host, provider=Provider.LOCAL)
        )
        for host in HOSTS
    }
    yield machines
    for host in HOSTS:
        local_provider.terminate(
            MachineInput(stack=OUTSIDE, hostname=host, provider=Provider.LOCAL)
        )


def base_env(
    address: str, task_queue: str, store_env: dict[str, str], home: Path
) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OPSFLOW_", "TEMPORAL_", "AWS_"))
    }
    env.update(store_env)
    env.update(
        TEMPORAL_ADDRESS=address,
        OPSFLOW_TASK_QUEUE=task_queue,
        OPSFLOW_HOME=str(home),
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


class Worker:
    def __init__(self, machines: Machines, index: int, env: dict[str, str]) -> None:
        self.index, self.env, self.machines = index, env, machines
        self.log = machines.workers[index].parent / f"worker{index + 1}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        self.process = start(
            [sys.executable, "-m", "worker"],
            self.machines.hidden_from_worker(self.index),
            self.env,
            self.log,
            REPO,
        )

    async def ready(self, timeout: float = 60) -> None:
        """Until this start of the worker polls (it publishes its key before)."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while self.log.read_text().count("worker polling task queue") < self.starts:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"worker {self.index + 1} did not start:\n{self.log.read_text()}"
                )
            await asyncio.sleep(0.1)

    def kill(self) -> None:
        """A crash: the whole process group, at once."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


async def cli(
    machines: Machines, env: dict[str, str], *args: str, timeout: float = 240
) -> tuple[int, str, str]:
    """The real `opsflow` on the CLI's machine."""
    process = await asyncio.create_subprocess_exec(
        *on_another_machine(
            [sys.executable, "-m", "client.cli", *args], machines.hidden_from_cli()
        ),
        env=env,
        cwd=machines.laptop,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def write_stack(machines: Machines, hosts: dict[str, LaunchResult]) -> Path:
    for relative, script in RECIPES.items():
        path = machines.laptop / "cookbooks" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(script)
    # A link inside the tree travels as a link.
    (machines.laptop / "cookbooks" / "web" / "configure.sh").symlink_to("shared.sh")
    (machines.laptop / "app").mkdir()
    (machines.laptop / "keys").mkdir()
    instances = []
    for host, machine in hosts.items():
        key = machines.laptop / "keys" / host
        shutil.copy(machine.ssh.key_file, key)
        key.chmod(0o600)
        root = machines.hosts / host
        root.mkdir()
        instances.append(
            f"      - hostname: {host}\n"
            f"        ssh: {{host: 127.0.0.1, port: {machine.ssh.port}, "
            f"user: {machine.ssh.user}, key_file: keys/{host}, root: '{root}'}}\n"
        )
    stack_file = machines.laptop / "stack.yml"
    stack_file.write_text(
        "name: manymach\n"
        "provider: registered\n"
        "cookbooks: {source: ./cookbooks}\n"
        "layers:\n"
        "  - name: web\n"
        "    auto_healing: false\n"
        "    recipes: {setup: [web::setup], configure: [web::configure], deploy: [web::deploy]}\n"
        "    instances:\n" + "".join(instances) + "apps:\n"
        "  - name: site\n"
        "    layers: [web]\n"
        "    source: {source: ./app}\n"
    )
    return stack_file


def deploy_lines(machines: Machines, host: str) -> list[str]:
    log = machines.hosts / host / "deploys.log"
    return log.read_text().splitlines() if log.exists() else []


async def begun(machines: Machines, release: int, timeout: float) -> None:
    """Until some host has begun the deploy recipe of the `release`-th deploy."""
    deadline = time.monotonic() + timeout
    while not any(len(deploy_lines(machines, h)) >= release for h in HOSTS):
        if time.monotonic() > deadline:
            raise AssertionError(f"no host began deploy {release} in {timeout:g} s")
        await asyncio.sleep(0.1)


async def test_two_workers_that_cannot_see_each_other_deploy_through_crashes(
    dev_env: WorkflowEnvironment,
    tmp_path: Path,
    opsflow_home: Path,
    store_env: dict[str, str],
    registered_hosts: dict[str, LaunchResult],
) -> None:
    address = dev_env.client.service_client.config.target_host
    task_queue = f"mm-{tmp_path.name[-8:]}"
    machines = Machines(tmp_path / "net", opsflow_home)
    key = new_key().decode()
    workers = [
        Worker(
            machines,
            i,
            {
                **base_env(address, task_queue, store_env, machines.workers[i]),
                "OPSFLOW_SECRET_KEY": key,
            },
        )
        for i in range(2)
    ]
    # The CLI has no key of its own: it seals to the key the workers publish in the store.
    cli_env = base_env(address, task_queue, store_env, machines.laptop / "home")
    stack_file = write_stack(machines, registered_hosts)
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            await worker.ready()
        applied = await cli(machines, cli_env, "stack", "apply", str(stack_file), "--wait")
        assert applied[0] == 0, applied[2] + "".join(w.log.read_text() for w in workers)
        for host in HOSTS:
            setup = (machines.hosts / host / "setup.log").read_text().splitlines()
            assert setup == [f"setup {host}"]

        for n in range(1, DEPLOYS + 1):
            (machines.laptop / "app" / "index.html").write_text(f"v{n}\n")
            deploy = asyncio.create_task(
                cli(machines, cli_env, "deploy", "manymach", "site", "--wait")
            )
            # Mid-deploy: as soon as a host has begun this release's recipe.
            await begun(machines, n, timeout=120)
            victim = workers[n % 2]
            victim.kill()
            victim.start()
            code, out, err = await deploy
            assert code == 0, f"deploy {n}: {out}{err}" + victim.log.read_text()[-3000:]

        for host in HOSTS:
            lines = deploy_lines(machines, host)
            releases = [line.split()[0] for line in lines]
            # Exactly once per release, in order, each with the code of its deploy.
            assert len(releases) == len(set(releases)) == DEPLOYS, (host, lines)
            assert [line.split()[1] for line in lines] == [f"v{n}" for n in range(1, DEPLOYS + 1)]

        # The logs of those runs, from the CLI's machine.
        code, out, err = await cli(machines, cli_env, "command", "list", "manymach", "-o", "json")
        assert code == 0, err
        runs = json.loads(out)
        deploys = [r for r in runs if r["event"] == "deploy"]
        assert {r["hostname"] for r in deploys} == set(HOSTS)
        # The kills landed mid-run: a retry on the other worker re-attached to a run that
        # went on on its host (its recipe line is there once, above). Both workers take
        # tasks, so over three deploys some runs were the killed one's (2-3 of 9 here).
        assert any(r["attached"] for r in deploys), deploys
        newest = max((r for r in deploys if r["hostname"] == "beta"), key=lambda r: r["finished"])
        code, out, err = await cli(
            machines, cli_env, "command", "log", "manymach", newest["run_id"]
        )
        assert code == 0, err
        assert f"deployed v{DEPLOYS} on beta" in out

        deleted = await cli(machines, cli_env, "stack", "delete", "manymach", "--wait")
        assert deleted[0] == 0, deleted[2]
    finally:
        for worker in workers:
            worker.stop()

"""Real parts: the Temporal dev server, real sshd instances, the real worker and CLI."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from client.api import OpsflowClient
from tests.helpers import stop_local_sshds
from worker import build_worker

REPO = Path(__file__).resolve().parents[2]
# web::setup|configure|shutdown and db::setup: small shell recipes whose files the tests read
# back (the shop of examples/ serves HTTP from isolated machines instead).
TEST_COOKBOOKS = Path(__file__).resolve().parent / "cookbooks"


@pytest.fixture(scope="session", autouse=True)
def opsflow_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Local instances of the whole integration session live here, and are stopped after."""
    home = tmp_path_factory.mktemp("opsflow-home")
    previous = os.environ.get("OPSFLOW_HOME")
    os.environ["OPSFLOW_HOME"] = str(home)
    try:
        yield home
    finally:
        _stop_all_sshd(home)
        if previous is None:
            os.environ.pop("OPSFLOW_HOME", None)
        else:
            os.environ["OPSFLOW_HOME"] = previous


def _stop_all_sshd(home: Path) -> None:
    stop_local_sshds(home)


@pytest.fixture
def task_queue() -> str:
    return f"it-{uuid.uuid4().hex[:8]}"


@pytest_asyncio.fixture(loop_scope="session")
async def opsflow(dev_env: WorkflowEnvironment, task_queue: str) -> AsyncIterator[OpsflowClient]:
    """A client and an in-process worker with the real activities, on a fresh task queue."""
    async with build_worker(dev_env.client, task_queue=task_queue):
        yield OpsflowClient(dev_env.client, task_queue=task_queue)


def make_stack_dir(
    tmp_path: Path, name: str, body: str, recipes: dict[str, str] | None = None
) -> Path:
    """A stack file plus cookbooks (`cookbook::recipe` -> shell script text)."""
    cookbooks = tmp_path / "cookbooks"
    if recipes is None:
        shutil.copytree(TEST_COOKBOOKS, cookbooks)
    else:
        cookbooks.mkdir()
        for recipe, script in recipes.items():
            cookbook, _, recipe_name = recipe.partition("::")
            (cookbooks / cookbook).mkdir(parents=True, exist_ok=True)
            (cookbooks / cookbook / f"{recipe_name}.sh").write_text(script)
    stack_file = tmp_path / "stack.yml"
    stack_file.write_text(f"name: {name}\ncookbooks: {{source: ./cookbooks}}\n{body}")
    return stack_file


def cli_env(
    address: str, task_queue: str, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment plus `extra` (TLS settings, say) on `address` and `task_queue`."""
    env = dict(os.environ)
    env.update(TEMPORAL_ADDRESS=address, OPSFLOW_TASK_QUEUE=task_queue)
    env.update(extra or {})
    return env


def start_worker(
    address: str,
    task_queue: str,
    log: Path,
    home: Path | None = None,
    extra: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """The real worker as a process of its own (its own session, so a test can SIGKILL
    the whole group as a crash would); `home`: its own OPSFLOW_HOME, as on another machine."""
    env = cli_env(address, task_queue, extra)
    if home is not None:
        env["OPSFLOW_HOME"] = str(home)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "worker"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


async def opsflow_cli(
    args: list[str],
    address: str,
    task_queue: str,
    timeout: float = 180,
    env: dict[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
) -> CliResult:
    """The real console script, as a user runs it (asynchronously: the test's in-process
    worker shares this event loop and must keep running meanwhile); `env` is set over the
    test's environment (another machine's OPSFLOW_HOME, say)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "client.cli",
        *args,
        env={**cli_env(address, task_queue, extra), **(env or {})},
        cwd=REPO,
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
    return CliResult(process.returncode, out.decode(), err.decode())

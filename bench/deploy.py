"""Benchmark: `opsflow deploy` of an app to N local instances all at once, against fabric.

Self-contained: starts its own Temporal dev server (in memory) and one worker process,
under a temporary OPSFLOW_HOME, and stops them (and the instances) at the end.

    .venv/bin/python bench/deploy.py [--instances 20 100] [--runs 3] [--cli]

For each N, one stack of N instances is applied and waited for; its layer's deploy
recipe is `sleep 0.5`. Each run then times, on the same N hosts:

- opsflow: `client.deploy(stack, DeployInput(app="hello"))` + `client.wait_deployment`
  through the typed API in this process (all at once; each run is a new release: stage the
  app's code, run the recipe, switch `current`), or with `--cli` the console script
  `opsflow deploy STACK hello --wait` as a subprocess (which adds starting Python);
- fabric cold: a new ThreadingGroup of Connections (each host's key, look_for_keys False,
  as bench/stack_apply.py's baseline) running `sleep 0.5`: connect + run;
- fabric warm: the same group running `sleep 0.5` again, connected.

The table shows medians over the runs; ratio = opsflow / fabric cold (the issue's target
is <= 1.3), and opsflow / fabric warm for reference.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fabric import Connection, ThreadingGroup  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402

from client.api import OpsflowClient, settled  # noqa: E402
from client.stackfile import load_stack_file  # noqa: E402
from opsflow.messages import DeployInput, SshEndpoint  # noqa: E402
from opsflow.status import InstanceStatus  # noqa: E402
from workflows.common import SEARCH_ATTRIBUTES  # noqa: E402

COMMAND = "sleep 0.5"
TASK_QUEUE = "opsflow-bench"


@dataclass
class Figures:
    instances: int
    opsflow: list[float] = field(default_factory=list)
    fabric_cold: list[float] = field(default_factory=list)
    fabric_warm: list[float] = field(default_factory=list)
    apply_seconds: float = 0.0


def write_stack(directory: Path, name: str, count: int) -> Path:
    (directory / "cookbooks" / "app").mkdir(parents=True, exist_ok=True)
    (directory / "cookbooks" / "app" / "deploy.sh").write_text(f"{COMMAND}\n")
    (directory / "hello").mkdir(exist_ok=True)
    (directory / "hello" / "index.html").write_text("<h1>hello</h1>\n")
    hosts = ", ".join(f"{{hostname: d{i}}}" for i in range(1, count + 1))
    stack = directory / f"{name}.yml"
    stack.write_text(
        f"name: {name}\ncookbooks: {{source: ./cookbooks}}\nlayers:\n"
        f"  - name: web\n    recipes: {{deploy: [app::deploy]}}\n    instances: [{hosts}]\n"
        "apps:\n  - name: hello\n    layers: [web]\n    source: {source: ./hello}\n"
    )
    return stack


async def wait_quiet(client: OpsflowClient, stack: str, timeout: float) -> list[SshEndpoint]:
    """Every instance online, no configure round pending, no command queued or running."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        found = await client.wait_instances(stack, settled, timeout=timeout)
        bad = [v.hostname for v in found.instances if v.status != InstanceStatus.ONLINE]
        if bad:
            raise RuntimeError(f"not online: {bad}")
        if not found.configure_pending:
            states = [await client.instance_state(stack, v.hostname) for v in found.instances]
            if all(not s.queue and s.current is None for s in states):
                again = await client.describe(stack)
                if not again.configure_pending:
                    return [v.ssh for v in again.instances if v.ssh is not None]
        await asyncio.sleep(0.5)
    raise TimeoutError(f"stack {stack} did not become quiet within {timeout:.0f}s")


async def opsflow_deploy(client: OpsflowClient, stack: str, env: dict[str, str] | None) -> float:
    started = time.perf_counter()
    if env is None:
        deployment = await client.deploy(stack, DeployInput(app="hello"))
        await client.wait_deployment(deployment.deployment_id)
    else:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "client.cli",
            "deploy",
            stack,
            "hello",
            "--wait",
            env=env,
            cwd=REPO,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
        )
        if await process.wait() != 0:
            raise RuntimeError(f"opsflow deploy {stack} hello --wait exited {process.returncode}")
    return time.perf_counter() - started


def fabric_runs(endpoints: list[SshEndpoint]) -> tuple[float, float]:
    """(new group: connect + run, the same group again: run)."""
    started = time.perf_counter()
    group = ThreadingGroup.from_connections(
        [
            Connection(
                e.host,
                port=e.port,
                user=e.user,
                connect_kwargs={"key_filename": e.key_file, "look_for_keys": False},
            )
            for e in endpoints
        ]
    )
    try:
        group.run(COMMAND, hide=True)
        cold = time.perf_counter() - started
        started = time.perf_counter()
        group.run(COMMAND, hide=True)
        warm = time.perf_counter() - started
    finally:
        group.close()
    return cold, warm


async def bench(
    client: OpsflowClient, home: Path, count: int, runs: int, env: dict[str, str] | None
) -> Figures:
    figures = Figures(count)
    name = f"deploy{count}"
    spec = load_stack_file(write_stack(home / name, name, count))
    started = time.perf_counter()
    await client.apply(spec)
    endpoints = await wait_quiet(client, name, timeout=max(300, 6 * count))
    figures.apply_seconds = time.perf_counter() - started
    print(f"N={count}: {len(endpoints)} instances online in {figures.apply_seconds:.1f}s")
    for run in range(1, runs + 1):
        figures.opsflow.append(await opsflow_deploy(client, name, env))
        cold, warm = await asyncio.to_thread(fabric_runs, endpoints)
        figures.fabric_cold.append(cold)
        figures.fabric_warm.append(warm)
        print(
            f"  run {run}: opsflow {figures.opsflow[-1]:.2f}s, "
            f"fabric cold {cold:.2f}s, fabric warm {warm:.2f}s",
            flush=True,
        )
    return figures


def table(all_figures: list[Figures], how: str) -> str:
    header = (
        f"{'N':>5}  {'opsflow (' + how + ')':>28}  {'fabric cold':>11}  {'fabric warm':>11}  "
        f"{'ratio/cold':>10}  {'ratio/warm':>10}"
    )
    lines = [header, "-" * len(header)]
    for f in all_figures:
        ops = statistics.median(f.opsflow)
        cold = statistics.median(f.fabric_cold)
        warm = statistics.median(f.fabric_warm)
        lines.append(
            f"{f.instances:>5}  {ops:>27.2f}s  {cold:>10.2f}s  {warm:>10.2f}s  "
            f"{ops / cold:>10.2f}  {ops / warm:>10.2f}"
        )
    return "\n".join(lines)


def stop_instances(home: Path) -> None:
    for pidfile in home.glob("instances/*/*/ssh/sshd.pid"):
        with contextlib.suppress(ValueError, ProcessLookupError):
            os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--instances", type=int, nargs="+", default=[20, 100])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--cli", action="store_true", help="time `opsflow deploy --wait` as a subprocess"
    )
    options = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="opsflow-bench-deploy-"))
    os.environ["OPSFLOW_HOME"] = str(home)
    server = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        search_attributes=SEARCH_ATTRIBUTES,
    )
    address = server.client.service_client.config.target_host
    env = dict(
        os.environ, TEMPORAL_ADDRESS=address, OPSFLOW_HOME=str(home), OPSFLOW_TASK_QUEUE=TASK_QUEUE
    )
    log = (home / "worker.log").open("ab")
    worker = subprocess.Popen(
        [sys.executable, "-m", "worker"],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    temporal: Client = server.client
    client = OpsflowClient(temporal, task_queue=TASK_QUEUE)
    how = "CLI deploy --wait" if options.cli else "API deploy+wait"
    results: list[Figures] = []
    try:
        for count in options.instances:
            results.append(
                await bench(client, home, count, options.runs, env if options.cli else None)
            )
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait()
        stop_instances(home)
        await server.shutdown()
        if results:
            print()
            print(f"medians of {options.runs} runs; deploy recipe and fabric command: {COMMAND}")
            print(table(results, how))
            print(f"worker log: {home / 'worker.log'}")


if __name__ == "__main__":
    asyncio.run(main())

"""Benchmark: `opsflow stack apply --wait` to all online, for N local instances with a
trivial setup recipe, and how much of it is opsflow's own overhead.

Self-contained: starts its own Temporal dev server (in memory) and one worker process,
under a temporary OPSFLOW_HOME, and stops them at the end.

    .venv/bin/python bench/stack_apply.py [--instances 10] [--runs 3]

The baseline is the work that cannot be avoided: launching the same N sshd instances
(the local provider's own launch function, N in parallel) plus running the same setup
recipe on all of them over SSH with fabric's ThreadingGroup. Overhead = apply - baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fabric import Connection, ThreadingGroup  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402

from activities import local_provider  # noqa: E402
from opsflow.messages import LaunchInput, MachineInput  # noqa: E402
from opsflow.spec import Provider  # noqa: E402
from workflows.common import SEARCH_ATTRIBUTES  # noqa: E402

SETUP = "echo ready\n"


def write_stack(directory: Path, name: str, count: int) -> Path:
    (directory / "cookbooks" / "bench").mkdir(parents=True, exist_ok=True)
    (directory / "cookbooks" / "bench" / "setup.sh").write_text(SETUP)
    hosts = ", ".join(f"{{hostname: b{i}}}" for i in range(1, count + 1))
    stack = directory / f"{name}.yml"
    stack.write_text(
        f"name: {name}\ncookbooks: {{source: ./cookbooks}}\nlayers:\n"
        f"  - name: bench\n    recipes: {{setup: [bench::setup]}}\n    instances: [{hosts}]\n"
    )
    return stack


def cli(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "client.cli", *args],
        env=env,
        cwd=REPO,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def baseline(count: int) -> float:
    """Launch N sshd instances in parallel, then run the recipe on all with fabric."""
    started = time.perf_counter()
    names = [f"base{i}" for i in range(1, count + 1)]
    with ThreadPoolExecutor(max_workers=count) as pool:
        launched = list(
            pool.map(
                lambda h: local_provider.launch(
                    LaunchInput(stack="baseline", hostname=h, provider=Provider.LOCAL)
                ),
                names,
            )
        )
    group = ThreadingGroup.from_connections(
        [
            Connection(
                r.ssh.host,
                port=r.ssh.port,
                user=r.ssh.user,
                connect_kwargs={"key_filename": r.ssh.key_file, "look_for_keys": False},
            )
            for r in launched
        ]
    )
    group.run(SETUP, hide=True)
    elapsed = time.perf_counter() - started
    group.close()
    for h in names:
        local_provider.terminate(
            MachineInput(stack="baseline", hostname=h, provider=Provider.LOCAL)
        )
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="opsflow-bench-"))
    os.environ["OPSFLOW_HOME"] = str(home)
    env_server = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        search_attributes=SEARCH_ATTRIBUTES,
    )
    address = env_server.client.service_client.config.target_host
    env = dict(os.environ, TEMPORAL_ADDRESS=address, OPSFLOW_HOME=str(home))
    log = (home / "worker.log").open("ab")
    worker = subprocess.Popen(
        [sys.executable, "-m", "worker"],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    applies: list[float] = []
    baselines: list[float] = []
    cli_costs: list[float] = []
    try:
        for run in range(1, options.runs + 1):
            # The CLI's fixed cost: start Python, connect, one query, exit.
            cli_costs.append(await asyncio.to_thread(cli, ["stack", "list", "-o", "json"], env))
            stack = write_stack(home, f"bench{run}", options.instances)
            applies.append(
                await asyncio.to_thread(cli, ["stack", "apply", str(stack), "--wait"], env)
            )
            await asyncio.to_thread(cli, ["stack", "delete", f"bench{run}", "--wait"], env)
            baselines.append(await asyncio.to_thread(baseline, options.instances))
            print(f"run {run}: apply --wait {applies[-1]:.2f}s, baseline {baselines[-1]:.2f}s")
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait()
        await env_server.shutdown()
    apply_median = statistics.median(applies)
    base_median = statistics.median(baselines)
    print(f"instances: {options.instances}, runs: {options.runs}")
    print(f"opsflow stack apply --wait, median: {apply_median:.2f}s")
    print(f"baseline (launch + fabric ThreadingGroup), median: {base_median:.2f}s")
    overhead = apply_median - base_median
    print(f"opsflow overhead, median: {overhead:.2f}s ({overhead / apply_median:.0%} of the apply)")
    print(
        "  of which the CLI's fixed cost (start Python, connect, one query), median: "
        f"{statistics.median(cli_costs):.2f}s"
    )


if __name__ == "__main__":
    asyncio.run(main())

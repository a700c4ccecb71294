"""Benchmark: what one recipe run costs opsflow's runner, against plain fabric.

Launches N local instances (the local provider, under a temporary OPSFLOW_HOME) and times
a trivial recipe (`echo ok`) run with `RecipeActivities.run_recipes` on all N at once,
called directly (no Temporal; heartbeats are skipped outside an activity), against fabric's
ThreadingGroup running the same `echo ok` on the same hosts:

- cold: opsflow with no pooled connection and cookbooks of a new content hash (connect +
  stage + run), vs a new ThreadingGroup (connect + run);
- staged: opsflow with pooled connections and cookbooks already staged (the steady state
  of a worker), vs the same ThreadingGroup running again (connected).

    .venv/bin/python bench/recipe_overhead.py [--instances 10 1] [--runs 5]

Each repetition uses fresh run ids; the figures are medians over the repetitions.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fabric import Connection, ThreadingGroup  # noqa: E402

from activities import local_provider, ssh  # noqa: E402
from activities.recipes.runner import RecipeActivities  # noqa: E402
from opsflow.messages import (  # noqa: E402
    InstanceView,
    LaunchInput,
    LaunchResult,
    MachineInput,
    RecipeRunInput,
    RunContext,
)
from opsflow.spec import ConfigurationManager, Provider  # noqa: E402

STACK = "bench"
RECIPE = "echo ok\n"


def launch_all(count: int) -> list[tuple[str, LaunchResult]]:
    names = [f"b{i}" for i in range(1, count + 1)]
    with ThreadPoolExecutor(max_workers=count) as pool:
        launched = pool.map(
            lambda h: local_provider.launch(
                LaunchInput(stack=STACK, hostname=h, provider=Provider.LOCAL)
            ),
            names,
        )
        return list(zip(names, launched, strict=True))


def terminate_all(hosts: list[tuple[str, LaunchResult]]) -> None:
    for hostname, _ in hosts:
        local_provider.terminate(
            MachineInput(stack=STACK, hostname=hostname, provider=Provider.LOCAL)
        )


def runner(cookbooks: Path) -> RecipeActivities:
    context = RunContext(
        configuration={"opsflow": {"stack": {"name": STACK}}},
        recipes=["bench::ok"],
        configuration_manager=ConfigurationManager.SHELL,
        cookbooks_dir=str(cookbooks),
    )

    async def source(_: RecipeRunInput) -> RunContext:
        return context

    return RecipeActivities(source)


async def opsflow_run(
    acts: RecipeActivities, hosts: list[tuple[str, LaunchResult]], run_id: str
) -> float:
    requests = [
        RecipeRunInput(
            stack=STACK,
            hostname=hostname,
            event="setup",
            recipes=None,
            run_id=f"{hostname}-{run_id}",
            ssh=launched.ssh,
            root=launched.root,
            instance=InstanceView(hostname=hostname, layers=["bench"]),
        )
        for hostname, launched in hosts
    ]
    started = time.perf_counter()
    results = await asyncio.gather(*(acts.run_recipes(request) for request in requests))
    elapsed = time.perf_counter() - started
    assert all(result.exit_code == 0 and "ok" in result.log_tail for result in results)
    return elapsed


def fabric_group(hosts: list[tuple[str, LaunchResult]]) -> ThreadingGroup:
    return ThreadingGroup.from_connections(
        [
            Connection(
                launched.ssh.host,
                port=launched.ssh.port,
                user=launched.ssh.user,
                connect_kwargs={"key_filename": launched.ssh.key_file, "look_for_keys": False},
            )
            for _, launched in hosts
        ]
    )


def fabric_run(group: ThreadingGroup) -> float:
    started = time.perf_counter()
    results = group.run(RECIPE, hide=True)
    elapsed = time.perf_counter() - started
    assert all(result.stdout == "ok\n" for result in results.values())
    return elapsed


def median(values: list[float]) -> float:
    return statistics.median(values)


async def bench(count: int, runs: int, home: Path) -> None:
    cookbooks = home / f"cookbooks-{count}"
    (cookbooks / "bench").mkdir(parents=True)
    acts = runner(cookbooks)
    hosts = await asyncio.to_thread(launch_all, count)
    cold: list[float] = []
    staged: list[float] = []
    fabric_cold: list[float] = []
    fabric_warm: list[float] = []
    try:
        for run in range(1, runs + 1):
            # A new content hash: the first run stages it; a closed pool: it connects.
            (cookbooks / "bench" / "ok.sh").write_text(f"# repetition {run}\n{RECIPE}")
            ssh.close_all()
            cold.append(await opsflow_run(acts, hosts, f"cold-{run}"))
            staged.append(await opsflow_run(acts, hosts, f"staged-{run}"))
            group = fabric_group(hosts)
            try:
                fabric_cold.append(await asyncio.to_thread(fabric_run, group))
                fabric_warm.append(await asyncio.to_thread(fabric_run, group))
            finally:
                group.close()
            print(
                f"  N={count} run {run}: opsflow cold {cold[-1]:.3f}s staged {staged[-1]:.3f}s"
                f" | fabric cold {fabric_cold[-1]:.3f}s warm {fabric_warm[-1]:.3f}s"
            )
    finally:
        ssh.close_all()
        await asyncio.to_thread(terminate_all, hosts)
    print(f"N={count} instances, {runs} runs, medians:")
    for label, mine, theirs in (
        ("cold (connect + stage + run)", cold, fabric_cold),
        ("staged (pooled, staged)", staged, fabric_warm),
    ):
        print(
            f"  {label:30} opsflow {median(mine):.3f}s  fabric {median(theirs):.3f}s  "
            f"ratio {median(mine) / median(theirs):.2f}x  "
            f"overhead {median(mine) - median(theirs):+.3f}s"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--instances", type=int, nargs="+", default=[10, 1])
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="opsflow-recipe-bench-"))
    os.environ["OPSFLOW_HOME"] = str(home)
    try:
        for count in options.instances:
            await bench(count, options.runs, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())

"""Benchmark: `opsflow deploy STACK APP --wait` as a user runs it, against fabric.

Self-contained: `opsflow dev up` under a temporary OPSFLOW_HOME and free ports (the
embedded dev server and a real worker process), `dev down` and the instances stopped at
the end.

    .venv/bin/python bench/deploy_vs_fabric.py [--instances 20] [--rounds 5]

A stack of N local instances, one layer whose deploy recipe is `sleep 0.5` (shell), one
app, is applied and brought online first (not timed). Then, alternating, each round
times:

- opsflow: the whole `opsflow deploy STACK hello --wait` process (the console script, a
  subprocess timed from exec to exit; its progress lines go to a pipe, as under CI);
- fabric: a process of its own that imports fabric (not timed), then times a new
  ThreadingGroup over the same N hosts (each instance's ssh host, port, user and key as
  the stack knows them, look_for_keys off) from connecting to done, running `sleep 0.5`.

Prints each round, the medians and the median ratio opsflow / fabric (the issue's
target: at most 1.0), and where the last opsflow round's time went, read back from the
workflow histories (seconds from exec; min/median/max over the instances). Figures only,
never assertions: the machine decides them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from temporalio.api.enums.v1 import EventType  # noqa: E402
from temporalio.api.history.v1 import HistoryEvent  # noqa: E402

from client.api import OpsflowClient, settled  # noqa: E402
from client.stackfile import load_stack_file  # noqa: E402
from opsflow import names  # noqa: E402
from opsflow.messages import SshEndpoint  # noqa: E402
from opsflow.status import InstanceStatus  # noqa: E402
from runtime.connection import connect  # noqa: E402

COMMAND = "sleep 0.5"
STACK = "speed"
APP = "hello"
OPSFLOW = Path(sys.executable).with_name("opsflow")

# The fabric side, in a process of its own: argv[1] is a JSON list of endpoints. Prints
# the seconds from making the connections to every command done.
FABRIC = """
import json, sys, time
from fabric import Connection, ThreadingGroup
endpoints, command = json.loads(sys.argv[1]), sys.argv[2]
started = time.perf_counter()
group = ThreadingGroup.from_connections([
    Connection(e["host"], port=e["port"], user=e["user"],
               connect_kwargs={"key_filename": e["key_file"], "look_for_keys": False})
    for e in endpoints
])
try:
    group.run(command, hide=True)
finally:
    group.close()
print(time.perf_counter() - started)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_stack(directory: Path, count: int) -> Path:
    (directory / "cookbooks" / "app").mkdir(parents=True, exist_ok=True)
    (directory / "cookbooks" / "app" / "deploy.sh").write_text(f"{COMMAND}\n")
    (directory / APP).mkdir(exist_ok=True)
    (directory / APP / "index.html").write_text("<h1>hello</h1>\n")
    hosts = ", ".join(f"{{hostname: d{i}}}" for i in range(1, count + 1))
    stack = directory / "stack.yml"
    stack.write_text(
        f"name: {STACK}\ncookbooks: {{source: ./cookbooks}}\nlayers:\n"
        f"  - name: web\n    recipes: {{deploy: [app::deploy]}}\n    instances: [{hosts}]\n"
        f"apps:\n  - name: {APP}\n    layers: [web]\n    source: {{source: ./{APP}}}\n"
    )
    return stack


async def bring_online(
    client: OpsflowClient, stack_file: Path, timeout: float
) -> list[SshEndpoint]:
    """Apply the stack and wait until every instance is online and nothing is pending:
    no configure round, no command queued or running."""
    await client.apply(load_stack_file(stack_file))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        found = await client.wait_instances(STACK, settled, timeout=timeout)
        bad = [v.hostname for v in found.instances if v.status != InstanceStatus.ONLINE]
        if bad:
            raise RuntimeError(f"not online: {bad}")
        if not found.configure_pending:
            states = [await client.instance_state(STACK, v.hostname) for v in found.instances]
            if all(not s.queue and s.current is None for s in states):
                again = await client.describe(STACK)
                if not again.configure_pending:
                    return [v.ssh for v in again.instances if v.ssh is not None]
        await asyncio.sleep(0.5)
    raise TimeoutError(f"stack {STACK} did not become quiet within {timeout:.0f}s")


def opsflow_round(env: dict[str, str]) -> tuple[float, float, float, str]:
    """(seconds, epoch at exec, epoch at exit, deployment id) of one deploy --wait."""
    argv = [str(OPSFLOW), "deploy", STACK, APP, "--wait"]
    started, exec_at = time.perf_counter(), time.time()
    done = subprocess.run(argv, env=env, cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True)
    seconds, exit_at = time.perf_counter() - started, time.time()
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()}")
    deployment = done.stdout.decode().splitlines()[0].rsplit(": ", 1)[1]
    return seconds, exec_at, exit_at, deployment


async def history(client: OpsflowClient, workflow_id: str) -> list[HistoryEvent]:
    handle = client.temporal.get_workflow_handle(workflow_id)
    return [event async for event in handle.fetch_history_events()]


def at(event: HistoryEvent) -> float:
    return event.event_time.ToDatetime().timestamp()


def spread(values: Sequence[float]) -> str:
    return f"{min(values):.2f}/{statistics.median(values):.2f}/{max(values):.2f}"


async def breakdown(
    client: OpsflowClient, deployment: str, exec_at: float, exit_at: float, count: int
) -> list[str]:
    """Where one deploy --wait's time went, from the histories of the stack, the
    deployment and each instance."""
    stack = await history(client, names.stack_workflow_id(STACK))
    run = await history(client, deployment)

    def times(events: list[HistoryEvent], wanted: EventType.ValueType, after: float) -> list[float]:
        return [at(e) - exec_at for e in events if e.event_type == wanted and at(e) >= after]

    accepted = times(stack, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED, exec_at)
    begun = at(run[0])
    received, waited, ran, replied = [], [], [], []
    for number in range(1, count + 1):
        events = await history(client, names.instance_workflow_id(STACK, f"d{number}"))
        signal = times(events, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED, begun)[0]
        start = times(events, EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED, begun)[0]
        end = times(events, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, begun)[-1]
        reply = times(
            events, EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED, begun
        )
        received.append(signal)
        waited.append(start - signal)
        ran.append(end - start)
        replied.append(reply[0] - end)
    results = times(run, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED, begun)
    tasks = len(times(run, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, begun))
    return [
        f"last opsflow round, {deployment} (s from exec; min/median/max over instances):",
        f"  CLI start, connect, deploy update accepted by the stack: {accepted[0]:.2f}",
        f"  deployment started: {begun - exec_at:.2f}; its signal reached the instances: "
        f"{spread(received)}",
        f"  signal -> run_recipes started: {spread(waited)}; run_recipes (SSH, remote "
        f"script, sleep 0.5): {spread(ran)}; -> result signalled: {spread(replied)}",
        f"  results at the deployment: {spread(results)}; closed: {at(run[-1]) - exec_at:.2f}; "
        f"CLI exited: {exit_at - exec_at:.2f}",
        f"  deployment history: {len(run)} events, {tasks} workflow tasks",
    ]


def fabric_round(endpoints: list[SshEndpoint]) -> float:
    hosts = json.dumps(
        [e.model_dump(include={"host", "port", "user", "key_file"}) for e in endpoints]
    )
    done = subprocess.run(
        [sys.executable, "-c", FABRIC, hosts, COMMAND], capture_output=True, text=True, check=True
    )
    return float(done.stdout.strip())


def stop_instances(home: Path) -> None:
    for pidfile in home.glob("instances/*/*/ssh/sshd.pid"):
        with contextlib.suppress(ValueError, ProcessLookupError):
            os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--instances", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="opsflow-bench-vs-fabric-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "OTEL_"))}
    env.update(
        OPSFLOW_HOME=str(home), OPSFLOW_DEV_PORT=str(free_port()), OPSFLOW_UI_PORT=str(free_port())
    )
    os.environ.clear()
    os.environ.update(env)
    print(f"{' '.join(sys.argv)}  (OPSFLOW_HOME={home})", flush=True)
    subprocess.run([str(OPSFLOW), "dev", "up"], env=env, cwd=REPO, check=True)
    opsflow: list[float] = []
    fabric: list[float] = []
    timeline: list[str] = []
    try:
        client = OpsflowClient(await connect())
        started = time.perf_counter()
        endpoints = await bring_online(
            client, write_stack(home / STACK, options.instances), max(300, 6 * options.instances)
        )
        print(
            f"{len(endpoints)} instances online in {time.perf_counter() - started:.1f}s",
            flush=True,
        )
        for number in range(1, options.rounds + 1):
            seconds, exec_at, exit_at, deployment = await asyncio.to_thread(opsflow_round, env)
            opsflow.append(seconds)
            fabric.append(await asyncio.to_thread(fabric_round, endpoints))
            print(
                f"  round {number}: opsflow {opsflow[-1]:.3f}s  fabric {fabric[-1]:.3f}s  "
                f"ratio {opsflow[-1] / fabric[-1]:.2f}",
                flush=True,
            )
        timeline = await breakdown(client, deployment, exec_at, exit_at, options.instances)
    finally:
        subprocess.run([str(OPSFLOW), "dev", "down"], env=env, cwd=REPO, check=False)
        stop_instances(home)
    ops, fab = statistics.median(opsflow), statistics.median(fabric)
    ratios = [o / f for o, f in zip(opsflow, fabric, strict=True)]
    print()
    print(f"{options.instances} instances, {options.rounds} rounds; recipe and command: {COMMAND}")
    print(f"opsflow deploy {STACK} {APP} --wait (whole process): median {ops:.3f}s")
    print(f"fabric ThreadingGroup, connect + run (in its process): median {fab:.3f}s")
    print(f"median ratio opsflow / fabric: {statistics.median(ratios):.2f}")
    print("\n".join(timeline))
    print(f"worker log: {home / 'logs' / 'worker.log'}")


if __name__ == "__main__":
    asyncio.run(main())

"""Benchmark: auto healing, how fast a crashed instance is noticed and replaced, and what
the healing loops cost while nothing is wrong.

Self-contained: starts its own Temporal dev server (in memory) and one worker process,
under a temporary OPSFLOW_HOME and its own task queue, and stops them (and the instances)
at the end.

    .venv/bin/python bench/healing.py [--latency] [--kills 10] [--partitions 10] [--cpu]
                                      [--window 60] [--isolation none|machine]

`--isolation machine` makes the instances isolated machines (systemd-nspawn, a network
namespace each on a subnet of the bench's own): a crash is `instance kill`'s (every
process of the machine SIGKILLed) and a partition `instance kill --network`'s (its link cut,
restored once seen lost). `none` (the default): sshd processes, SIGKILL and SIGSTOP.

With neither flag the latency part runs; `--cpu` alone runs only the CPU part.

Every layer runs at the default healing settings (health_check interval 5s,
unhealthy_threshold 2, timeout 3s, grace_period 30s; at most 3 heals per instance per
hour), setup recipe `true`. The grace period is kept at its default: the bench waits until
an instance has been online for longer than it before killing it (latency) or measuring
(CPU), so every instance counted is being checked.

Latency (`--latency`): one stack, one layer of 10 instances. Once all are online and the
stack is quiet (no configure pending, no command queued or running), K times (`--kills`,
a different instance each time, none more than 3 times): wait until the instance is past
its grace period plus one interval, then a random part of an interval (so the kill lands
anywhere in the loop's cycle); t0, then `activities.local_provider.kill` (SIGKILL of the
instance's sshd and every connection it serves, as a crash), then the stack's `describe`
(typed API, in this process) every 0.1 s:

- detected (poll) = first poll that shows the instance not online - t0; the status seen is
  shown: connection_lost, or already booting when the replacement started within the same
  poll interval;
- detected (event) = the stack's `health_detected` event time - t0 (no polling error);
- kill->online = first poll that shows it online again (replaced: new sshd, same hostname,
  setup) - t0; healed (event) = the `healed` event time - t0;

then wait until the stack is quiet again. Then P times (`--partitions`) the same with a
silent partition instead of a crash: SIGSTOP of the instance's sshd and every process
under it (its sockets stay open, nothing answers, no RST: the worker sees a cut link), and
SIGCONT as soon as the poll sees it lost (it comes back while it is being replaced). The
table shows each, and the median and max of each kind. The watch (activities/watch.py)
sees a crash at once (its connection drops and the sshd refuses a new one) and a
partition when a keepalive has gone unanswered for the check's timeout (sent every
second); before it, the periodic check took interval*(threshold-1) to interval*threshold
plus a check round.

CPU (`--cpu`): one stack of 200 instances in 10 layers of 20. Once all are online, the
stack quiet and every instance past its grace period, the CPU time (utime+stime, own and
children's, /proc/PID/stat) of the worker process (and its descendants), of the Temporal
dev server this bench started, and of the 200 instances' sshd's is measured over
`--window` seconds, as CPU seconds per second (1.00 = one core busy). Then the same stack
is applied with `auto_healing: false` on every layer (which stops the loops), and after
10 s the same is measured again. The difference is the cost of checking 200 instances
every 5 s. The whole machine's busy CPU is shown too, so other load is visible.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import math
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stack_scale import free_subnet  # noqa: E402 (bench/, this script's directory)
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402

from activities import local_provider  # noqa: E402
from client.api import OpsflowClient, settled  # noqa: E402
from client.stackfile import load_stack_file  # noqa: E402
from opsflow.drills import NetworkDrillInput  # noqa: E402
from opsflow.errors import OperationFailed  # noqa: E402
from opsflow.messages import InstanceView, StackDescription, StackEvent  # noqa: E402
from opsflow.spec import LayerHealthCheckSpec  # noqa: E402
from opsflow.status import InstanceStatus  # noqa: E402
from runtime import local_network  # noqa: E402
from tests.helpers import signal_instance  # noqa: E402
from workflows.common import SEARCH_ATTRIBUTES  # noqa: E402

TASK_QUEUE = "opsflow-bench-healing"
POLL = 0.1
CLK_TCK = os.sysconf("SC_CLK_TCK")
HEALING_EVENTS = ("health_detected", "heal_started", "healed", "heal_failed")
BUSY = "consistent query buffer is full"
BUSY_RETRIES: Counter[str] = Counter()  # the bench's queries asked again, by call
T = TypeVar("T")


class ProductProblem(RuntimeError):
    """What the product did wrong, with what was seen; printed for its owner."""


# ---- stacks -------------------------------------------------------------------------------


def write_stack(
    directory: Path, name: str, layers: dict[str, list[str]], auto_healing: bool = True
) -> Path:
    (directory / "cookbooks" / "app").mkdir(parents=True, exist_ok=True)
    (directory / "cookbooks" / "app" / "setup.sh").write_text("true\n")
    lines = [f"name: {name}", "cookbooks: {source: ./cookbooks}", "layers:"]
    for layer, hosts in layers.items():
        lines.append(f"  - name: {layer}")
        if not auto_healing:
            lines.append("    auto_healing: false")
        lines.append("    recipes: {setup: [app::setup]}")
        lines.append("    instances: [" + ", ".join(f"{{hostname: {h}}}" for h in hosts) + "]")
    stack = directory / f"{name}.yml"
    stack.write_text("\n".join(lines) + "\n")
    return stack


def call_name(call: Callable[..., object]) -> str:
    func = getattr(call, "func", call)  # a functools.partial: the function it calls
    return str(getattr(func, "__name__", "?"))


async def patient(call: Callable[[], Awaitable[T]], tries: int = 120) -> T:
    """A query, asked again while its workflow is too busy to answer (its query buffer
    full: seen while 200 instances run setup at once), instead of failing the bench."""
    for _ in range(tries - 1):
        try:
            return await call()
        except OperationFailed as err:
            if BUSY not in str(err):
                raise
            BUSY_RETRIES[call_name(call)] += 1
            await asyncio.sleep(1.0)
    return await call()


async def describe(client: OpsflowClient, stack: str) -> StackDescription:
    return await patient(partial(client.describe, stack))


async def wait_quiet(
    client: OpsflowClient, stack: str, timeout: float, every: float = 0.5
) -> StackDescription:
    """Every instance online, no configure round pending, no command queued or running."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        found = await describe(client, stack)
        if not all(settled(v) for v in found.instances):
            await asyncio.sleep(every)
            continue
        bad = [
            f"{v.hostname}={v.status.value}"
            for v in found.instances
            if v.status != InstanceStatus.ONLINE
        ]
        if bad:
            raise ProductProblem(f"not online: {bad}")
        if not found.configure_pending:
            states = [
                await patient(partial(client.instance_state, stack, v.hostname))
                for v in found.instances
            ]
            if all(not s.queue and s.current is None for s in states):
                again = await describe(client, stack)
                if not again.configure_pending:
                    return again
        await asyncio.sleep(every)
    raise TimeoutError(f"stack {stack} did not become quiet within {timeout:.0f}s")


def layer_check(found: StackDescription) -> LayerHealthCheckSpec:
    return found.spec.layers[0].health_check


async def wait_past_grace(
    client: OpsflowClient, stack: str, hostnames: list[str] | None, margin: float
) -> None:
    """Until each named instance (or every one) has been online longer than its grace."""
    found = await describe(client, stack)
    grace = {layer.name: layer.health_check.grace_period for layer in found.spec.layers}
    ends = [
        v.updated_at.timestamp() + max((grace.get(name, 0.0) for name in v.layers), default=0.0)
        for v in found.instances
        if v.updated_at is not None and (hostnames is None or v.hostname in hostnames)
    ]
    wait = max(ends, default=0.0) + margin - time.time()
    if wait > 0:
        await asyncio.sleep(wait)


# ---- latency ------------------------------------------------------------------------------


@dataclass
class Kill:
    hostname: str
    kind: str = "crash"  # or "partition"
    t0_wall: float = 0.0  # time.time() of the kill
    detected: float = float("nan")  # by polling
    detected_event: float = float("nan")  # the health_detected event's time
    seen: str = ""  # the first non-online status the poll saw
    online: float = float("nan")
    healed_event: float = float("nan")
    events: list[str] = field(default_factory=list)


def host_events(found: StackDescription, hostname: str, since: float) -> list[StackEvent]:
    return [e for e in found.events if e.hostname == hostname and e.at.timestamp() >= since]


def view_of(found: StackDescription, hostname: str) -> InstanceView | None:
    return next((v for v in found.instances if v.hostname == hostname), None)


def worker_log_lines(home: Path, words: list[str], last: int = 40) -> list[str]:
    try:
        lines = (home / "worker.log").read_text(errors="replace").splitlines()
    except OSError:
        return []
    wanted = [ln for ln in lines if any(w in ln for w in words)]
    return wanted[-last:]


async def explain(client: OpsflowClient, home: Path, stack: str, kill: Kill, t0: float) -> str:
    found = await describe(client, stack)
    view = view_of(found, kill.hostname)
    lines = [f"instance {kill.hostname}: {view.model_dump_json() if view else 'gone'}"]
    lines.append(f"events of {kill.hostname} since the kill:")
    for event in host_events(found, kill.hostname, t0 - 1):
        lines.append(f"  +{event.at.timestamp() - t0:6.2f}s {event.kind}: {event.message}")
        if event.details:
            lines.append(f"           details: {event.details}")
    lines.append("the stack's other events since the kill:")
    for event in found.events:
        if event.at.timestamp() >= t0 - 1 and event.hostname != kill.hostname:
            lines.append(f"  +{event.at.timestamp() - t0:6.2f}s {event.kind}: {event.message}")
    lines.append(f"worker log ({home / 'worker.log'}), lines naming it or healing:")
    lines.extend(
        "  " + ln for ln in worker_log_lines(home, [kill.hostname, "healing", "Traceback"])
    )
    return "\n".join(lines)


async def poll_until(
    client: OpsflowClient, stack: str, hostname: str, online: bool, timeout: float
) -> tuple[float, InstanceView | None]:
    """perf_counter when the instance is (online) / is not (not online) first seen."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        found = await describe(client, stack)
        at = time.perf_counter()
        view = view_of(found, hostname)
        if view is not None and (view.status == InstanceStatus.ONLINE) == online:
            return at, view
        await asyncio.sleep(POLL)
    return float("nan"), None


async def one_kill(
    client: OpsflowClient,
    home: Path,
    stack: str,
    hostname: str,
    check: LayerHealthCheckSpec,
    kind: str,
) -> Kill:
    kill = Kill(hostname, kind)
    kill.t0_wall = t0_wall = time.time()
    t0 = time.perf_counter()
    machine = os.environ.get("OPSFLOW_ISOLATION") == "machine"
    if kind == "partition" and machine:
        local_provider.network_drill(NetworkDrillInput(stack=stack, hostname=hostname, cut=True))
    elif kind == "partition":
        signal_instance(stack, hostname, signal.SIGSTOP)
    elif not local_provider.kill(stack, hostname):
        raise RuntimeError(f"{hostname}: its sshd was not running")
    detect_timeout = check.interval * check.unhealthy_threshold + 3 * check.timeout + 60
    try:
        at, view = await poll_until(client, stack, hostname, online=False, timeout=detect_timeout)
    finally:
        if kind == "partition" and machine:  # back, while it is being replaced
            cut = NetworkDrillInput(stack=stack, hostname=hostname, cut=False)
            local_provider.network_drill(cut)
        elif kind == "partition":
            signal_instance(stack, hostname, signal.SIGCONT)
    if view is None:
        raise ProductProblem(
            f"{hostname} still online {detect_timeout:.0f}s after it was killed\n"
            + await explain(client, home, stack, kill, t0_wall)
        )
    kill.detected, kill.seen = at - t0, view.status.value
    at, view = await poll_until(client, stack, hostname, online=True, timeout=300)
    if view is None:
        raise ProductProblem(
            f"{hostname} not online again 300s after it was detected\n"
            + await explain(client, home, stack, kill, t0_wall)
        )
    kill.online = at - t0
    return kill


def read_events(kill: Kill, found: StackDescription) -> None:
    """The healing events of the kill's instance since the kill, as offsets from it."""
    for event in host_events(found, kill.hostname, kill.t0_wall - 1):
        offset = event.at.timestamp() - kill.t0_wall
        if event.kind in HEALING_EVENTS:
            kill.events.append(f"{event.kind} +{offset:.1f}s")
        if event.kind == "health_detected" and math.isnan(kill.detected_event):
            kill.detected_event = offset
        if event.kind == "healed" and math.isnan(kill.healed_event):
            kill.healed_event = offset


async def latency(client: OpsflowClient, home: Path, kills: int, partitions: int) -> list[Kill]:
    name = "heal10"
    hosts = [f"h{i}" for i in range(1, 11)]
    if kills + partitions > 3 * len(hosts):
        raise SystemExit(
            f"--kills + --partitions at most {3 * len(hosts)}: max_heals is 3 per instance per hour"
        )
    spec = load_stack_file(write_stack(home / name, name, {"web": hosts}))
    started = time.perf_counter()
    await client.apply(spec)
    found = await wait_quiet(client, name, timeout=600)
    check = layer_check(found)
    print(
        f"latency: {len(found.instances)} instances online and quiet in "
        f"{time.perf_counter() - started:.1f}s; health_check interval {check.interval:g}s, "
        f"unhealthy_threshold {check.unhealthy_threshold}, timeout {check.timeout:g}s, "
        f"grace_period {check.grace_period:g}s",
        flush=True,
    )
    results: list[Kill] = []
    for n, kind in enumerate(["crash"] * kills + ["partition"] * partitions):
        hostname = hosts[n % len(hosts)]
        # Past the grace period (plus a round), so the loop checks it; then a random part
        # of an interval, so the kill lands anywhere in the loop's cycle.
        await wait_past_grace(client, name, [hostname], margin=check.interval + 1)
        await asyncio.sleep(random.uniform(0, check.interval))
        try:
            kill = await one_kill(client, home, name, hostname, check, kind)
        except ProductProblem as problem:
            print(f"\n{kind} {n + 1} ({hostname}): PRODUCT PROBLEM\n{problem}\n", flush=True)
            break
        results.append(kill)
        try:
            quiet: StackDescription | None = await wait_quiet(client, name, timeout=300)
        except (ProductProblem, TimeoutError) as problem:
            print(f"\nafter kill {n + 1}: stack not quiet: {problem}\n", flush=True)
            quiet = None
        read_events(kill, quiet or await describe(client, name))
        print(
            f"  {kind} {n + 1}: {hostname} detected {kill.detected:.2f}s ({kill.seen}), "
            f"online {kill.online:.2f}s; events: " + ", ".join(kill.events),
            flush=True,
        )
        if quiet is None:
            break
    return results


def latency_table(kills: list[Kill], check: LayerHealthCheckSpec) -> str:
    header = (
        f"{'n':>3}  {'kind':<9}  {'host':<5}  {'detected (poll)':>15}  {'detected (event)':>16}  "
        f"{'seen':<15}  {'kill->online':>12}  {'healed (event)':>14}"
    )
    lines = [header, "-" * len(header)]
    for n, k in enumerate(kills, 1):
        lines.append(
            f"{n:>3}  {k.kind:<9}  {k.hostname:<5}  {k.detected:>14.2f}s  "
            f"{k.detected_event:>15.2f}s  {k.seen:<15}  {k.online:>11.2f}s  "
            f"{k.healed_event:>13.2f}s"
        )

    def known(values: list[float]) -> list[float]:
        return [v for v in values if not math.isnan(v)]

    for kind in ("crash", "partition"):
        these = [k for k in kills if k.kind == kind]
        if not these:
            continue
        lines.append("-" * len(header))
        for label, pick in (("median", statistics.median), ("max", max)):

            def figure(values: list[float], pick: Callable[[list[float]], float] = pick) -> str:
                found = known(values)
                return f"{pick(found):.2f}s" if found else "nan"

            lines.append(
                f"{label + ' ' + kind:<21}  {figure([k.detected for k in these]):>15}  "
                f"{figure([k.detected_event for k in these]):>16}  {'':<15}  "
                f"{figure([k.online for k in these]):>12}  "
                f"{figure([k.healed_event for k in these]):>14}"
            )
    lines.append(
        f"interval {check.interval:g}s, unhealthy_threshold {check.unhealthy_threshold}, "
        f"timeout {check.timeout:g}s: the watch sees a crash at once, a partition after "
        f"{check.timeout:g}-{check.timeout + 1:g}s (an unanswered keepalive)"
    )
    return "\n".join(lines)


# ---- CPU ----------------------------------------------------------------------------------


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (index 0 = state, 1 = ppid)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _proc_stat(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def tree_ticks(roots: list[int]) -> int:
    """utime+stime+cutime+cstime of the roots and every live descendant, in clock ticks."""
    children = _children_map()
    total, todo, seen = 0, list(roots), set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        fields = _proc_stat(pid)
        if fields is None:
            continue
        total += sum(int(x) for x in fields[11:15])
        todo.extend(children.get(pid, []))
    return total


def machine_busy_ticks() -> int:
    values = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values[:8]) - idle


def dev_server_pid(binary: str, port: str) -> int | None:
    """The `temporal server start-dev` this process started (its child, on our port)."""
    found: list[tuple[bool, int]] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv]
        if binary in words and "start-dev" in words and port in words:
            fields = _proc_stat(int(entry.name))
            mine = fields is not None and int(fields[1]) == os.getpid()
            found.append((mine, int(entry.name)))
    return max(found)[1] if found else None


def sshd_pids(home: Path) -> list[int]:
    pids = []
    for pidfile in home.glob("instances/*/*/ssh/sshd.pid"):
        with contextlib.suppress(OSError, ValueError):
            pids.append(int(pidfile.read_text().strip()))
    return pids


@dataclass
class Cpu:
    """CPU seconds per wall second over one window, and what happened meanwhile."""

    worker: float
    server: float
    sshd: float
    machine: float
    seconds: float
    events: Counter[str] = field(default_factory=Counter)  # the stack's, by kind
    warnings: list[str] = field(default_factory=list)  # worker log warnings and errors


async def measure(worker: int, server: int | None, sshds: list[int], window: float) -> Cpu:
    def sample() -> tuple[float, int, int, int, int]:
        return (
            time.monotonic(),
            tree_ticks([worker]),
            tree_ticks([server]) if server else 0,
            tree_ticks(sshds),
            machine_busy_ticks(),
        )

    before = sample()
    await asyncio.sleep(window)
    after = sample()
    seconds = after[0] - before[0]
    rates = [(a - b) / CLK_TCK / seconds for a, b in zip(after[1:], before[1:], strict=True)]
    return Cpu(rates[0], rates[1], rates[2], rates[3], seconds)


def log_size(home: Path) -> int:
    with contextlib.suppress(OSError):
        return (home / "worker.log").stat().st_size
    return 0


def log_warnings(home: Path, start: int) -> list[str]:
    """The worker log's warning and error lines written since byte `start`."""
    with (home / "worker.log").open("rb") as log:
        log.seek(start)
        text = log.read().decode(errors="replace")
    marks = (" WARNING ", " ERROR ", " WARN", " ERROR")
    return [ln for ln in text.splitlines() if any(m in ln for m in marks)]


def _warning_kind(line: str) -> str:
    """A warning line without its time and ids: 'WARNING logger message (activity type)'."""
    if "query buffer is full" in line:
        return "query: consistent query buffer is full (the stack workflow is busy)"
    line = re.sub(r"\x1b\[[0-9;]*m", "", line)
    line = re.sub(r"^\S+ (\d\d:\d\d:\d\d,\d+ )?", "", line)
    kind = re.split(r" \(|\{| error=| task_token=", line, maxsplit=1)[0][:80]
    activity = re.search(r"'activity_type': '(\w+)'", line)
    return f"{kind} ({activity.group(1)})" if activity else kind


def summarize(warnings: list[str]) -> str:
    if not warnings:
        return "none"
    kinds = Counter(_warning_kind(ln) for ln in warnings)
    return f"{len(warnings)} lines: " + "; ".join(f"{n}x {k}" for k, n in kinds.most_common(5))


async def measure_stack(
    client: OpsflowClient, home: Path, name: str, worker: int, server: int | None, window: float
) -> Cpu:
    since, offset = time.time(), log_size(home)
    figures = await measure(worker, server, sshd_pids(home), window)
    figures.events = Counter(
        e.kind for e in (await describe(client, name)).events if e.at.timestamp() >= since
    )
    figures.warnings = log_warnings(home, offset)
    return figures


async def cpu(
    client: OpsflowClient, home: Path, worker: int, server: int | None, window: float
) -> tuple[Cpu, Cpu]:
    name = "heal200"
    layers = {f"l{n}": [f"l{n}h{i}" for i in range(1, 21)] for n in range(1, 11)}
    stack_dir = home / name
    spec = load_stack_file(write_stack(stack_dir, name, layers))
    started, offset = time.perf_counter(), log_size(home)
    await client.apply(spec)
    found = await wait_quiet(client, name, timeout=1800, every=1.0)
    print(
        f"cpu: {len(found.instances)} instances online and quiet in "
        f"{time.perf_counter() - started:.0f}s; worker log warnings meanwhile: "
        f"{summarize(log_warnings(home, offset))}",
        flush=True,
    )
    check = layer_check(found)
    await wait_past_grace(client, name, None, margin=2 * check.interval)
    await wait_quiet(client, name, timeout=300)
    loops = sum(e.kind == "healing_started" for e in found.events)
    print(f"cpu: measuring {window:g}s with healing on ({loops} healing loops)", flush=True)
    on = await measure_stack(client, home, name, worker, server, window)
    since = time.time()
    result = await client.apply(load_stack_file(write_stack(stack_dir, name, layers, False)))
    print(f"cpu: applied auto_healing: false ({len(result.changes)} changes)", flush=True)
    await wait_quiet(client, name, timeout=300)
    await asyncio.sleep(10)
    found = await describe(client, name)
    stopped = sum(e.kind == "healing_stopped" and e.at.timestamp() >= since for e in found.events)
    print(f"cpu: measuring {window:g}s with healing off ({stopped} loops stopped)", flush=True)
    off = await measure_stack(client, home, name, worker, server, window)
    return on, off


def cpu_table(on: Cpu, off: Cpu) -> str:
    header = f"{'CPU s/s (1.00 = one core)':<28}  {'healing on':>10}  {'off':>8}  {'cost':>8}"
    lines = [header, "-" * len(header)]
    for label, a, b in (
        ("worker (+ children)", on.worker, off.worker),
        ("temporal dev server", on.server, off.server),
        ("200 instances' sshd", on.sshd, off.sshd),
        ("whole machine (2 cores)", on.machine, off.machine),
    ):
        lines.append(f"{label:<28}  {a:>10.3f}  {b:>8.3f}  {a - b:>+8.3f}")
    cost = (on.worker - off.worker) + (on.server - off.server) + (on.sshd - off.sshd)
    lines.append(
        f"cost of healing 200 instances (worker + server + sshd): {cost:.3f} CPU s/s "
        f"= {100 * cost:.1f}% of one core; windows {on.seconds:.0f}s / {off.seconds:.0f}s"
    )
    return "\n".join(lines)


# ---- main ---------------------------------------------------------------------------------


def stop_instances(home: Path) -> None:
    for pid in sshd_pids(home):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    if os.environ.get("OPSFLOW_ISOLATION") == "machine":
        local_network.reap_home()


async def run() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--latency", action="store_true", help="kill-to-detected/online")
    parser.add_argument("--kills", type=int, default=10, help="crashes (SIGKILL)")
    parser.add_argument("--partitions", type=int, default=10, help="silent partitions (SIGSTOP)")
    parser.add_argument("--cpu", action="store_true", help="CPU of 200 checked instances")
    parser.add_argument("--window", type=float, default=60.0, help="CPU window, seconds")
    parser.add_argument("--isolation", choices=["none", "machine"], default="none")
    options = parser.parse_args()
    os.environ["OPSFLOW_ISOLATION"] = options.isolation
    if options.isolation == "machine":
        os.environ["OPSFLOW_NETWORK"] = free_subnet(250)
    if not options.cpu:
        options.latency = True
    home = Path(tempfile.mkdtemp(prefix="opsflow-bench-healing-"))
    os.environ["OPSFLOW_HOME"] = str(home)
    binary = str(Path(sys.executable).parent / "temporal")
    server = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=binary,
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
    client = OpsflowClient(server.client, task_queue=TASK_QUEUE)
    kills: list[Kill] = []
    check = LayerHealthCheckSpec()
    cpu_figures: tuple[Cpu, Cpu] | None = None
    try:
        if options.latency:
            kills = await latency(client, home, options.kills, options.partitions)
            with contextlib.suppress(Exception):
                check = layer_check(await describe(client, "heal10"))
        if options.cpu:
            port = re.sub(r"^.*:", "", address)
            server_pid = dev_server_pid(binary, port)
            if server_pid is None:
                print("cpu: the dev server's process was not found; its CPU shows as 0")
            cpu_figures = await cpu(client, home, worker.pid, server_pid, options.window)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            print("the worker did not end within 60 s of SIGTERM: killed")
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        stop_instances(home)
        await server.shutdown()
        if options.latency:
            print()
            wanted = options.kills + options.partitions
            print(f"latency: {len(kills)} of {wanted} cuts measured (poll every {POLL}s)")
            print(latency_table(kills, check))
        if cpu_figures is not None:
            on, off = cpu_figures
            print()
            print(cpu_table(on, off))
            for label, figures in (("on", on), ("off", off)):
                print(
                    f"healing-{label} window: stack events {dict(figures.events) or 'none'}; "
                    f"worker log warnings {summarize(figures.warnings)}"
                )
        if BUSY_RETRIES:
            print(
                "the bench's own queries asked again because the workflow's query buffer was "
                f"full: {dict(BUSY_RETRIES)}"
            )
        print(f"worker log: {home / 'worker.log'}")


async def main() -> None:
    await run()
    # The Temporal client and server handles are dropped here, while the event loop still
    # runs: dropped during interpreter shutdown instead, the SDK's native threads sometimes
    # abort the process (PyGILState_Release) after every figure has been printed.
    gc.collect()
    await asyncio.sleep(0.2)


if __name__ == "__main__":
    asyncio.run(main())

"""Benchmark: one stack of N local instances, as a user runs it: `opsflow stack apply
--wait` until all are online, then `opsflow stack delete --wait` until the stack is gone;
and whether the stack workflow was flooded meanwhile.

Self-contained: `opsflow dev up` under a temporary OPSFLOW_HOME and ports of its own (the
dev server and one real worker process, each logging to $OPSFLOW_HOME/logs), the CLI as a
process of its own for each command, `opsflow dev down` and every instance's sshd stopped
at the end.

    .venv/bin/python bench/stack_scale.py [--instances 200] [--timeout 1800]
                                          [--isolation none|machine]

`--isolation machine` makes every instance an isolated machine (systemd-nspawn, a network
namespace on a subnet of the bench's own); `none` (the default) an sshd process.

Printed: seconds of each CLI command and its exit code (an error's last lines when it
failed); the lines of the worker's and the dev server's logs that say a query buffer was
full or a resource exhausted; the worker's peak RSS (VmHWM); the size of the stack's
configuration snapshot, when the stack published one; memory once all are online: how
much MemAvailable fell since before the apply, and the proportional set size (PSS) of the
instances' own processes (each machine's nspawn, init, sshd; or each sshd), per instance.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OPSFLOW = Path(sys.executable).with_name("opsflow")
FLOODED = re.compile(r"buffer is full|ResourceExhausted|RESOURCE_EXHAUSTED", re.IGNORECASE)
SETUP = "true\n"


@dataclass
class Timed:
    seconds: float
    returncode: int
    tail: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_stack(directory: Path, name: str, count: int) -> Path:
    (directory / "cookbooks" / "bench").mkdir(parents=True, exist_ok=True)
    (directory / "cookbooks" / "bench" / "setup.sh").write_text(SETUP)
    hosts = "".join(f"      - hostname: s{i}\n" for i in range(1, count + 1))
    stack = directory / f"{name}.yml"
    stack.write_text(
        f"name: {name}\ncookbooks: {{source: ./cookbooks}}\nlayers:\n"
        f"  - name: bench\n    recipes: {{setup: [bench::setup]}}\n    instances:\n{hosts}"
    )
    return stack


def cli(args: list[str], env: dict[str, str], timeout: float) -> Timed:
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [str(OPSFLOW), *args],
            env=env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return Timed(time.perf_counter() - started, -1, f"no answer within {timeout:.0f}s")
    tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-6:])
    return Timed(time.perf_counter() - started, done.returncode, tail)


def flooded(log: Path) -> list[str]:
    if not log.exists():
        return []
    with log.open(errors="replace") as lines:
        return [line.rstrip() for line in lines if FLOODED.search(line)]


def peak_rss_mib(pid: int) -> float | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def snapshot_sizes(home: Path) -> list[int]:
    """Sizes of the configuration snapshots in the directory store (the default one), the
    one the stack names now first."""
    root = home / "artifacts"
    pointer = root / "named" / "snapshots" / "scale"
    current = pointer.read_text().strip() if pointer.exists() else ""
    sizes: list[int] = []
    for blob in sorted((root / "blobs" / "sha256").glob("*/*")):
        if blob.read_bytes().startswith(b'{"stack":'):
            size = blob.stat().st_size
            sizes.insert(0 if blob.name == current else len(sizes), size)
    return sizes


def mem_available_mib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 0.0


def instances_pss_mib(home: Path) -> tuple[int, float]:
    """How many processes the instances run, and their PSS: every process below a machine's
    systemd-nspawn of this home, or an sshd whose config is in this home."""
    parents: dict[int, int] = {}
    roots: set[int] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int(stat.parent.name)
            parents[pid] = int(stat.read_text().rpartition(")")[2].split()[1])
            argv = (stat.parent / "cmdline").read_bytes()
            if str(home).encode() in argv and (b"systemd-nspawn" in argv or b"sshd" in argv):
                roots.add(pid)
    mine = {pid for pid in parents if _below(pid, roots, parents)}
    pss = 0
    for pid in mine:
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
    return len(mine), pss / 1024


def _below(pid: int, roots: set[int], parents: dict[int, int]) -> bool:
    while pid > 1:
        if pid in roots:
            return True
        pid = parents.get(pid, 0)
    return False


def free_subnet(count: int) -> str:
    """A subnet of 10.215.0.0/16 big enough for `count` machines that no interface uses."""
    prefix = 24 if count <= 250 else 22 if count <= 1000 else 20
    links = json.loads(
        subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True, check=True).stdout
    )
    used = [
        ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}").network
        for link in links
        for a in link.get("addr_info", [])
    ]
    for subnet in ipaddress.IPv4Network("10.215.0.0/16").subnets(new_prefix=prefix):
        if not any(subnet.overlaps(u) for u in used if u.version == 4):
            return str(subnet)
    raise SystemExit("no free subnet in 10.215.0.0/16")


def stop_instances(home: Path) -> None:
    for pidfile in home.glob("instances/*/*/ssh/sshd.pid"):
        with contextlib.suppress(ValueError, ProcessLookupError, OSError):
            os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)


def show(label: str, result: Timed) -> None:
    print(f"{label:34} {result.seconds:8.1f} s   exit {result.returncode}", flush=True)
    if result.returncode != 0:
        print("    " + result.tail.replace("\n", "\n    "), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=1800, help="per CLI command")
    parser.add_argument("--isolation", choices=["none", "machine"], default="none")
    options = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="opsflow-scale-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "OTEL_"))}
    env.update(
        OPSFLOW_HOME=str(home),
        OPSFLOW_DEV_PORT=str(free_port()),
        OPSFLOW_UI_PORT=str(free_port()),
    )
    env.pop("OPSFLOW_TASK_QUEUE", None)
    env["OPSFLOW_ISOLATION"] = options.isolation
    if options.isolation == "machine":
        env["OPSFLOW_NETWORK"] = free_subnet(options.instances)
    print(
        f"{options.instances} local instances (isolation {options.isolation}); OPSFLOW_HOME={home}",
        flush=True,
    )
    subprocess.run([str(OPSFLOW), "dev", "up"], env=env, cwd=REPO, check=True)
    worker_pid = int((home / "run" / "worker.pid").read_text().strip())
    try:
        stack = write_stack(home, "scale", options.instances)
        available = mem_available_mib()
        show(
            "opsflow stack apply --wait",
            cli(["stack", "apply", str(stack), "--wait"], env, options.timeout),
        )
        fell = available - mem_available_mib()
        count, pss = instances_pss_mib(home)
        sizes = snapshot_sizes(home)
        show("opsflow stack delete --wait", cli(["stack", "delete", "scale", "--wait"], env, 600))
        rss = peak_rss_mib(worker_pid)
    finally:
        subprocess.run([str(OPSFLOW), "dev", "down", "--all"], env=env, cwd=REPO, check=False)
        stop_instances(home)
    for part in ("worker", "temporal"):
        found = flooded(home / "logs" / f"{part}.log")
        print(f"{part} log: {len(found)} 'buffer is full' / ResourceExhausted line(s)")
        for line in found[:3]:
            print(f"    {line[:240]}")
    print(f"worker peak RSS: {rss:.0f} MiB" if rss is not None else "worker peak RSS: unknown")
    n = options.instances
    print(
        f"memory with all online: MemAvailable fell {fell:.0f} MiB ({fell / n:.1f} MiB an "
        f"instance); the instances' {count} processes: {pss:.0f} MiB PSS ({pss / n:.1f} MiB "
        "an instance)"
    )
    if sizes:
        print(
            f"configuration snapshots published: {len(sizes)}; the last one "
            f"{sizes[0] / 1024:.1f} KiB, the largest {max(sizes) / 1024:.1f} KiB"
        )


if __name__ == "__main__":
    main()

"""Benchmark: how long the `opsflow` CLI takes, whole process, as a user waits for it.

    .venv/bin/python bench/cli_startup.py [--runs 7] [--no-server]

Prints the median (and min/max) of N runs, after one warm-up run, of:

- `opsflow --help`;
- offline validation of examples/shop/stack.yml: `opsflow stack plan FILE` with
  TEMPORAL_ADDRESS on a port where nothing listens (its exit code is printed too), and
  the loader path that plan validates with (import the CLI, then load and check the file
  with client.stackfile.load_stack_file, in one `python -c`);
- `opsflow stack list` against a running dev server: `opsflow dev up` under a private
  OPSFLOW_HOME and free ports (no stacks on it, so one list request), `dev down` after.

Figures only, never assertions: the machine it runs on decides them.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STACK_FILE = REPO / "examples" / "shop" / "stack.yml"
OPSFLOW = Path(sys.executable).with_name("opsflow")
LOADER = (
    "import client.cli\n"
    "from client.stackfile import load_stack_file\n"
    f"load_stack_file({str(STACK_FILE)!r})\n"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def timed(argv: Sequence[str], env: dict[str, str]) -> tuple[float, int]:
    started = time.perf_counter()
    done = subprocess.run(
        argv, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - started, done.returncode


def measure(label: str, argv: Sequence[str], env: dict[str, str], runs: int) -> None:
    timed(argv, env)  # warm-up: the file cache, .pyc files
    results = [timed(argv, env) for _ in range(runs)]
    seconds = [s for s, _ in results]
    codes = sorted({code for _, code in results})
    print(
        f"{label:44} median {statistics.median(seconds):6.3f} s   "
        f"min {min(seconds):6.3f}  max {max(seconds):6.3f}   exit {','.join(map(str, codes))}",
        flush=True,
    )


@contextmanager
def dev_server(env: dict[str, str]) -> Iterator[None]:
    """The embedded environment (dev server + worker) under env's OPSFLOW_HOME and ports."""
    subprocess.run([str(OPSFLOW), "dev", "up"], env=env, cwd=REPO, check=True)
    try:
        yield
    finally:
        subprocess.run([str(OPSFLOW), "dev", "down"], env=env, cwd=REPO, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-server", action="store_true", help="skip `stack list`")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="opsflow-bench-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "OTEL_"))}
        env.update(
            OPSFLOW_HOME=home,
            OPSFLOW_DEV_PORT=str(free_port()),
            OPSFLOW_UI_PORT=str(free_port()),
        )
        print(f"{args.runs} runs each, after one warm-up; {OPSFLOW}")
        measure("opsflow --help", [str(OPSFLOW), "--help"], env, args.runs)
        offline = {**env, "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"}
        plan = [str(OPSFLOW), "stack", "plan", str(STACK_FILE)]
        measure("opsflow stack plan FILE (no Temporal)", plan, offline, args.runs)
        loader = [sys.executable, "-c", LOADER]
        measure("import client.cli + load_stack_file(FILE)", loader, offline, args.runs)
        if args.no_server:
            return
        with dev_server(env):
            listing = [str(OPSFLOW), "stack", "list"]
            measure("opsflow stack list (dev server, no stacks)", listing, env, args.runs)


if __name__ == "__main__":
    main()

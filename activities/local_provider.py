"""The `local` compute provider: each instance is a real OpenSSH sshd on 127.0.0.1.

An instance lives in `instances_dir()/{stack}/{hostname}/`:

    root/   the instance's root directory: recipes run here and keep their state here
    ssh/    host key, the client key pair (its public key is the only authorized key),
            sshd_config, sshd.pid, sshd.log and the `port` file

Everything is idempotent, so Temporal may retry any call: a retried launch, or the launch
of a stopped instance, reuses the keys, the root and (if still free) the port, so the
pinned host key and every path a recipe saw stay valid.

`stop` ends the instance's sshd and the connections it serves, nothing else: recipe runs
are started detached in their own sessions (see recipe_runner) and are not stopped with it.
The local provider is a set of sshd's, not a VM.

What can go wrong: sshd or ssh-keygen missing or failing (OSError / RuntimeError, retried
by Temporal), a provider other than `local` (non-retryable InvalidInput).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import shutil
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import local_machine, ssh_keys
from activities.names import KILL_INSTANCE, NETWORK_DRILL
from opsflow.drills import KillInstanceInput, NetworkDrillInput
from opsflow.errors import ErrorType
from opsflow.messages import LaunchInput, LaunchResult, MachineInput, SshEndpoint
from opsflow.names import HOSTNAME, STACK_NAME
from opsflow.settings import Isolation, instances_dir, isolation, worker_id, worker_queue
from runtime import local_network, locks, processes

HOST = "127.0.0.1"
READY_TIMEOUT = 10.0
# sshd's last words when its port was taken after we chose it (it exits, writing no pidfile).
BIND_FAILED = "Cannot bind any address"
STOP_TIMEOUT = 5.0
# sshd counts every channel of a pooled connection as a session; the default (10) would
# make concurrent commands on one instance fail.
MAX_SESSIONS = 64
# sshd must be started by absolute path (it re-executes itself).
SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")
# Privilege separation directory that sshd insists on, even when started this way.
PRIVSEP_DIR = Path("/run/sshd")


@dataclass(frozen=True)
class _Paths:
    """Every file of one local instance."""

    base: Path

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def ssh(self) -> Path:
        return self.base / "ssh"

    @property
    def host_key(self) -> Path:
        return self.ssh / "ssh_host_ed25519_key"

    @property
    def client_key(self) -> Path:
        return self.ssh / "id_ed25519"

    @property
    def authorized_keys(self) -> Path:
        return self.ssh / "authorized_keys"

    @property
    def config(self) -> Path:
        return self.ssh / "sshd_config"

    @property
    def pidfile(self) -> Path:
        return self.ssh / "sshd.pid"

    @property
    def log(self) -> Path:
        return self.ssh / "sshd.log"

    @property
    def port(self) -> Path:
        return self.ssh / "port"


def instance_dir(stack: str, hostname: str) -> Path:
    """Where a local instance lives; the names are checked so no path can escape."""
    if not STACK_NAME.fullmatch(stack) or not HOSTNAME.fullmatch(hostname):
        raise ValueError(f"invalid stack or hostname: {stack!r}/{hostname!r}")
    return instances_dir() / stack / hostname


# ---- the plain functions ----------------------------------------------------------------


def launch(request: LaunchInput) -> LaunchResult:
    """Create the instance if needed and make sure its sshd is up and answering: an
    isolated machine (activities/local_machine.py) or an sshd process, as chosen when it
    was first made (`isolated`)."""
    paths = _Paths(instance_dir(request.stack, request.hostname))
    with _locked(request.stack, request.hostname):
        if isolated(paths.base):
            machine = local_machine.Machine(request.stack, request.hostname, paths.base)
            return local_machine.launch(machine, _own_queue())
        _ensure_files(paths)
        # Twice: an sshd that was dying when we looked (killed, crashed), or that lost its
        # port to another process between choosing and binding it, is started again.
        for _ in range(2):
            since = _start_sshd(paths) if _sshd_pid(paths) is None else None
            port = int(paths.port.read_text())
            if _wait_ready(paths, port, since):
                break
        else:
            raise RuntimeError(f"sshd on {HOST}:{port} keeps dying: {_log_tail(paths)}")
    endpoint = SshEndpoint(
        host=HOST,
        port=port,
        user=getpass.getuser(),
        key_file=str(paths.client_key),
        host_key=ssh_keys.public_key(paths.host_key.with_suffix(".pub")),
    )
    return LaunchResult(
        ssh=endpoint,
        root=str(paths.root),
        private_ip=HOST,
        task_queue=_own_queue(),
        facts=local_machine.local_facts(request.hostname),
    )


def _own_queue() -> str | None:
    """This worker's own task queue: the instance is on this host, so everything later
    done to it must run here. None outside a worker (benches, tests of the functions)."""
    if not activity.in_activity():
        return None
    return worker_queue(activity.info().task_queue, worker_id())


def stop(request: MachineInput) -> None:
    """Stop the instance's sshd, keeping every file; a stopped instance is a no-op."""
    paths = _Paths(instance_dir(request.stack, request.hostname))
    with _locked(request.stack, request.hostname):
        if local_machine.is_machine(paths.base):
            local_machine.stop(local_machine.Machine(request.stack, request.hostname, paths.base))
        else:
            _stop_sshd(paths)


def terminate(request: MachineInput) -> None:
    """Stop the instance and delete its directory; an absent instance is a no-op."""
    paths = _Paths(instance_dir(request.stack, request.hostname))
    with _locked(request.stack, request.hostname):
        if local_machine.is_machine(paths.base):
            machine = local_machine.Machine(request.stack, request.hostname, paths.base)
            local_machine.terminate(machine)
            return
        _stop_sshd(paths)
        shutil.rmtree(paths.base, ignore_errors=True)


def isolated(base: Path) -> bool:
    """Whether the instance at `base` is (or, new, becomes) an isolated machine: one made
    keeps its kind; a new one follows OPSFLOW_ISOLATION (`auto`: a machine where this
    host can make one). `machine` on a host that cannot is a non-retryable error."""
    if local_machine.is_machine(base):
        return True
    if (base / "root").exists():
        return False  # an sshd process instance, made before isolation or with it off
    wanted = isolation()
    if wanted == Isolation.NONE:
        return False
    problem = local_network.isolation_problem()
    if problem is None:
        return True
    if wanted == Isolation.MACHINE:
        raise ApplicationError(
            f"OPSFLOW_ISOLATION=machine, but this host cannot make isolated machines: {problem}",
            type=ErrorType.INVALID_INPUT,
            non_retryable=True,
        )
    return False


def kill(stack: str, hostname: str) -> bool:
    """A machine crash, for drills (`opsflow instance kill`): SIGKILL the instance's sshd
    and every connection it serves, leaving its files and pidfile as a crash would.
    False when it was not running."""
    paths = _Paths(instance_dir(stack, hostname))
    if local_machine.is_machine(paths.base):
        return local_machine.kill(local_machine.Machine(stack, hostname, paths.base))
    pid = _sshd_pid(paths)
    if pid is None:
        return False
    processes.signal_all([pid, *processes.children(pid)], signal.SIGKILL)
    return True


@activity.defn(name=KILL_INSTANCE)
async def kill_instance(request: KillInstanceInput) -> bool:
    """`kill` as an activity: it runs where the instance's sshd runs, on the task queue of
    the worker that launched it (KillInstanceWorkflow sends it there)."""
    return await asyncio.to_thread(kill, request.stack, request.hostname)


def network_drill(request: NetworkDrillInput) -> str:
    """Cut or restore an isolated machine's link; says what it did (or why nothing).
    An sshd-process instance has no link of its own: InvalidInput, non-retryable."""
    paths = _Paths(instance_dir(request.stack, request.hostname))
    with _locked(request.stack, request.hostname):
        machine = local_machine.Machine(request.stack, request.hostname, paths.base)
        if not request.cut and machine.cut_marker.exists():
            # It was a machine when it was cut: a heal may be replacing it right now.
            return local_machine.restore_network(machine)
        if not local_machine.is_machine(paths.base):
            raise ApplicationError(
                f"{request.stack}/{request.hostname} is not an isolated machine (an sshd "
                "process sharing the worker's network): it has no link of its own to cut",
                type=ErrorType.INVALID_INPUT,
                non_retryable=True,
            )
        if request.cut:
            return local_machine.cut_network(machine)
        return local_machine.restore_network(machine)


@activity.defn(name=NETWORK_DRILL)
async def network_drill_activity(request: NetworkDrillInput) -> str:
    """`network_drill` as an activity, on the worker that launched the machine."""
    return await asyncio.to_thread(network_drill, request)


# ---- files ------------------------------------------------------------------------------


def _locked(stack: str, hostname: str) -> contextlib.AbstractContextManager[None]:
    """Serialize launch/stop/terminate of one instance across threads and processes."""
    return locks.locked(instances_dir() / stack / f".{hostname}.lock")


def _ensure_files(paths: _Paths) -> None:
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.ssh.mkdir(parents=True, exist_ok=True)
    paths.ssh.chmod(0o700)
    ssh_keys.keygen(paths.host_key)
    ssh_keys.keygen(paths.client_key)
    # Rewritten every time: cheap, and repairs a half-written file from a crash.
    _write_atomic(paths.authorized_keys, paths.client_key.with_suffix(".pub").read_text())


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


# ---- sshd -------------------------------------------------------------------------------


def _sshd_config(paths: _Paths, port: int) -> str:
    return "\n".join(
        [
            f"ListenAddress {HOST}",
            f"Port {port}",
            f"HostKey {_config_path(paths.host_key)}",
            # AuthorizedKeysFile expands %-tokens: a literal % must be doubled.
            f"AuthorizedKeysFile {_config_path(paths.authorized_keys).replace('%', '%%')}",
            f"PidFile {_config_path(paths.pidfile)}",
            f"AllowUsers {getpass.getuser()}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            "UsePAM no",
            # The instance files belong to whoever runs the worker, not to the login user.
            "StrictModes no",
            f"MaxSessions {MAX_SESSIONS}",
            "PrintMotd no",
            "Subsystem sftp internal-sftp",
            "",
        ]
    )


def _config_path(path: Path) -> str:
    """A path as an sshd_config argument: double-quoted, so spaces are fine."""
    text = str(path)
    if '"' in text or "\n" in text:
        raise RuntimeError(f"OPSFLOW_HOME cannot hold a local instance at {text!r}")
    return f'"{text}"'


def _sshd_binary() -> str:
    for candidate in SSHD_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("sshd")
    if found is None:
        raise RuntimeError("sshd not found: install openssh-server")
    return os.path.abspath(found)


def _start_sshd(paths: _Paths) -> int:
    """Start sshd as a daemon (it outlives the worker, like a machine would); returns where
    this start's lines begin in its log."""
    PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    port = _choose_port(paths)
    _write_atomic(paths.port, f"{port}\n")
    _write_atomic(paths.config, _sshd_config(paths, port))
    paths.pidfile.unlink(missing_ok=True)
    since = _log_size(paths)
    argv = [_sshd_binary(), "-f", str(paths.config), "-E", str(paths.log)]
    # Returns once the daemon has forked, which is before it binds its port: a port taken
    # meanwhile shows only in the log (see _wait_ready).
    ssh_keys.check_call(argv)
    return since


PORT_REUSE_WAIT = 1.0


def _choose_port(paths: _Paths) -> int:
    """The instance's previous port if it is free (within PORT_REUSE_WAIT: the children
    of an sshd that just died may hold it a moment), so its address stays the same."""
    with contextlib.suppress(OSError, ValueError):
        previous = int(paths.port.read_text())
        deadline = time.monotonic() + PORT_REUSE_WAIT
        while True:
            if _port_free(previous):
                return previous
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def _sshd_pid(paths: _Paths) -> int | None:
    """The pid of this instance's running sshd, if any (a reused pid is not taken for it)."""
    try:
        pid = int(paths.pidfile.read_text())
    except (OSError, ValueError):
        return None
    if not processes.alive(pid):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return pid  # no /proc: trust the pidfile
    return pid if str(paths.config).encode() in cmdline else None


def _wait_ready(paths: _Paths, port: int, since: int | None = None) -> bool:
    """Wait until sshd sends its banner (only then can a client connect); False if it died,
    or if the start whose log lines begin at `since` could not bind its port."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), 1.0) as sock:
            if sock.recv(64).startswith(b"SSH-"):
                return True
        # The pidfile appears once sshd listens; a pidfile of a dead sshd means it quit.
        if paths.pidfile.exists() and _sshd_pid(paths) is None:
            return False
        if since is not None and BIND_FAILED in _log_since(paths, since):
            return False
        if time.monotonic() > deadline:
            raise RuntimeError(f"sshd on {HOST}:{port} did not come up: {_log_tail(paths)}")
        time.sleep(0.05)


def _stop_sshd(paths: _Paths) -> None:
    pid = _sshd_pid(paths)
    if pid is None:
        return
    # The listener's children serve the open connections: a stopped machine drops them.
    pids = [pid, *processes.children(pid)]
    processes.signal_all(pids, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while any(processes.alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    processes.signal_all([p for p in pids if processes.alive(p)], signal.SIGKILL)
    paths.pidfile.unlink(missing_ok=True)


def _log_size(paths: _Paths) -> int:
    try:
        return paths.log.stat().st_size
    except OSError:
        return 0


def _log_since(paths: _Paths, offset: int) -> str:
    try:
        with paths.log.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")
    except OSError:
        return ""


def _log_tail(paths: _Paths) -> str:
    try:
        lines = paths.log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no sshd log"
    return " | ".join(lines[-5:]) or "empty sshd log"

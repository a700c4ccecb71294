"""Isolated local instances: each a machine on this host, made with systemd-nspawn.

A machine has its own root filesystem (an overlay of this host's `/` with an upper layer
of its own: copy-on-write, so it starts with this host's software, and what its recipes
write stays its own), its own network namespace with its own address on the home's bridge
(runtime/local_network.py), its own PID, UTS and IPC namespaces (systemd-nspawn), and an
sshd on port 22 as its only service at boot. The worker logs in as root with a key made
for the machine; the machine's host key is pinned at launch.

Its files, `instances_dir()/{stack}/{hostname}/`:

    disk/upper, disk/work   the machine's disk (the overlay's upper layer and work dir)
    rootfs/                 where the overlay is mounted, only inside the machine's
                            private mount namespace (activities/local_machine.sh)
    ssh/                    the worker's key for it and a copy of its public host key
    machine                 says this instance is a machine (not an sshd process)
    nspawn.pid, console.log systemd-nspawn's pid and what the machine printed

Stop ends its processes (SIGTERM, then SIGKILL of its init) and removes its link, keeping
its disk and address; start boots the same disk again; terminate discards both. Inside the
machine, this home's directory is an empty tmpfs: one machine cannot read another's disk
or the worker's keys through the shared lower layer.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shlex
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from activities import ssh_keys
from opsflow import local_network as names
from opsflow.messages import LaunchResult, MachineFacts, SshEndpoint
from opsflow.settings import instances_dir, opsflow_home
from runtime import local_network, processes

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
USER = "root"
SSH_PORT = 22
# The machine's sshd reads opsflow's own config, so a recipe that rewrites
# /etc/ssh/sshd_config (as real cookbooks do) does not lock the worker out.
SSHD_CONFIG = "/etc/opsflow/sshd_config"
AUTHORIZED_KEYS = "/etc/opsflow/authorized_keys"
HOST_KEY = "/etc/ssh/ssh_host_ed25519_key"
# overlayfs: an upper directory with this attribute hides the lower one of the same path.
OPAQUE_XATTR = "trusted.overlay.opaque"
# What base-files gives a new Debian machine's root (its own /root/.bashrc and .profile).
ROOT_DOTFILES = {
    ".bashrc": "/usr/share/base-files/dot.bashrc",
    ".profile": "/usr/share/base-files/dot.profile",
}
BOOT_COMMAND = f"mkdir -p /run/sshd && exec /usr/sbin/sshd -D -e -f {SSHD_CONFIG}"
# Characters overlayfs's mount options or nspawn's arguments cannot carry in a path.
_UNSAFE_IN_PATH = set(",:\n\"'\\")
# The machines this worker booted: polled, so an ended one is reaped (not a zombie).
_BOOTED: dict[str, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class Machine:
    stack: str
    hostname: str
    base: Path

    @property
    def name(self) -> str:
        return names.machine_name(str(opsflow_home()), self.stack, self.hostname)

    @property
    def veth(self) -> str:
        return names.veth_name(str(opsflow_home()), self.stack, self.hostname)

    @property
    def upper(self) -> Path:
        return self.base / "disk" / "upper"

    @property
    def work(self) -> Path:
        return self.base / "disk" / "work"

    @property
    def rootfs(self) -> Path:
        return self.base / "rootfs"

    @property
    def client_key(self) -> Path:
        return self.base / "ssh" / "id_ed25519"

    @property
    def marker(self) -> Path:
        return self.base / "machine"

    @property
    def pidfile(self) -> Path:
        return self.base / "nspawn.pid"

    @property
    def console(self) -> Path:
        return self.base / "console.log"

    @property
    def cut_marker(self) -> Path:
        """Kept beside the instance's directory: a heal (terminate, launch) removes that,
        and a restore must still know the machine it cut is gone."""
        return self.base.parent / f".{self.hostname}.cut"

    def inside(self, path: str) -> Path:
        """Where a path of the machine's own filesystem is in its upper layer."""
        return self.upper / path.lstrip("/")


def is_machine(base: Path) -> bool:
    return (base / "machine").exists()


# ---- launch, stop, terminate -------------------------------------------------------------


def launch(machine: Machine, task_queue: str | None) -> LaunchResult:
    """Boot the machine if it is not running (making its disk the first time) and wait for
    its sshd. Idempotent: a retried launch finds it running and only waits."""
    address = local_network.lease(machine.stack, machine.hostname)
    running = booted_pid(machine) is not None
    if not running:
        _prepare_disk(machine, str(address))
    local_network.plug(machine.name, machine.veth, address)
    if not running:
        _boot(machine)
    try:
        _wait_ready(machine, str(address))
    except RuntimeError:
        stop(machine)  # no process or namespace is left of a machine that did not come up
        raise
    endpoint = SshEndpoint(
        host=str(address),
        port=SSH_PORT,
        user=USER,
        key_file=str(machine.client_key),
        host_key=ssh_keys.public_key(machine.inside(HOST_KEY + ".pub")),
    )
    own = machine.inside("etc/os-release")  # the machine's own, else its base's (the host's)
    facts = local_facts(machine.hostname, own if own.exists() else Path("/etc/os-release"))
    return LaunchResult(
        ssh=endpoint, root="/", private_ip=str(address), task_queue=task_queue, facts=facts
    )


def local_facts(hostname: str, os_release: Path = Path("/etc/os-release")) -> MachineFacts:
    """A machine on this host, as OpsWorks showed one it did not launch on EC2: the host's
    architecture, the os's PRETTY_NAME, its hostname as private DNS name; no instance type,
    zone, region or public address (None)."""
    return MachineFacts(
        architecture=platform.machine() or None,
        os=pretty_name(os_release),
        private_dns_name=hostname,
    )


def pretty_name(os_release: Path) -> str | None:
    """PRETTY_NAME of an os-release file (shell-quoted values), None if it has none."""
    try:
        text = os_release.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "PRETTY_NAME":
            try:
                words = shlex.split(value, comments=False)
            except ValueError:
                return None
            return " ".join(words) or None
    return None


def stop(machine: Machine) -> None:
    """Power the machine off: its processes get SIGTERM, then its init SIGKILL (the kernel
    ends every process left in its PID namespace); its link and namespace go, its disk and
    address stay. A stopped machine is a no-op."""
    pid = booted_pid(machine)
    if pid is not None:
        inits = processes.children(pid)
        processes.signal_all(
            [p for init in inits for p in processes.descendants(init)], signal.SIGTERM
        )
        deadline = time.monotonic() + STOP_TIMEOUT
        while any(processes.descendants(i) for i in inits) and time.monotonic() < deadline:
            time.sleep(0.05)
        processes.signal_all(inits, signal.SIGKILL)
        _wait_gone(machine, pid)
    local_network.unplug(machine.name, machine.veth)


def terminate(machine: Machine) -> None:
    """Stop the machine and discard its disk and address."""
    stop(machine)
    local_network.release(machine.stack, machine.hostname)
    _remove_tree(machine.base)
    local_network.release_network_if_unused()


def kill(machine: Machine) -> bool:
    """A crash, for drills: SIGKILL the machine's init, so every process of the machine
    ends at once (their connections close as a crashed host's would, from the kernel).
    Its link stays as it was. False when the machine was not running."""
    pid = booted_pid(machine)
    if pid is None:
        return False
    # nspawn sees its init die and exits by itself, reaping it (no zombie is left).
    processes.signal_all(processes.children(pid), signal.SIGKILL)
    _wait_gone(machine, pid)
    return True


# ---- partitions --------------------------------------------------------------------------


def cut_network(machine: Machine) -> str:
    """Cut the machine's link (its processes keep running, nothing they send arrives)."""
    pid = booted_pid(machine)
    if pid is None:
        return f"{machine.hostname} is not running: nothing to cut"
    local_network.set_link(machine.veth, up=False)
    machine.cut_marker.write_text(_boot_id(machine))
    return f"{machine.hostname}: network cut (its link is down; its processes keep running)"


def restore_network(machine: Machine) -> str:
    """Give a cut machine its link back; if a heal replaced the machine since the cut, say
    so and change nothing (the new machine has its own link)."""
    try:
        cut = machine.cut_marker.read_text()
    except OSError:
        return f"{machine.hostname}: its network is not cut: nothing changed"
    if booted_pid(machine) is None or _boot_id(machine) != cut:
        machine.cut_marker.unlink(missing_ok=True)
        return (
            f"{machine.hostname}: the machine that was cut is gone (a heal replaced it, or it "
            "was stopped): nothing changed"
        )
    local_network.set_link(machine.veth, up=True)
    machine.cut_marker.unlink(missing_ok=True)
    return f"{machine.hostname}: network restored"


# ---- the disk ----------------------------------------------------------------------------


def _prepare_disk(machine: Machine, address: str) -> None:
    """Make the machine's disk the first time, and (re)write what opsflow owns on it: its
    sshd config and authorized key. Written into the upper layer while the machine is not
    running (overlayfs does not allow changing a layer under a mounted overlay)."""
    for path in (machine.base, machine.upper, machine.work, machine.rootfs):
        _check_path(path)
    for path in (machine.upper, machine.work, machine.rootfs, machine.client_key.parent):
        path.mkdir(parents=True, exist_ok=True)
    machine.client_key.parent.chmod(0o700)
    ssh_keys.keygen(machine.client_key)
    for directory in ("/etc", "/etc/ssh", "/etc/opsflow"):
        machine.inside(directory).mkdir(mode=0o755, exist_ok=True)
    _fresh_root_home(machine)
    ssh_keys.keygen(machine.inside(HOST_KEY))
    _write_once(machine.inside("/etc/hostname"), f"{machine.hostname}\n")
    _write_once(
        machine.inside("/etc/hosts"),
        f"127.0.0.1\tlocalhost\n{address}\t{machine.hostname}\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n",
    )
    _write_once(machine.inside("/etc/machine-id"), os.urandom(16).hex() + "\n")
    (machine.inside(AUTHORIZED_KEYS)).write_text(machine.client_key.with_suffix(".pub").read_text())
    machine.inside(SSHD_CONFIG).write_text(_sshd_config())
    machine.marker.write_text("systemd-nspawn\n")


def _fresh_root_home(machine: Machine) -> None:
    """The machine's /root as on a new Debian machine, not this host's: an opaque directory
    in the upper layer hides the host's (its dotfiles, keys and tools; a login shell that
    ran this host's `.bashrc` waited a minute on a lock a killed machine had left in it),
    with Debian's default root dotfiles. Made once: what recipes put there stays."""
    home = machine.inside("/root")
    if home.exists():
        return
    home.mkdir(mode=0o700)
    os.setxattr(home, OPAQUE_XATTR, b"y")
    for name, source in ROOT_DOTFILES.items():
        with contextlib.suppress(OSError):
            (home / name).write_bytes(Path(source).read_bytes())


def _sshd_config() -> str:
    return "\n".join(
        [
            f"Port {SSH_PORT}",
            f"HostKey {HOST_KEY}",
            # Stack users' keys (opsflow/users.py) where every sshd looks for them.
            "AuthorizedKeysFile .ssh/authorized_keys",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            # Every channel of the worker's pooled connection counts as a session.
            "MaxSessions 64",
            "PrintMotd no",
            "PidFile /run/sshd.pid",
            "Subsystem sftp internal-sftp",
            # The worker logs in as root with its own key, kept out of the recipes' /root.
            "Match User root",
            f"    AuthorizedKeysFile {AUTHORIZED_KEYS}",
            "",
        ]
    )


def _check_path(path: Path) -> None:
    if _UNSAFE_IN_PATH & set(str(path)):
        raise RuntimeError(
            f"OPSFLOW_HOME cannot hold an isolated machine at {str(path)!r}: overlay mounts "
            "cannot name a path with , : quotes or backslashes"
        )


def _write_once(path: Path, text: str) -> None:
    if not path.exists():
        path.write_text(text)


def _remove_tree(path: Path) -> None:
    """rm -rf: the upper layer holds files a recipe made unwritable (chattr aside)."""
    if path.exists():
        subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False)


# ---- the machine's processes -------------------------------------------------------------


def _boot(machine: Machine) -> None:
    script = resources.files("activities").joinpath("local_machine.sh")
    argv = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "/bin/sh",
        str(script),
        str(machine.upper),
        str(machine.work),
        str(machine.rootfs),
        "systemd-nspawn",
        "--quiet",
        "--register=no",
        "--keep-unit",
        "--link-journal=no",
        "--resolv-conf=off",
        "--timezone=off",
        f"--directory={machine.rootfs}",
        f"--machine={machine.name}",
        f"--hostname={machine.hostname}",
        f"--network-namespace-path={local_network.NETNS_DIR / machine.name}",
        "--as-pid2",
        f"--tmpfs={opsflow_home()}",
        "--",
        "/bin/sh",
        "-c",
        BOOT_COMMAND,
    ]
    with machine.console.open("ab") as console:
        # A session of its own: the machine outlives the worker, as a machine would.
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _BOOTED[machine.name] = process
    machine.pidfile.write_text(f"{process.pid}\n")


def booted_pid(machine: Machine) -> int | None:
    """systemd-nspawn's pid while the machine runs (a reused pid is not taken for it)."""
    booted = _BOOTED.get(machine.name)
    if booted is not None:
        # Ours: its exit status says it all (its command line is in flux while it execs).
        if booted.poll() is None:
            return booted.pid
        del _BOOTED[machine.name]  # reaped
        return None
    try:
        pid = int(machine.pidfile.read_text())
    except (OSError, ValueError):
        return None
    line = processes.cmdline(pid)
    if not processes.alive(pid) or line is None:
        return None
    return pid if f"--machine={machine.name}\0".encode() in line else None


def _boot_id(machine: Machine) -> str:
    """Which boot of the machine this is: its nspawn pid and that process's start time."""
    pid = booted_pid(machine)
    try:
        started = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        started = "?"
    return f"{pid}:{started}"


def _wait_gone(machine: Machine, pid: int) -> None:
    """Until systemd-nspawn has ended (after its init did); SIGKILL if it lingers."""
    deadline = time.monotonic() + STOP_TIMEOUT
    while booted_pid(machine) == pid and time.monotonic() < deadline:
        time.sleep(0.02)
    if booted_pid(machine) == pid:
        processes.signal_all([pid], signal.SIGKILL)


def _wait_ready(machine: Machine, address: str) -> None:
    """Until the machine's sshd sends its banner; RuntimeError if the machine ended."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        with (
            contextlib.suppress(OSError),
            socket.create_connection((address, SSH_PORT), 1.0) as sock,
        ):
            if sock.recv(64).startswith(b"SSH-"):
                return
        if booted_pid(machine) is None:
            raise RuntimeError(f"machine {machine.name} ended while booting: {_console(machine)}")
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"machine {machine.name}: sshd at {address}:{SSH_PORT} did not answer in "
                f"{READY_TIMEOUT:.0f}s: {_console(machine)}"
            )
        time.sleep(0.05)


def _console(machine: Machine) -> str:
    try:
        lines = machine.console.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no console output"
    return " | ".join(lines[-5:]) or "no console output"


def machine_of(stack: str, hostname: str) -> Machine:
    return Machine(stack, hostname, instances_dir() / stack / hostname)

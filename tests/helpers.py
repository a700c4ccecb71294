"""Helpers shared by workflow, client and integration tests: waiting on a stack, and a
description of a one-instance stack for clients whose describe is stubbed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

from activities.names import WATCH_LAYER
from client.api import OpsflowClient, settled
from opsflow import names
from opsflow.messages import InstanceView, StackDescription
from opsflow.spec import InstanceSpec, LayerSpec, StackSpec


async def wait_for_event(
    client: OpsflowClient, stack: str, kind: str, host: str, timeout: float = 120
) -> StackDescription:
    """The stack once it has an event `kind` about `host`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        found = await client.describe(stack)
        if any(e.kind == kind and e.hostname == host for e in found.events):
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"no {kind} event for {host} in {timeout}s: {found.events[-8:]}")


async def watching(client: OpsflowClient, stack: str, layer: str, timeout: float = 120) -> None:
    """Until the layer's healing loop has a watch that holds its connections (the watch
    says so in its first heartbeat, which a describe of the loop shows)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    handle = client.temporal.get_workflow_handle(names.healing_workflow_id(stack, layer))
    while loop.time() < deadline:
        pending = (await handle.describe()).raw_description.pending_activities
        for found in pending:
            details = found.heartbeat_details.payloads
            if (
                found.activity_type.name == WATCH_LAYER
                and details
                and b"watching" in details[0].data
            ):
                return
        await asyncio.sleep(0.2)
    raise AssertionError(f"no watch of {stack}/{layer} in {timeout}s")


async def quiet(client: OpsflowClient, stack: str, timeout: float = 120) -> StackDescription:
    """Every instance settled, no configure round pending, no command queued or running."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        found = await client.wait_instances(stack, settled, timeout=timeout)
        if not found.configure_pending:
            states = [await client.instance_state(stack, v.hostname) for v in found.instances]
            if all(not s.queue and s.current is None for s in states):
                again = await client.describe(stack)
                if not again.configure_pending:
                    return again
        await asyncio.sleep(0.2)
    raise TimeoutError(f"stack {stack} did not become quiet within {timeout}s")


def one_instance_stack(stack: str, view: InstanceView) -> StackDescription:
    """What describe says of a stack whose layer `web` holds the one instance `view`."""
    spec = StackSpec(
        name=stack,
        layers=[LayerSpec(name="web", instances=[InstanceSpec(hostname=view.hostname)])],
    )
    return StackDescription(
        name=stack,
        spec=spec,
        source_file=None,
        instances=[view],
        deleting=False,
        configure_rounds=0,
        events=[],
    )


def write_private_key(path: Path) -> Path:
    """A fresh unencrypted ed25519 private key in OpenSSH form at `path` (mode 0600)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    text = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    path.write_bytes(text)
    path.chmod(0o600)
    return path


def stop_local_sshds(home: Path) -> None:
    """SIGTERM every local instance's sshd under `home` that still runs: only a process
    whose command line names that instance's sshd_config (pids are reused: a long test
    run wraps pid_max, and a stale pidfile may name another test's process)."""
    for pidfile in home.glob("instances/*/*/ssh/sshd.pid"):
        config = str(pidfile.with_name("sshd_config")).encode()
        with contextlib.suppress(ValueError, OSError):
            pid = int(pidfile.read_text().strip())
            if config in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGTERM)


def instance_processes(stack: str, hostname: str) -> list[int]:
    """A local instance's sshd (first) and every process under it: the ones that serve its
    connections."""
    from activities.local_provider import instance_dir

    pidfile = instance_dir(stack, hostname) / "ssh" / "sshd.pid"
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            parent = int(stat.read_text().rpartition(")")[2].split()[1])
            children.setdefault(parent, []).append(int(stat.parent.name))
    tree = [int(pidfile.read_text().strip())]
    for pid in tree:  # grows as it goes: every descendant
        tree.extend(children.get(pid, []))
    return tree


def signal_instance(stack: str, hostname: str, sig: signal.Signals) -> None:
    """Send `sig` to a local instance's sshd and every process under it. SIGSTOP freezes
    the machine as a worker sees a silent partition (its sockets stay open, nothing
    answers, no RST); SIGCONT gives it back."""
    signal_all(instance_processes(stack, hostname), sig)


def signal_all(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

"""Waiting helpers shared by workflow and integration tests."""

from __future__ import annotations

import asyncio

from client.api import OpsflowClient, settled
from opsflow.messages import StackDescription


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

"""One way to reach Temporal, for the CLI, the worker and tests.

temporalio is imported by `connect`, not with this module: `answers` lets a command that
can do without Temporal (an offline `stack plan`) find out cheaply whether one is there.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING

from opsflow import settings
from opsflow.errors import Unreachable

if TYPE_CHECKING:
    from temporalio.client import Client, Interceptor

PROBE_TIMEOUT = 1.0


async def connect(address: str | None = None, interceptors: Sequence[Interceptor] = ()) -> Client:
    """A client on TEMPORAL_ADDRESS (or `address`) that carries pydantic models."""
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter

    target = address or settings.temporal_address()
    try:
        return await Client.connect(
            target,
            namespace=settings.temporal_namespace(),
            data_converter=pydantic_data_converter,
            interceptors=interceptors,
        )
    except RuntimeError as err:
        raise Unreachable(
            f"cannot reach Temporal at {target}: {err}\n"
            "  start the embedded environment with `opsflow dev up`, "
            "or set TEMPORAL_ADDRESS to a running Temporal"
        ) from None


def answers(address: str | None = None, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether anything accepts a TCP connection at `address` (default TEMPORAL_ADDRESS):
    False means Temporal is certainly not there; True still needs `connect` to tell."""
    host, _, port = (address or settings.temporal_address()).rpartition(":")
    if not host or not port.isdigit():
        return True  # not host:port: let connect say what is wrong with it
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except OSError:
        return False

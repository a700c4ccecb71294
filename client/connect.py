"""One way to reach Temporal, for the CLI, the worker and tests."""

from __future__ import annotations

from collections.abc import Sequence

from temporalio.client import Client, Interceptor
from temporalio.contrib.pydantic import pydantic_data_converter

from opsflow import settings
from opsflow.errors import Unreachable


async def connect(address: str | None = None, interceptors: Sequence[Interceptor] = ()) -> Client:
    """A client on TEMPORAL_ADDRESS (or `address`) that carries pydantic models."""
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

"""The trees a run stages, on this worker: the cookbooks and an app's code unpacked from
the artifact store by their blob's digest (runtime/tree_cache.py, fetched when this worker
has not got them), so any worker runs any run. A stack made before the artifact store
(no blob) falls back to the directory it names, which exists on the worker that fetched
it."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from temporalio.exceptions import ApplicationError

from activities.recipes.releases import App
from opsflow.errors import ErrorType, InvalidInput
from opsflow.messages import RunContext
from runtime import tree_cache
from runtime.artifacts import StoreCorrupt, StoreUnavailable, shared_store


async def local_trees(context: RunContext, app: App | None) -> tuple[RunContext, App | None]:
    """`context` and `app` with their directories on this worker's disk."""
    if context.cookbooks_blob is not None:
        directory = await asyncio.to_thread(_tree, context.cookbooks_blob, "cookbooks")
        context = context.model_copy(update={"cookbooks_dir": str(directory)})
    if app is not None and app.source_blob is not None:
        directory = await asyncio.to_thread(_tree, app.source_blob, f"app {app.name}'s code")
        app = dataclasses.replace(app, source_dir=str(directory))
    return context, app


def _tree(blob: str, what: str) -> Path:
    """The unpacked blob; unavailable is worth retrying, missing or corrupt is not."""
    try:
        return tree_cache.tree(shared_store(), blob)
    except StoreUnavailable as err:
        raise ApplicationError(f"{what}: {err}", type=ErrorType.COOKBOOKS_UNAVAILABLE) from None
    except (InvalidInput, StoreCorrupt) as err:
        raise ApplicationError(
            f"{what}: {err}", type=ErrorType.COOKBOOKS_FETCH_FAILED, non_retryable=True
        ) from None

"""Read from the stack what activities need: a recipe run's attributes, recipes and
cookbooks (from the configuration snapshot its command names; a query for runs sent
without one); a layer's instances (healing and scaling loops, a query).

Never carried in the command itself, so the attributes never enter workflow history.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities import names
from activities.snapshots import SnapshotReader
from opsflow import names as opsflow_names
from opsflow import snapshots
from opsflow.messages import ConfigurationQuery, InstanceView, RecipeRunInput, RunContext
from workflows import handlers
from workflows.failures import not_found


def stack_context_source(
    client: Client, reader: SnapshotReader | None = None
) -> Callable[[RecipeRunInput], Awaitable[RunContext]]:
    """A run's context: from the snapshot its command names (read from the store, cached),
    or, for a run sent without one (before the upgrade), by asking the stack."""
    reader = reader or SnapshotReader()

    async def fetch(run: RecipeRunInput) -> RunContext:
        if run.snapshot is not None:
            snapshot = await reader.read(run.snapshot)
            # sent_at: when the run was first scheduled, the same on every retry.
            sent_at = activity.info().scheduled_time if activity.in_activity() else None
            return snapshots.run_context(
                snapshot, run.instance, run.event, run=run, sent_at=sent_at
            )
        handle = client.get_workflow_handle(opsflow_names.stack_workflow_id(run.stack))
        request = ConfigurationQuery(hostname=run.hostname, event=run.event, instance=run.instance)
        try:
            context: RunContext = await handle.query(
                handlers.RUN_CONTEXT, request, result_type=RunContext
            )
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise not_found(f"stack {run.stack} does not exist") from None
            raise  # the worker or server is busy or restarting: retry the activity
        return context

    return fetch


async def layer_instances(client: Client, stack: str, layer: str) -> list[InstanceView]:
    """The instances the layer's load-based scaling counts (those whose first layer it
    is), as the stack workflow knows them now."""
    return await _loop_instances(client, stack, layer, handlers.LAYER_INSTANCES)


async def healing_instances(client: Client, stack: str, layer: str) -> list[InstanceView]:
    """The instances the layer's healing loop checks (first layer it, all layers healing)."""
    return await _loop_instances(client, stack, layer, handlers.HEALING_INSTANCES)


async def _loop_instances(client: Client, stack: str, layer: str, query: str) -> list[InstanceView]:
    handle = client.get_workflow_handle(opsflow_names.stack_workflow_id(stack))
    try:
        views: list[InstanceView] = await handle.query(query, layer, result_type=list[InstanceView])
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise not_found(f"stack {stack} does not exist") from None
        raise  # the server or the stack's worker is busy: retry
    return views


class StackReader:
    """Activities that only read the stack (a query)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    @activity.defn(name=names.DESCRIBE_LAYER)
    async def describe_layer(self, stack: str, layer: str) -> list[InstanceView]:
        return await layer_instances(self._client, stack, layer)

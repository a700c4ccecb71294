"""Read what a recipe run needs (attributes, recipes, cookbooks) from its stack workflow.

Asked when the run starts rather than carried in the command, so a run always sees the
latest stack configuration and the attributes never enter workflow history.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from opsflow import names
from opsflow.errors import NOT_FOUND_TYPE
from opsflow.messages import ConfigurationQuery, RecipeRunInput, RunContext


def stack_context_source(client: Client) -> Callable[[RecipeRunInput], Awaitable[RunContext]]:
    async def fetch(run: RecipeRunInput) -> RunContext:
        handle = client.get_workflow_handle(names.stack_workflow_id(run.stack))
        request = ConfigurationQuery(hostname=run.hostname, event=run.event, instance=run.instance)
        try:
            context: RunContext = await handle.query("run_context", request, result_type=RunContext)
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise ApplicationError(
                    f"stack {run.stack} does not exist", type=NOT_FOUND_TYPE, non_retryable=True
                ) from None
            raise  # the worker or server is busy or restarting: retry the activity
        return context

    return fetch

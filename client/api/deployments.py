"""Commands and app deployments: run, deploy, app commands, the canary gate, progress."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import CancelledError
from temporalio.service import RPCError
from temporalio.workflow import UpdateMethodMultiParam

from client.api.base import from_failure, run_url
from client.api.stacks import StackCalls
from opsflow.errors import InvalidInput, NotFound, OperationFailed
from opsflow.messages import (
    AppCommandInput,
    DeployInput,
    DeploymentDetail,
    DeploymentEnd,
    DeploymentResult,
    DeploymentStatus,
    DeploymentSummary,
    RunCommandInput,
    RunCommandResult,
)
from workflows.deployment import DeploymentWorkflow
from workflows.stack import StackWorkflow


class DeploymentCalls(StackCalls):
    # ---- commands ------------------------------------------------------------------

    async def run_command(self, stack: str, request: RunCommandInput) -> RunCommandResult:
        handle = self._stack(stack)
        return await self._call(
            handle.id,
            lambda: handle.execute_update(
                StackWorkflow.run_command, self._stamped(request), rpc_timeout=self.update_timeout
            ),
        )

    async def wait_deployment(self, deployment_id: str) -> DeploymentResult:
        """The deployment's result once it ends; OperationFailed if it failed or was cancelled."""
        return require_success((await self.deployment_end(deployment_id)).result)

    async def deployment_end(self, deployment_id: str) -> DeploymentEnd:
        """How the deployment ended, as soon as it has: its result (whatever its status)
        and last detail. Asked with the `ended` update, which answers in the workflow task
        that closes the run; a run that has closed already, a worker without that update,
        or an update without an answer in time, answers with the run's result instead (and
        no detail)."""
        handle = self.temporal.get_workflow_handle_for(DeploymentWorkflow.run, deployment_id)
        try:
            return await handle.execute_update(DeploymentWorkflow.ended)
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise asyncio.CancelledError from None  # Ctrl-C: the caller cancels the run
        except (WorkflowUpdateFailedError, RPCError):
            pass
        return DeploymentEnd(result=await self._closed_result(deployment_id))

    async def _closed_result(self, deployment_id: str) -> DeploymentResult:
        handle: WorkflowHandle[Any, DeploymentResult] = self.temporal.get_workflow_handle_for(
            DeploymentWorkflow.run, deployment_id
        )
        try:
            return await handle.result()
        except WorkflowFailureError as err:
            if not isinstance(err.cause, CancelledError):
                raise from_failure(err.cause, deployment_id) from None
            result = await self._call(
                deployment_id, lambda: handle.query(DeploymentWorkflow.progress)
            )
            result.status = DeploymentStatus.CANCELLED
            return result
        except RPCError:
            return await self._call(deployment_id, handle.result)  # maps the error

    async def cancel_deployment(self, deployment_id: str) -> None:
        """Ask a running deployment to stop: queued runs are dropped, running ones killed."""
        handle = self.temporal.get_workflow_handle(deployment_id)
        await self._call(deployment_id, handle.cancel)

    async def deployment_progress(self, deployment_id: str) -> DeploymentResult:
        handle = self.temporal.get_workflow_handle_for(DeploymentWorkflow.run, deployment_id)
        return await self._call(
            deployment_id,
            lambda: handle.query(DeploymentWorkflow.progress, rpc_timeout=self.query_timeout),
        )

    # ---- app deployments -----------------------------------------------------------

    async def deploy(self, stack: str, request: DeployInput) -> RunCommandResult:
        """Start deploying an app (a DeploymentWorkflow); returns its id and targets."""
        handle = self._stack(stack)
        return await self._call(
            handle.id,
            lambda: handle.execute_update(
                StackWorkflow.deploy, self._stamped(request), rpc_timeout=self.update_timeout
            ),
        )

    async def app_command(self, stack: str, request: AppCommandInput) -> RunCommandResult:
        """rollback (re-activate each instance's previous release) or undeploy an app."""
        handle = self._stack(stack)
        return await self._call(
            handle.id,
            lambda: handle.execute_update(
                StackWorkflow.app_command, self._stamped(request), rpc_timeout=self.update_timeout
            ),
        )

    async def approve(self, deployment_id: str) -> None:
        """Let a canary deployment go on past its first batch."""
        await self._gate(deployment_id, DeploymentWorkflow.approve, "approve")

    async def abort(self, deployment_id: str) -> None:
        """Stop a canary deployment at its gate and roll its first batch back."""
        await self._gate(deployment_id, DeploymentWorkflow.abort, "abort")

    async def _gate(
        self,
        deployment_id: str,
        update: UpdateMethodMultiParam[[DeploymentWorkflow], None],
        verb: str,
    ) -> None:
        handle = self.temporal.get_workflow_handle_for(DeploymentWorkflow.run, deployment_id)
        try:
            await self._call(
                deployment_id,
                lambda: handle.execute_update(update, rpc_timeout=self.update_timeout),
            )
        except NotFound:
            # An update to a finished workflow is "not found": say what happened instead.
            description = await self._call(deployment_id, handle.describe)
            if description.status != WorkflowExecutionStatus.RUNNING:
                raise InvalidInput(
                    f"{deployment_id} has already finished: nothing to {verb}"
                ) from None
            raise

    async def deployment_detail(self, deployment_id: str) -> DeploymentDetail:
        handle = self.temporal.get_workflow_handle_for(DeploymentWorkflow.run, deployment_id)
        return await self._call(
            deployment_id,
            lambda: handle.query(DeploymentWorkflow.detail, rpc_timeout=self.query_timeout),
        )

    async def deployments(self, stack: str) -> list[DeploymentSummary]:
        """The stack's deployments and commands, newest first."""
        handle = self._stack(stack)
        return await self._call(
            handle.id,
            lambda: handle.query(StackWorkflow.deployments, rpc_timeout=self.query_timeout),
        )


def require_success(result: DeploymentResult) -> DeploymentResult:
    """The result of a deployment that succeeded; OperationFailed saying what went wrong
    for any other."""
    if result.status != DeploymentStatus.SUCCESSFUL:
        raise OperationFailed(_deployment_failure(result), run_url(result.id))
    return result


def _deployment_failure(result: DeploymentResult) -> str:
    if result.status == DeploymentStatus.ROLLED_BACK:
        failed = sum(not r.ok for r in result.instances)
        lines = [
            f"{result.command} stopped ({failed} instance(s) failed) and the instances it "
            "had changed were rolled back to their previous release"
        ]
    elif result.status == DeploymentStatus.CANCELLED:
        lines = [f"{result.command} was cancelled"]
        done = {r.hostname for r in result.instances}
        lines.extend(f"  {h}: no answer" for h in result.targets if h not in done)
    else:
        failed = sum(not r.ok for r in result.instances)
        lines = [f"{result.command} failed on {failed} instance(s)"]
    for item in result.instances:
        if item.cancelled:
            lines.append(f"  {item.hostname}: cancelled")
        elif not item.ok:
            lines.append(f"  {item.hostname}: {item.error}")
            if item.log_tail:
                lines.extend(f"    | {line}" for line in item.log_tail.splitlines()[-10:])
    return "\n".join(lines)

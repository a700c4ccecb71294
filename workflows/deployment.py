"""DeploymentWorkflow: one command (setup, configure, ...) across its target instances.

OpsWorks called every command a deployment; so does opsflow. Each instance workflow runs
its part (so commands on one instance never overlap) and signals the result back here.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from opsflow import names
    from opsflow.messages import (
        CancelCommand,
        DeploymentInput,
        DeploymentResult,
        DeploymentStatus,
        InstanceCommand,
        InstanceCommandKind,
        InstanceCommandResult,
    )
    from opsflow.status import InstanceStatus


# How long a cancelled deployment waits for its instances to confirm they stopped.
CANCEL_GRACE = timedelta(minutes=2)


@workflow.defn
class DeploymentWorkflow:
    @workflow.init
    def __init__(self, request: DeploymentInput) -> None:
        self._request = request
        self._results: dict[str, InstanceCommandResult] = {}
        self._cancelling = False

    @workflow.run
    async def run(self, request: DeploymentInput) -> DeploymentResult:
        for hostname in request.targets:
            command = InstanceCommand(
                id=self._command_id(hostname),
                kind=InstanceCommandKind.RUN,
                event=request.event,
                recipes=request.recipes,
                reply_to=workflow.info().workflow_id,
                stage_only=request.stage_only,
            )
            handle = workflow.get_external_workflow_handle(
                names.instance_workflow_id(request.stack, hostname)
            )
            try:
                await handle.signal("enqueue", command)
            except Exception as err:  # the instance was deleted since the command was made
                self._results[hostname] = InstanceCommandResult(
                    command_id=command.id,
                    hostname=hostname,
                    ok=False,
                    status=InstanceStatus.TERMINATED,
                    error=f"instance is gone: {err}",
                )
        try:
            await workflow.wait_condition(lambda: len(self._results) >= len(request.targets))
        except asyncio.CancelledError:
            await self._cancel_pending(request)
            raise
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._progress()

    async def _cancel_pending(self, request: DeploymentInput) -> None:
        """Stop what is still queued or running on each instance, and wait to hear back."""
        self._cancelling = True
        for hostname in request.targets:
            if hostname in self._results:
                continue
            handle = workflow.get_external_workflow_handle(
                names.instance_workflow_id(request.stack, hostname)
            )
            try:
                await handle.signal(
                    "cancel_command", CancelCommand(command_id=self._command_id(hostname))
                )
            except Exception:  # the instance is gone: nothing runs there
                continue
        try:
            await workflow.wait_condition(
                lambda: len(self._results) >= len(request.targets), timeout=CANCEL_GRACE
            )
        except TimeoutError:
            workflow.logger.warning("not every instance confirmed the cancellation")

    def _command_id(self, hostname: str) -> str:
        return f"{self._request.id}:{hostname}"

    @workflow.signal
    def instance_result(self, result: InstanceCommandResult) -> None:
        if result.hostname in self._request.targets:
            self._results[result.hostname] = result

    @workflow.query
    def progress(self) -> DeploymentResult:
        return self._progress()

    def _progress(self) -> DeploymentResult:
        done = len(self._results) >= len(self._request.targets)
        failed = any(not r.ok for r in self._results.values())
        if self._cancelling:
            status = DeploymentStatus.CANCELLED
        elif not done:
            status = DeploymentStatus.RUNNING
        else:
            status = DeploymentStatus.FAILED if failed else DeploymentStatus.SUCCESSFUL
        return DeploymentResult(
            id=self._request.id,
            command=self._request.command,
            status=status,
            targets=self._request.targets,
            instances=[self._results[h] for h in self._request.targets if h in self._results],
        )

"""DeploymentWorkflow: one command across its target instances, batch by batch.

OpsWorks called every command a deployment; so does opsflow. Each instance workflow runs
its part (so commands on one instance never overlap) and signals the result back here.

An app deploy rolls out like CodeDeploy or Nomad: all at once, in rolling batches, or a
canary batch that waits for approval (or a bake time) before the rest. Each instance must
pass the health check after its deploy. When more instances fail than --max-failures
allows, the deployment stops and every instance it changed is rolled back to its previous
release, last changed first (compensation). Other commands are one all-at-once batch.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from enum import StrEnum

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from opsflow import names
    from opsflow.errors import ErrorType
    from opsflow.messages import (
        AppAction,
        CancelCommand,
        DeploymentDetail,
        DeploymentEnd,
        DeploymentInput,
        DeploymentResult,
        DeploymentStatus,
        DeploymentSummary,
        InstanceCommand,
        InstanceCommandKind,
        InstanceCommandResult,
        InstanceDeployment,
        InstanceDeployStatus,
    )
    from opsflow.rollout import (
        Amount,
        Strategy,
        batch_of,
        over_budget,
        parse_max_failures,
        plan_batches,
        rollback_order,
    )
    from opsflow.status import InstanceStatus
    from workflows import common, handlers
    from workflows.instance import InstanceWorkflow

# How long a cancelled deployment waits for its instances to confirm they stopped.
CANCEL_GRACE = timedelta(minutes=2)


class Gate(StrEnum):
    """What an operator said to a canary waiting for approval (the update of that name)."""

    APPROVE = "approve"
    ABORT = "abort"


@workflow.defn
class DeploymentWorkflow:
    @workflow.init
    def __init__(self, request: DeploymentInput) -> None:
        self._request = request
        strategy = request.strategy
        self._batches = plan_batches(request.targets, strategy, batch_of(strategy, request.batch))
        self._instances = {
            host: InstanceDeployment(hostname=host, batch=index)
            for index, hosts in enumerate(self._batches)
            for host in hosts
        }
        self._results: dict[str, InstanceCommandResult] = {}  # by command id
        self._sent: dict[str, str] = {}  # command id -> hostname, awaiting a result
        self._status = DeploymentStatus.RUNNING
        self._current_batch = 0
        self._gate: Gate | None = None  # from the canary updates
        self._awaiting_approval = False
        self._changed: list[str] = []  # instances whose release this deployment switched
        self._ended = False  # the status is final: the `ended` update may answer

    @workflow.run
    async def run(self, request: DeploymentInput) -> DeploymentResult:
        self._started_at = workflow.now()
        try:
            status = await self._rollout(request)
        except asyncio.CancelledError:
            await self._cancel_pending()
            await self._finish(DeploymentStatus.CANCELLED)
            raise
        await self._finish(status)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._progress()

    # ---- the rollout -----------------------------------------------------------------

    async def _rollout(self, request: DeploymentInput) -> DeploymentStatus:
        budget = self._budget(request)
        failed = 0
        for index, batch in enumerate(self._batches):
            self._current_batch = index
            for result in await self._run_batch(batch, request):
                failed += not result.ok
            if failed and over_budget(failed, len(request.targets), budget):
                return await self._compensate(request)
            gate = request.strategy == Strategy.CANARY and index == 0
            if gate and len(self._batches) > 1 and not await self._canary_gate(request):
                return await self._compensate(request)
        return DeploymentStatus.SUCCESSFUL

    @staticmethod
    def _budget(request: DeploymentInput) -> Amount | None:
        if request.max_failures is None:
            return None
        return parse_max_failures(request.max_failures)

    async def _run_batch(
        self, batch: list[str], request: DeploymentInput
    ) -> list[InstanceCommandResult]:
        ids = [self._command_id(host) for host in batch]
        commands = [
            InstanceCommand(
                id=command_id,
                kind=InstanceCommandKind.RUN,
                event=request.event,
                recipes=request.recipes,
                reply_to=workflow.info().workflow_id,
                stage_only=request.stage_only,
                app=request.app,
                health_check=request.health_check,
                snapshot=request.snapshot,
                custom_json=request.custom_json,
            )
            for command_id in ids
        ]
        # All signals of a batch go out in one workflow task, not one task per instance.
        await asyncio.gather(*map(self._send, batch, commands))
        await workflow.wait_condition(lambda: all(i in self._results for i in ids))
        results = [self._results[i] for i in ids]
        for result in results:
            item = self._instances[result.hostname]
            item.status = InstanceDeployStatus.SUCCESSFUL
            if result.skipped:
                item.status = InstanceDeployStatus.SKIPPED
            elif not result.ok:
                item.status = InstanceDeployStatus.FAILED
            item.error, item.finished_at = result.error, workflow.now()
            item.release, item.previous_release = result.release, result.previous_release
            if result.release_switched:
                self._changed.append(result.hostname)
        return results

    async def _canary_gate(self, request: DeploymentInput) -> bool:
        """Wait for `approve` or `abort`; with a bake time, silence means approve."""
        self._awaiting_approval = True
        self._status = DeploymentStatus.AWAITING_APPROVAL
        try:
            if request.canary_bake_seconds is None:
                await workflow.wait_condition(lambda: self._gate is not None)
            else:
                await workflow.wait_condition(
                    lambda: self._gate is not None,
                    timeout=timedelta(seconds=request.canary_bake_seconds),
                )
        except TimeoutError:
            self._gate = Gate.APPROVE
        finally:
            self._awaiting_approval = False
            self._status = DeploymentStatus.RUNNING
        return self._gate == Gate.APPROVE

    async def _compensate(self, request: DeploymentInput) -> DeploymentStatus:
        """Undo, last changed first: each changed instance goes back to its previous release.
        The rollback runs without the deployment's custom JSON (as OpsWorks' rollback, a
        new deployment of its own): what the recipes see is the stack's configuration."""
        if request.app is None or not self._changed:
            return DeploymentStatus.FAILED
        undo = request.app.model_copy(update={"action": AppAction.ROLLBACK, "release": None})
        for host in rollback_order(self._changed):
            command_id = f"{self._command_id(host)}:rollback"
            await self._send(
                host,
                InstanceCommand(
                    id=command_id,
                    kind=InstanceCommandKind.RUN,
                    event="rollback",
                    reply_to=workflow.info().workflow_id,
                    app=undo,
                    snapshot=request.snapshot,
                ),
            )
            await workflow.wait_condition(lambda cid=command_id: cid in self._results)  # type: ignore[misc]
            result, item = self._results[command_id], self._instances[host]
            if result.ok:
                item.status, item.release = InstanceDeployStatus.ROLLED_BACK, result.release
            else:
                item.status = InstanceDeployStatus.FAILED
                item.error = f"{item.error or 'deployed'}; rollback failed: {result.error}"
        return DeploymentStatus.ROLLED_BACK

    # ---- messages ----------------------------------------------------------------------

    async def _send(self, hostname: str, command: InstanceCommand) -> None:
        self._sent[command.id] = hostname
        item = self._instances.get(hostname)
        if item is not None and command.event != "rollback":
            item.status, item.started_at = InstanceDeployStatus.RUNNING, workflow.now()
        handle = workflow.get_external_workflow_handle(
            names.instance_workflow_id(self._request.stack, hostname)
        )
        try:
            await handle.signal(InstanceWorkflow.enqueue, command)
        except Exception as err:  # the instance was deleted since the command was made
            self.instance_result(
                InstanceCommandResult(
                    command_id=command.id,
                    hostname=hostname,
                    ok=False,
                    status=InstanceStatus.TERMINATED,
                    error=f"instance is gone: {err}",
                )
            )

    async def _cancel_pending(self) -> None:
        """Stop what is still queued or running on each instance, and wait to hear back."""
        self._status = DeploymentStatus.CANCELLED
        pending = {cid: host for cid, host in self._sent.items() if cid not in self._results}

        async def cancel(command_id: str, hostname: str) -> None:
            handle = workflow.get_external_workflow_handle(
                names.instance_workflow_id(self._request.stack, hostname)
            )
            try:
                await handle.signal(
                    InstanceWorkflow.cancel_command, CancelCommand(command_id=command_id)
                )
            except Exception:  # the instance is gone: nothing runs there
                self._results[command_id] = InstanceCommandResult(
                    command_id=command_id,
                    hostname=hostname,
                    ok=False,
                    cancelled=True,
                    status=InstanceStatus.TERMINATED,
                )

        await asyncio.gather(*(cancel(cid, host) for cid, host in pending.items()))
        try:
            await workflow.wait_condition(
                lambda: all(cid in self._results for cid in pending), timeout=CANCEL_GRACE
            )
        except TimeoutError:
            workflow.logger.warning("not every instance confirmed the cancellation")

    async def _finish(self, status: DeploymentStatus) -> None:
        self._status = status
        self._finished_at = workflow.now()
        if self._request.tag_runs:
            workflow.upsert_search_attributes([common.STATUS_ATTRIBUTE.value_set(status.value)])
        stack = workflow.get_external_workflow_handle(names.stack_workflow_id(self._request.stack))
        try:
            await stack.signal(handlers.DEPLOYMENT_FINISHED, self._summary())
        except Exception:  # the stack was deleted meanwhile: nobody keeps the history
            workflow.logger.warning("stack %s is gone", self._request.stack)
        self._ended = True  # after the stack knows: whoever hears of the end may ask it

    def _command_id(self, hostname: str) -> str:
        return f"{self._request.id}:{hostname}"

    @workflow.signal
    def instance_result(self, result: InstanceCommandResult) -> None:
        if result.command_id in self._sent:
            self._results[result.command_id] = result

    @workflow.update
    async def ended(self) -> DeploymentEnd:
        """Answers once the deployment has ended and its stack knows, in the workflow task
        that closes the run: with the last detail, so a follower needs no query of the
        closed run (which the worker would replay from its whole history)."""
        await workflow.wait_condition(lambda: self._ended)
        return DeploymentEnd(result=self._progress(), detail=self.detail())

    @workflow.update
    def approve(self) -> None:
        self._gate = Gate.APPROVE

    @approve.validator
    def _validate_approve(self) -> None:
        self._check_waiting(Gate.APPROVE)

    @workflow.update
    def abort(self) -> None:
        self._gate = Gate.ABORT

    @abort.validator
    def _validate_abort(self) -> None:
        self._check_waiting(Gate.ABORT)

    def _check_waiting(self, verb: Gate) -> None:
        if not self._awaiting_approval:
            raise ApplicationError(
                f"{self._request.id} is not waiting for approval ({self._status.value}): "
                f"nothing to {verb}",
                type=ErrorType.INVALID_INPUT,
                non_retryable=True,
            )

    # ---- queries -----------------------------------------------------------------------

    @workflow.query
    def progress(self) -> DeploymentResult:
        return self._progress()

    @workflow.query
    def detail(self) -> DeploymentDetail:
        return DeploymentDetail(
            **self._summary().model_dump(),
            batches=self._batches,
            current_batch=self._current_batch,
            awaiting_approval=self._awaiting_approval,
            instances=[self._instances[h] for h in self._request.targets],
            custom_json=self._request.custom_json,
        )

    def _summary(self) -> DeploymentSummary:
        app = self._request.app
        return DeploymentSummary(
            id=self._request.id,
            stack=self._request.stack,
            app=app.app if app else None,
            command=self._request.command,
            strategy=self._request.strategy,
            status=self._status,
            revision=app.revision if app else None,
            release=app.release if app else None,
            started_at=getattr(self, "_started_at", None) or workflow.now(),
            finished_at=getattr(self, "_finished_at", None),
        )

    def _progress(self) -> DeploymentResult:
        # Each target's result for the command itself (its compensation is in `detail`).
        latest = {
            result.hostname: result
            for command_id, result in self._results.items()
            if not command_id.endswith(":rollback")
        }
        return DeploymentResult(
            id=self._request.id,
            command=self._request.command,
            status=self._status,
            targets=self._request.targets,
            instances=[latest[h] for h in self._request.targets if h in latest],
        )

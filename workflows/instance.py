"""InstanceWorkflow: one instance's life, and the one place its commands are serialized.

Runbook: start = launch the machine, run the setup recipes, online. Stop = shutdown
recipes, then stop the machine. Every status change is reported to the stack, which
decides when configure runs everywhere.

A local instance is bound to the worker that launched it (view.task_queue): every later
activity of it goes to that worker's own queue. When nothing starts there within
common.WORKER_GONE_TIMEOUT the worker is gone: the command in flight fails naming it, an
online instance is connection_lost (a stack event says why), and what cannot run any more
is not waited for: stop and delete finish (the machine went with its worker), a start or
heal launches a new machine on whichever worker takes the shared queue.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.workflow import ActivityCancellationType, ActivityHandle

with workflow.unsafe.imports_passed_through():
    from activities import names as activity
    from opsflow import configure, names
    from opsflow.events import EventKind
    from opsflow.healing import HEALABLE
    from opsflow.messages import (
        AppAction,
        AppRelease,
        CancelCommand,
        ConnectionLost,
        Ec2Resources,
        HealthCheckInput,
        HealthCheckResult,
        InstanceChanged,
        InstanceCommand,
        InstanceCommandKind,
        InstanceCommandResult,
        InstanceView,
        LaunchInput,
        LaunchResult,
        MachineInput,
        RecipeRunInput,
        RecipeRunResult,
        StackEvent,
        TargetInput,
    )
    from opsflow.spec import HealthCheckSpec
    from opsflow.state import MAX_RUNS_KEPT, InstanceState, RunRecord
    from opsflow.status import RUNNING, InstanceStatus
    from workflows import common, handlers


class _WorkerGone(Exception):
    """The worker this instance is bound to took nothing from its queue in time."""


class _RecipesFailed(Exception):
    def __init__(
        self, message: str, log_tail: str | None, run_id: str, cancelled: bool = False
    ) -> None:
        super().__init__(message)
        self.log_tail = log_tail
        self.run_id = run_id
        self.cancelled = cancelled


def failure_message(err: BaseException) -> tuple[str, str | None]:
    """The most useful line of an activity failure, and the recipe log tail if any."""
    cause: BaseException | None = err
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        tail = None
        if cause.details and isinstance(cause.details[0], str):
            tail = cause.details[0]
        # The first line names what failed; the log lines after it are in `tail`.
        return cause.message.split("\n", 1)[0], tail
    return str(cause or err), None


@workflow.defn
class InstanceWorkflow:
    @workflow.init
    def __init__(self, state: InstanceState) -> None:
        self._state = state
        # The recipe run in flight, so cancel_command can cancel it.
        self._running: ActivityHandle[RecipeRunResult] | None = None
        self._cancelled_replies: list[tuple[InstanceCommand, InstanceCommandResult]] = []

    @workflow.run
    async def run(self, state: InstanceState) -> None:
        await self._report()
        while True:
            await workflow.wait_condition(
                lambda: (
                    bool(self._state.queue)
                    or bool(self._cancelled_replies)
                    or common.history_is_long(self._state.max_history_events)
                )
            )
            while self._cancelled_replies:
                await self._reply(*self._cancelled_replies.pop(0))
            if not self._state.queue and not common.history_is_long(self._state.max_history_events):
                continue
            if not self._state.queue:
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(self._state)
            command = self._state.queue.pop(0)
            self._state.current = command
            result = await self._execute(command)
            self._state.current = None
            self._state.last_result = result
            await self._reply(command, result)
            if self._state.view.status == InstanceStatus.TERMINATED:
                # Commands that arrived after delete can never run: say so, then finish.
                for leftover in self._state.queue:
                    await self._reply(leftover, self._skipped(leftover, "instance was deleted"))
                await workflow.wait_condition(workflow.all_handlers_finished)
                return

    @workflow.signal
    def enqueue(self, command: InstanceCommand) -> None:
        if command.kind == InstanceCommandKind.HEAL:
            self._state.queue.insert(0, command)  # nothing else can run on a lost machine
        else:
            self._state.queue.append(command)

    @workflow.signal
    async def connection_lost(self, lost: ConnectionLost) -> None:
        """The healing loop saw this online instance fail its checks."""
        if lost.worker_gone and self._state.view.task_queue is not None:
            self._state.worker_gone = lost.reason  # a heal then waits for nothing there
        if self._state.view.status != InstanceStatus.ONLINE:
            return  # stopped, set up or healed meanwhile: the loss no longer applies
        if lost.unreachable and self._running is not None:
            self._running.cancel()  # its SSH connection is gone: the run cannot finish
        await self._set_status(InstanceStatus.CONNECTION_LOST, message=lost.reason)

    @workflow.signal
    async def connection_restored(self) -> None:
        """A lost instance that was not replaced answers its checks again."""
        if self._state.view.status == InstanceStatus.CONNECTION_LOST:
            await self._set_status(InstanceStatus.ONLINE, message=None)

    @workflow.signal
    def cancel_command(self, request: CancelCommand) -> None:
        """Drop a queued command, or cancel the recipe run of the one in flight."""
        current = self._state.current
        if current is not None and current.id == request.command_id:
            if self._running is not None:
                self._running.cancel()
            return
        dropped = [c for c in self._state.queue if c.id == request.command_id]
        self._state.queue = [c for c in self._state.queue if c.id != request.command_id]
        for command in dropped:
            result = self._result(command, ok=False, error="cancelled before it started")
            result.cancelled = True
            self._cancelled_replies.append((command, result))

    @workflow.query
    def describe(self) -> InstanceState:
        return self._state

    # ---- commands ------------------------------------------------------------------

    async def _execute(self, command: InstanceCommand) -> InstanceCommandResult:
        if configure.is_superseded(command, self._state.queue):
            return self._skipped(command, "superseded by a newer configure")
        match command.kind:
            case InstanceCommandKind.START:
                return await self._start(command)
            case InstanceCommandKind.STOP:
                return await self._stop(command)
            case InstanceCommandKind.DELETE:
                return await self._delete(command)
            case InstanceCommandKind.RUN:
                return await self._run(command)
            case InstanceCommandKind.HEAL:
                return await self._heal(command)

    async def _start(
        self, command: InstanceCommand, kept: Ec2Resources | None = None
    ) -> InstanceCommandResult:
        view = self._state.view
        if view.status in (InstanceStatus.ONLINE, InstanceStatus.TERMINATED):
            return self._skipped(command, f"instance is already {view.status.value}")
        if command.layers:  # changed while it was stopped (`stack apply`): now its own
            view.layers = list(command.layers)
        await self._set_status(InstanceStatus.BOOTING, message=None)
        request = LaunchInput(
            stack=self._state.stack,
            hostname=view.hostname,
            provider=view.provider,
            ec2=command.machine,
            kept=kept,
            registered=command.registered,
        )
        try:
            try:  # a stopped local instance starts again where its files are
                if self._state.worker_gone is not None:
                    raise _WorkerGone()
                launched = await self._launch(request, self._queue())
            except _WorkerGone:  # they went with its worker: a new machine, on any worker
                view.task_queue, self._state.worker_gone = None, None
                launched = await self._launch(request, None)
        except ActivityError as err:
            message, _ = failure_message(err)
            self._state.ec2 = kept  # a later delete still releases what the lost one had
            await self._set_status(InstanceStatus.START_FAILED, message=message)
            return self._result(command, ok=False, error=message)
        view.ssh, view.root, view.private_ip = launched.ssh, launched.root, launched.private_ip
        created = view.created_at
        if launched.facts is not None:  # the machine's facts, for the stack configuration
            for name, value in launched.facts:
                setattr(view, name, value)
        # OpsWorks' created_at is the instance's first launch, booted_at its latest boot;
        # a provider that knows neither (local, registered) gets the launch's moment.
        view.created_at = created or view.created_at or workflow.now()
        view.booted_at = view.booted_at or workflow.now()
        if launched.task_queue is not None and workflow.patched(common.BOUND_TO_WORKER_PATCH):
            view.task_queue, self._state.worker_gone = launched.task_queue, None
        if launched.ec2 is not None and command.machine is not None:
            self._state.ec2, self._state.region = launched.ec2, command.machine.region
            self._state.target_group = command.machine.target_group
            view.ec2_instance_id = launched.ec2.instance_id
        await self._set_status(InstanceStatus.RUNNING_SETUP, message=None)
        try:
            run = await self._run_recipes(command, "setup", None)
            # OpsWorks order: setup, then each app's current release, then online.
            for app in command.deploy_after_setup:
                await self._run_recipes(command, "deploy", None, app)
        except _RecipesFailed as failed:
            message = str(failed)
            if command.terminate_on_setup_failure:  # compensation: the machine goes
                await self._machine(activity.TERMINATE_INSTANCE)
                view.ssh, view.private_ip, self._state.ec2 = None, None, None
                view.ec2_instance_id = None
                message += " (machine terminated: on_setup_failure is terminate)"
            await self._set_status(InstanceStatus.SETUP_FAILED, message=message)
            return self._result(
                command, ok=False, error=message, log_tail=failed.log_tail, run_id=failed.run_id
            )
        try:
            await self._target(activity.REGISTER_TARGET)
        except ActivityError as err:
            # Compensation: what this start made goes (the machine and all it holds).
            message = f"load balancer: {failure_message(err)[0]}"
            await self._machine(activity.TERMINATE_INSTANCE)
            view.ssh, view.private_ip, self._state.ec2 = None, None, None
            await self._set_status(InstanceStatus.START_FAILED, message=message)
            return self._result(command, ok=False, error=message)
        await self._set_status(InstanceStatus.ONLINE, message=None)
        return self._result(command, ok=True, run_id=run.run_id)

    async def _launch(self, request: LaunchInput, queue: str | None) -> LaunchResult:
        try:
            launched: LaunchResult = await workflow.execute_activity(
                activity.LAUNCH_INSTANCE,
                request,
                result_type=LaunchResult,
                start_to_close_timeout=common.PROVIDER_TIMEOUT,
                retry_policy=common.PROVIDER_RETRY,
                task_queue=queue,
                schedule_to_start_timeout=common.start_within(queue),
            )
        except ActivityError as err:
            if queue is not None and common.worker_gone(err):
                await self._worker_lost(queue)
                raise _WorkerGone() from None
            raise
        return launched

    async def _target(self, name: str) -> None:
        """Register with (or deregister from, draining) the layer's load balancer, if any."""
        state = self._state
        if state.target_group is None or state.ec2 is None or state.region is None:
            return
        await workflow.execute_activity(
            name,
            TargetInput(
                region=state.region,
                target_group=state.target_group,
                instance_id=state.ec2.instance_id,
            ),
            start_to_close_timeout=common.PROVIDER_TIMEOUT,
            heartbeat_timeout=common.HEALTH_HEARTBEAT_TIMEOUT,
            retry_policy=common.PROVIDER_RETRY,
        )

    async def _heal(self, command: InstanceCommand) -> InstanceCommandResult:
        """Replace a lost machine: the old one goes, a new one with the same hostname and
        layers is started like any instance (setup, the apps' current releases, online)."""
        view = self._state.view
        if view.status == InstanceStatus.ONLINE:  # the loop's connection_lost is on its way
            await self._set_status(InstanceStatus.CONNECTION_LOST, message=command.reason)
        if view.status not in HEALABLE:
            return self._skipped(command, f"instance is {view.status.value}: nothing to heal")
        kept = self._state.ec2  # on ec2 the replacement takes over its address and volumes
        try:
            with contextlib.suppress(ActivityError):  # a lost machine cannot serve anyway
                await self._target(activity.DEREGISTER_TARGET)
            await self._machine(activity.TERMINATE_INSTANCE, keep=True)
        except ActivityError as err:
            message, _ = failure_message(err)
            message = f"could not remove the lost machine: {message}"
            await self._set_status(InstanceStatus.START_FAILED, message=message)
            return self._result(command, ok=False, error=message)
        view.ssh, view.private_ip, self._state.ec2 = None, None, None
        view.ec2_instance_id = None
        # The replacement is a new machine: whichever worker takes the launch gets it.
        view.task_queue, self._state.worker_gone = None, None
        return await self._start(command, kept=kept)

    async def _stop(self, command: InstanceCommand) -> InstanceCommandResult:
        view = self._state.view
        if view.status not in RUNNING and view.status != InstanceStatus.START_FAILED:
            return self._skipped(command, f"instance is already {view.status.value}")
        had_setup = view.status in (InstanceStatus.ONLINE, InstanceStatus.SETUP_FAILED)
        await self._set_status(InstanceStatus.STOPPING, message=None)
        message = None
        try:  # OpsWorks order: out of the load balancer (drained), then shutdown recipes
            await self._target(activity.DEREGISTER_TARGET)
        except ActivityError as err:
            message = f"load balancer deregistration failed: {failure_message(err)[0]}"
        if had_setup and view.ssh is not None:
            # OpsWorks runs Shutdown and stops the instance even when a shutdown recipe fails;
            # the failure is kept as the instance's message.
            try:
                await self._run_recipes(command, "shutdown", None)
            except _RecipesFailed as failed:
                message = f"shutdown recipes failed: {failed}"
        if not await self._machine(activity.STOP_INSTANCE):
            message = f"{self._state.worker_gone}: its machine went with it"
        await self._set_status(InstanceStatus.STOPPED, message=message)
        return self._result(command, ok=True)

    async def _delete(self, command: InstanceCommand) -> InstanceCommandResult:
        if self._state.view.status in RUNNING:
            await self._stop(command)
        await self._set_status(InstanceStatus.TERMINATING, message=None)
        gone = not await self._machine(activity.TERMINATE_INSTANCE)
        view = self._state.view
        view.ssh, view.private_ip = None, None
        message = f"{self._state.worker_gone}: its files stay on that machine" if gone else None
        await self._set_status(InstanceStatus.TERMINATED, message=message)
        return self._result(command, ok=True)

    async def _run(self, command: InstanceCommand) -> InstanceCommandResult:
        assert command.event is not None
        if self._state.view.status != InstanceStatus.ONLINE:
            status = self._state.view.status.value
            return self._skipped(command, f"instance is {status}; {command.event} needs online")
        try:
            run = await self._run_recipes(command, command.event, command.recipes, command.app)
        except _RecipesFailed as failed:
            result = self._result(
                command, ok=False, error=str(failed), log_tail=failed.log_tail, run_id=failed.run_id
            )
            result.cancelled = failed.cancelled
            return result
        result = self._result(command, ok=True, run_id=run.run_id)
        result.release, result.previous_release = run.release, run.previous_release
        result.release_switched = (
            command.app is not None
            and command.app.action == AppAction.DEPLOY
            and run.release != run.previous_release
        )
        if command.health_check is not None:
            health = await self._check_health(command.health_check)
            if not health.healthy:
                result.ok = False
                result.error = (
                    f"{self._state.stack}/{self._state.view.hostname}: health check failed "
                    f"after {health.attempts} probe(s) in {health.seconds:.0f}s: {health.detail}"
                )
        return result

    async def _check_health(self, check: HealthCheckSpec) -> HealthCheckResult:
        view = self._state.view
        assert view.ssh is not None
        queue = self._queue()
        try:
            if self._state.worker_gone is not None:
                raise _WorkerGone()
            result: HealthCheckResult = await workflow.execute_activity(
                activity.CHECK_HEALTH,
                HealthCheckInput(
                    stack=self._state.stack,
                    hostname=view.hostname,
                    private_ip=view.private_ip,
                    ssh=view.ssh,
                    check=check,
                ),
                result_type=HealthCheckResult,
                # A check lasts up to its deadline plus one probe's timeout.
                start_to_close_timeout=timedelta(seconds=check.deadline + check.timeout + 30),
                heartbeat_timeout=common.HEALTH_HEARTBEAT_TIMEOUT,
                retry_policy=common.PROVIDER_RETRY,
                task_queue=queue,
                schedule_to_start_timeout=common.start_within(queue),
            )
        except (ActivityError, _WorkerGone) as err:
            if queue is None or not (isinstance(err, _WorkerGone) or common.worker_gone(err)):
                raise
            await self._worker_lost(queue)
            return HealthCheckResult(
                healthy=False, attempts=0, seconds=0, detail=str(self._state.worker_gone)
            )
        return result

    # ---- activities ----------------------------------------------------------------

    async def _run_recipes(
        self,
        command: InstanceCommand,
        event: str,
        recipes: list[str] | None,
        app: AppRelease | None = None,
    ) -> RecipeRunResult:
        view = self._state.view
        assert view.ssh is not None and view.root is not None
        self._state.run_counter += 1
        # Deterministic (replay gives the same) and unique: every retry of this activity
        # carries it, so a retry re-attaches to the run instead of starting it again.
        suffix = str(workflow.uuid4())[:8]
        run_id = f"{view.hostname}-{event}-{self._state.run_counter}-{suffix}"
        started = workflow.now()
        queue = self._queue()
        if queue is not None and self._state.worker_gone is not None:
            message = f"{self._state.stack}/{view.hostname}: {self._state.worker_gone}"
            self._remember(run_id, command, event, started, ok=False, error=message, tail=None)
            raise _RecipesFailed(message, None, run_id)
        self._running = workflow.start_activity(
            activity.RUN_RECIPES,
            RecipeRunInput(
                stack=self._state.stack,
                hostname=view.hostname,
                event=event,
                recipes=recipes,
                run_id=run_id,
                command_id=command.id,
                stage_only=command.stage_only,
                app=app,
                ssh=view.ssh,
                root=view.root,
                instance=view,
                snapshot=command.snapshot,
                custom_json=command.custom_json,
            ),
            result_type=RecipeRunResult,
            start_to_close_timeout=common.RECIPE_TIMEOUT,
            heartbeat_timeout=common.RECIPE_HEARTBEAT_TIMEOUT,
            retry_policy=common.RECIPE_RETRY,
            # A cancelled run is over only when the runner has stopped it on the instance.
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            task_queue=queue,
            schedule_to_start_timeout=common.start_within(queue),
        )
        try:
            result = await self._running
        except ActivityError as err:
            cancelled = isinstance(err.cause, CancelledError)
            message, tail = failure_message(err)
            if cancelled:
                message = f"{self._state.stack}/{view.hostname}: {event} run {run_id} cancelled"
            elif queue is not None and common.worker_gone(err):
                await self._worker_lost(queue)
                message = f"{self._state.stack}/{view.hostname}: {self._state.worker_gone}"
            self._remember(
                run_id,
                command,
                event,
                started,
                ok=False,
                error=message,
                tail=tail,
                cancelled=cancelled,
            )
            raise _RecipesFailed(message, tail, run_id, cancelled) from None
        finally:
            self._running = None
        self._remember(run_id, command, event, started, ok=True, error=None, tail=result.log_tail)
        return result

    async def _machine(self, name: str, keep: bool = False) -> bool:
        """Stop or terminate the machine; False when its worker is gone (and it with it)."""
        view = self._state.view
        queue = self._queue()
        if queue is not None and self._state.worker_gone is not None:
            return False
        try:
            await workflow.execute_activity(
                name,
                MachineInput(
                    stack=self._state.stack,
                    hostname=view.hostname,
                    provider=view.provider,
                    region=self._state.region,
                    ec2=self._state.ec2,
                    keep=keep,
                ),
                start_to_close_timeout=common.PROVIDER_TIMEOUT,
                retry_policy=common.PROVIDER_RETRY,
                task_queue=queue,
                schedule_to_start_timeout=common.start_within(queue),
            )
        except ActivityError as err:
            if queue is None or not common.worker_gone(err):
                raise
            await self._worker_lost(queue)
            return False
        return True

    def _queue(self) -> str | None:
        """Where this instance's activities go: its worker's own queue, or the shared one."""
        return self._state.view.task_queue

    async def _worker_lost(self, queue: str) -> None:
        """Its worker is gone: said once on the stack (as healing says a loss); an online
        instance is connection_lost, so the layer's healing loop replaces it."""
        if self._state.worker_gone is not None:
            return
        reason = common.gone_message(queue)
        self._state.worker_gone = reason
        hostname = self._state.view.hostname
        stack = workflow.get_external_workflow_handle(names.stack_workflow_id(self._state.stack))
        event = StackEvent(
            at=workflow.now(),
            kind=EventKind.HEALTH_DETECTED,
            message=f"{hostname}: {reason}; the instance is lost",
            hostname=hostname,
            details={"worker": queue},
        )
        with contextlib.suppress(Exception):  # the stack is gone: nobody to tell
            await stack.signal(handlers.RECORD_EVENT, event)
        if self._state.view.status == InstanceStatus.ONLINE:
            await self._set_status(InstanceStatus.CONNECTION_LOST, message=reason)

    # ---- bookkeeping ---------------------------------------------------------------

    def _remember(
        self,
        run_id: str,
        command: InstanceCommand,
        event: str,
        started: datetime,
        *,
        ok: bool,
        error: str | None,
        tail: str | None,
        cancelled: bool = False,
    ) -> None:
        self._state.runs.append(
            RunRecord(
                run_id=run_id,
                command_id=command.id,
                event=event,
                ok=ok,
                started_at=started,
                finished_at=workflow.now(),
                error=error,
                log_tail=tail,
                cancelled=cancelled,
            )
        )
        del self._state.runs[:-MAX_RUNS_KEPT]

    async def _set_status(self, status: InstanceStatus, message: str | None) -> None:
        self._state.view.status = status
        self._state.view.message = message
        self._state.view.updated_at = workflow.now()
        await self._report()

    async def _report(self) -> None:
        stack = workflow.get_external_workflow_handle(names.stack_workflow_id(self._state.stack))
        view = InstanceView.model_validate(self._state.view.model_dump())
        await stack.signal(handlers.INSTANCE_CHANGED, InstanceChanged(view=view))

    async def _reply(self, command: InstanceCommand, result: InstanceCommandResult) -> None:
        if command.reply_to is None:
            return
        try:
            await workflow.get_external_workflow_handle(command.reply_to).signal(
                handlers.INSTANCE_RESULT, result
            )
        except Exception:  # the asker is gone (finished or terminated): nobody to tell
            workflow.logger.warning("could not reply to %s", command.reply_to)

    def _result(
        self,
        command: InstanceCommand,
        *,
        ok: bool,
        error: str | None = None,
        log_tail: str | None = None,
        run_id: str | None = None,
    ) -> InstanceCommandResult:
        return InstanceCommandResult(
            command_id=command.id,
            hostname=self._state.view.hostname,
            ok=ok,
            status=self._state.view.status,
            error=error,
            log_tail=log_tail,
            run_id=run_id,
        )

    def _skipped(self, command: InstanceCommand, why: str) -> InstanceCommandResult:
        result = self._result(command, ok=True, error=why)
        result.skipped = True
        return result

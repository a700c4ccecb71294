"""LayerHealingWorkflow: the auto healing loop of one layer (`healing:{stack}:{layer}`).

Every `interval` it checks the layer's online instances (one activity: the stack's view of
the layer plus a check of each instance that is due), lets opsflow.healing decide, and
carries the decisions out: a lost instance is marked connection_lost (its workflow), its
replacement is asked of the stack (which builds the heal command like a start: setup, then
the apps' current releases), and every decision is an event on the stack with the check
output behind it. Heal results come back by signal. It runs until the stack stops it
(auto_healing off, layer or stack removed), continuing-as-new to bound its history.

Between rounds the instances due a check are watched (activities/watch.py, one
`watch_layer` per task queue, like the probes): the worker holds one SSH connection to each
and sends keepalives that want an answer. A watch returns as soon as one is lost, with the
stack's current view of the layer; its report is assessed like a probe's, and its losses
count at once (a crash: seen within a second; a partition: within the check's timeout plus
a keepalive interval). A watch whose instances changed (after a round, or a loss) is
cancelled and started anew; one that failed waits for the next round.

Local instances are checked on the worker that launched them: one probe per worker queue
the layer's instances are bound to, beside the shared one. A probe that no worker starts
within common.WORKER_GONE_TIMEOUT means its worker is gone: its instances are lost at once
(no threshold) and replaced, the heal's launch going to the shared queue (a live worker).

On an ec2 stack it also publishes the layer's gauges to CloudWatch once a minute
(opsflow.healing.gauges_due), in the background: a slow or refusing CloudWatch never holds
up or stops a check round; a failure is logged, kept in the state (`gauges_error`) and
said once on the stack (event gauges_failed) until a publish succeeds again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ExternalWorkflowHandle

with workflow.unsafe.imports_passed_through():
    from activities import names as activity
    from opsflow import healing, names
    from opsflow.errors import ErrorType
    from opsflow.events import EventKind
    from opsflow.healing import Action, Decision, HealingState
    from opsflow.messages import (
        ConnectionLost,
        HealingConfig,
        HealRequest,
        InstanceCommandResult,
        InstanceView,
        LayerGaugesInput,
        LayerProbeReport,
        ProbeLayerInput,
        ProbeOutcome,
        StackEvent,
    )
    from opsflow.status import InstanceStatus
    from workflows import common, handlers
    from workflows.healing_watch import WatchMixin
    from workflows.instance import InstanceWorkflow


# A worker's own queue is probed while some instance of the layer is bound to it and online,
# or lost (so a worker found gone by the instance itself is confirmed and healed).
_CHECKED_ON_WORKER = frozenset({InstanceStatus.ONLINE, InstanceStatus.CONNECTION_LOST})


@workflow.defn
class LayerHealingWorkflow(WatchMixin):
    @workflow.init
    def __init__(self, state: HealingState) -> None:
        self._state = state
        self._results: list[InstanceCommandResult] = []
        self._last_views: list[InstanceView] = []  # the layer as the last round saw it
        self._gauges: asyncio.Task[None] | None = None  # the publish in flight, if any
        self._watches = {}
        self._resting = set()

    @workflow.run
    async def run(self, state: HealingState) -> None:
        next_check = workflow.now()
        while True:
            wait = (next_check - workflow.now()).total_seconds()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(
                        lambda: self._state.stopping or bool(self._results) or self._watched(),
                        timeout=wait,
                    )
            if self._state.stopping:
                self._unwatch()
                return
            while self._results:
                await self._heal_finished(self._results.pop(0))
            await self._watch_reports()
            if workflow.now() < next_check:
                continue
            if common.history_is_long(self._state.max_history_events):
                await workflow.wait_condition(workflow.all_handlers_finished)
                if self._gauges is not None:
                    await self._gauges  # its outcome belongs in the state handed on
                self._unwatch()
                workflow.continue_as_new(self._state)
            probed = await self._probe()
            if probed is None:
                return  # the stack is gone
            report, fresh = probed
            now = workflow.now()
            for decision in healing.assess(self._state, report, now):
                await self._carry_out(decision)
            if fresh and healing.gauges_due(self._state, now):
                self._publish_gauges(report.instances, now)
            self._resting.clear()
            self._rewatch(report.instances)
            next_check = now + timedelta(seconds=self._state.config.check.interval)

    # ---- signals and queries ---------------------------------------------------------

    @workflow.signal
    def reconfigure(self, config: HealingConfig) -> None:
        self._state.config = config

    @workflow.signal
    def stop(self) -> None:
        self._state.stopping = True

    @workflow.signal(name=handlers.INSTANCE_RESULT)
    def instance_result(self, result: InstanceCommandResult) -> None:
        self._results.append(result)

    @workflow.query
    def status(self) -> HealingState:
        return self._state

    # ---- one round -------------------------------------------------------------------

    async def _probe(self) -> tuple[LayerProbeReport, bool] | None:
        """The round's report and whether it is fresh (False: the check failed, the last
        views stand in); None when the stack is gone."""
        queues = sorted(
            {
                v.task_queue
                for v in self._last_views
                if v.task_queue is not None and v.status in _CHECKED_ON_WORKER
            }
        )
        if queues and not workflow.patched(common.BOUND_TO_WORKER_PATCH):
            queues = []
        shared, *bound = await asyncio.gather(
            self._probe_on(None), *(self._probe_on(q) for q in queues), return_exceptions=True
        )
        if isinstance(shared, ActivityError):
            cause = shared.cause
            if isinstance(cause, ApplicationError) and cause.type == ErrorType.NOT_FOUND:
                return None
            workflow.logger.warning("healing %s: check round failed: %s", self._where(), shared)
            return LayerProbeReport(instances=self._last_views, outcomes=[]), False
        if isinstance(shared, BaseException):
            raise shared
        report = shared
        for queue, answer in zip(queues, bound, strict=True):
            if isinstance(answer, LayerProbeReport):
                report.outcomes.extend(answer.outcomes)
            elif isinstance(answer, ActivityError) and common.worker_gone(answer):
                report.outcomes.extend(self._gone(queue, report.instances))
            elif isinstance(answer, ActivityError):
                workflow.logger.warning(
                    "healing %s: check on %s failed: %s", self._where(), queue, answer
                )
            else:
                raise answer
        self._last_views = report.instances
        return report, True

    async def _probe_on(self, queue: str | None) -> LayerProbeReport:
        """One probe: the unbound instances (None), or those of one worker, on its queue."""
        check = self._state.config.check
        request = ProbeLayerInput(
            stack=self._state.stack,
            layer=self._state.layer,
            check=check,
            recheck=healing.to_recheck(self._state, self._last_views),
            task_queue=queue,
        )
        report: LayerProbeReport = await workflow.execute_activity(
            activity.PROBE_LAYER,
            request,
            result_type=LayerProbeReport,
            # Probes run at once: SSH (connect + one round trip), then URL or command.
            start_to_close_timeout=timedelta(seconds=3 * check.timeout + 30),
            retry_policy=common.PROBE_RETRY,
            task_queue=queue,
            schedule_to_start_timeout=common.start_within(queue),
        )
        return report

    @staticmethod
    def _gone(queue: str, views: list[InstanceView]) -> list[ProbeOutcome]:
        """What a gone worker's instances are: unreachable, and certainly so."""
        detail = common.gone_message(queue)
        return [
            ProbeOutcome(
                hostname=v.hostname, healthy=False, reachable=False, detail=detail, worker_gone=True
            )
            for v in views
            if v.task_queue == queue and v.status in _CHECKED_ON_WORKER
        ]

    async def _carry_out(self, decision: Decision) -> None:
        await self._event(
            EventKind(decision.action.value), decision.message, decision.hostname, decision.detail
        )
        instance = workflow.get_external_workflow_handle(
            names.instance_workflow_id(self._state.stack, decision.hostname)
        )
        match decision.action:
            case Action.DETECTED:
                lost = ConnectionLost(
                    reason=decision.message,
                    unreachable=decision.unreachable,
                    worker_gone=decision.worker_gone,
                )
                await self._signal(instance, InstanceWorkflow.connection_lost, lost)
            case Action.RECOVERED:
                await self._signal(instance, InstanceWorkflow.connection_restored, None)
            case Action.HEAL:
                self._state.heal_seq += 1
                command_id = f"heal-{decision.hostname}-{self._state.heal_seq}"
                health = self._state.health[decision.hostname]
                healing.heal_started(health, command_id, workflow.now())
                request = HealRequest(
                    hostname=decision.hostname,
                    reason=decision.message,
                    reply_to=workflow.info().workflow_id,
                    command_id=command_id,
                )
                await self._signal(self._stack(), handlers.HEAL_INSTANCE, request)

    async def _heal_finished(self, result: InstanceCommandResult) -> None:
        health = self._state.health.get(result.hostname)
        if health is None or health.healing != result.command_id:
            return
        started = health.heals[-1] if health.heals else workflow.now()
        seconds = (workflow.now() - started).total_seconds()
        if result.skipped:
            del self._state.health[result.hostname]  # stopped or deleted meanwhile
            await self._event(
                EventKind.HEAL_SKIPPED, f"{result.hostname}: {result.error}", result.hostname
            )
            return
        next_try = healing.heal_finished(health, result.ok, workflow.now(), self._state.config)
        if result.ok:
            message = f"{result.hostname} replaced and online again in {seconds:.0f}s"
            await self._event(EventKind.HEALED, message, result.hostname)
            return
        message = (
            f"heal of {result.hostname} failed after {seconds:.0f}s, it is "
            f"{result.status.value}: {result.error}"
        )
        if next_try is not None:
            message += f"; next try not before {next_try:%H:%M:%S} UTC"
        await self._event(EventKind.HEAL_FAILED, message, result.hostname)

    # ---- gauges (ec2) ----------------------------------------------------------------

    def _publish_gauges(self, views: list[InstanceView], now: datetime) -> None:
        if self._gauges is not None and not self._gauges.done():
            return  # cannot happen within the activity's limits; never two at once
        gauges = healing.take_gauges(self._state, views, now)
        self._gauges = asyncio.create_task(self._publish(gauges))

    async def _publish(self, gauges: LayerGaugesInput) -> None:
        error: str | None = None
        try:
            await workflow.execute_activity(
                activity.PUBLISH_LAYER_GAUGES,
                gauges,
                start_to_close_timeout=common.GAUGES_START_TO_CLOSE,
                schedule_to_close_timeout=common.GAUGES_SCHEDULE_TO_CLOSE,
                retry_policy=common.GAUGES_RETRY,
            )
        except ActivityError as err:
            error = str(err.cause or err)
            workflow.logger.warning("healing %s: gauges not published: %s", self._where(), error)
        if healing.gauges_sent(self._state, gauges, error):
            message = (
                f"layer {self._state.layer}: its gauges could not be published to CloudWatch "
                f"({error}); healing goes on, the gauges are tried again every minute"
            )
            await self._event(EventKind.GAUGES_FAILED, message, None)

    # ---- plumbing --------------------------------------------------------------------

    def _stack(self) -> ExternalWorkflowHandle[Any]:
        return workflow.get_external_workflow_handle(names.stack_workflow_id(self._state.stack))

    async def _event(
        self, kind: EventKind, message: str, hostname: str | None, detail: str | None = None
    ) -> None:
        healing.count_event(self._state, kind)
        details: dict[str, object] = {"layer": self._state.layer}
        if detail is not None:
            details["check"] = detail
        event = StackEvent(
            at=workflow.now(), kind=kind, message=message, hostname=hostname, details=details
        )
        await self._signal(self._stack(), handlers.RECORD_EVENT, event)

    async def _signal(
        self, handle: ExternalWorkflowHandle[Any], signal: str | Callable[..., Any], arg: object
    ) -> None:
        try:
            if arg is None:
                await handle.signal(signal)
            else:
                await handle.signal(signal, arg)
        except Exception:  # the instance or the stack is gone: the next round sees it
            workflow.logger.warning("healing %s: could not signal %s", self._where(), handle.id)

    def _where(self) -> str:
        return f"{self._state.stack}/{self._state.layer}"

"""Scaling workflows.

TimeScalingWorkflow: what a time-based instance's Temporal Schedule (`timescale:{stack}:
{hostname}`) starts at each of its calendar moments (or when triggered by hand): it asks
whether the schedule has the instance up now, and tells the stack to start or stop it.

LoadScalingWorkflow (`scaling:{stack}:{layer}`): the load-based scaling loop of a layer.
Every `interval` it reads the metrics of the layer's online instances (one activity for the
layer, one for the readings), lets opsflow.scaling decide, and asks the stack to start,
add or stop instances; each step is an event on the stack with the averages behind it.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ExternalWorkflowHandle

with workflow.unsafe.imports_passed_through():
    from activities import names as activity
    from opsflow import names, scaling
    from opsflow.errors import ErrorType
    from opsflow.events import EventKind
    from opsflow.messages import (
        InstanceView,
        MetricsReport,
        ReadMetricsInput,
        ScaleRequest,
        StackEvent,
        TimeScaleInput,
    )
    from opsflow.scaling import Direction, LoadScalingState
    from opsflow.spec import LoadBasedScaling, Scaling
    from opsflow.status import InstanceStatus
    from workflows import common, handlers


def _stack(stack: str) -> ExternalWorkflowHandle[Any]:
    return workflow.get_external_workflow_handle(names.stack_workflow_id(stack))


@workflow.defn
class TimeScalingWorkflow:
    @workflow.run
    async def run(self, request: TimeScaleInput) -> bool:
        run, reason = scaling.scheduled(request.schedule, request.hostname, workflow.now())
        await _stack(request.stack).signal(
            handlers.SCALE_INSTANCE,
            ScaleRequest(hostname=request.hostname, run=run, reason=reason, source=Scaling.TIME),
        )
        return run


@workflow.defn
class LoadScalingWorkflow:
    @workflow.init
    def __init__(self, state: LoadScalingState) -> None:
        self._state = state

    @workflow.run
    async def run(self, state: LoadScalingState) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._state.stopping,
                    timeout=timedelta(seconds=self._state.config.interval),
                )
            if self._state.stopping:
                return
            if common.history_is_long(self._state.max_history_events):
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(self._state)
            if not await self._round():
                return  # the stack is gone

    @workflow.signal
    def reconfigure(self, config: LoadBasedScaling) -> None:
        self._state.config = config

    @workflow.signal
    def stop(self) -> None:
        self._state.stopping = True

    @workflow.query
    def status(self) -> LoadScalingState:
        return self._state

    async def _read(self, instances: list[InstanceView], queue: str | None) -> MetricsReport:
        config = self._state.config
        report: MetricsReport = await workflow.execute_activity(
            activity.READ_METRICS,
            ReadMetricsInput(
                stack=self._state.stack,
                layer=self._state.layer,
                instances=instances,
                metrics=sorted(config.up.metrics().keys() | config.down.metrics().keys()),
                custom_metric=config.custom_metric,
                custom_cloudwatch_metric=config.custom_cloudwatch_metric,
                region=self._state.region,
            ),
            result_type=MetricsReport,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=common.PROBE_RETRY,
            task_queue=queue,
            schedule_to_start_timeout=common.start_within(queue),
        )
        return report

    async def _round(self) -> bool:
        config = self._state.config
        try:
            views: list[InstanceView] = await workflow.execute_activity(
                activity.DESCRIBE_LAYER,
                args=[self._state.stack, self._state.layer],
                result_type=list[InstanceView],
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=common.PROBE_RETRY,
            )
            online = [v for v in views if v.status == InstanceStatus.ONLINE]
            report = MetricsReport(instances=[])
            # Local instances are read on the worker that launched them (its own queue).
            bound = sorted({v.task_queue for v in online if v.task_queue is not None})
            if bound and not workflow.patched(common.BOUND_TO_WORKER_PATCH):
                bound = []
            unbound = [v for v in online if v.task_queue is None or v.task_queue not in bound]
            if unbound:
                report = await self._read(unbound, None)
            for queue in bound:
                try:
                    found = await self._read([v for v in online if v.task_queue == queue], queue)
                except ActivityError as err:
                    if not common.worker_gone(err):
                        raise
                    continue  # its instances read nothing; healing reports them lost
                report.instances.extend(found.instances)
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == ErrorType.NOT_FOUND:
                return False
            workflow.logger.warning("scaling %s: reading failed: %s", self._where(), err)
            return True
        means = scaling.averages(report)
        self._state.last_averages = means
        decision = scaling.decide_load(
            self._state.load, config, self._state.layer, views, means, workflow.now()
        )
        if decision is None:
            return True
        details: dict[str, object] = {"layer": self._state.layer, "averages": means}
        unread = {m.hostname: m.error for m in report.instances if m.error}
        if unread:
            details["unread"] = unread
        event = StackEvent(
            at=workflow.now(),
            kind=EventKind.SCALED_UP
            if decision.direction == Direction.UP
            else EventKind.SCALED_DOWN,
            message=f"layer {self._state.layer}: {decision.message}",
            details=details,
        )
        stack = _stack(self._state.stack)
        await stack.signal(handlers.RECORD_EVENT, event)
        requests = [
            *(ScaleRequest(hostname=h, run=True, reason=decision.message, source=Scaling.LOAD)
              for h in decision.start),
            *(ScaleRequest(hostname=h, run=True, reason=decision.message, source=Scaling.LOAD,
                           layer=self._state.layer) for h in decision.add),
            *(ScaleRequest(hostname=h, run=False, reason=decision.message, source=Scaling.LOAD)
              for h in decision.stop),
        ]  # fmt: skip
        for request in requests:
            await stack.signal(handlers.SCALE_INSTANCE, request)
        return True

    def _where(self) -> str:
        return f"{self._state.stack}/{self._state.layer}"

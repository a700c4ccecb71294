"""The per-layer loops (healing, load-based scaling) and the time-based schedules a stack
keeps running, and the requests they send back: heal an instance, scale one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from temporalio import workflow
from temporalio.common import SearchAttributePair
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities import names as activity
    from opsflow import names
    from opsflow.events import EventKind
    from opsflow.healing import HealingState
    from opsflow.messages import (
        HealRequest,
        InstanceCommandKind,
        InstanceCommandResult,
        ScaleRequest,
        SyncSchedulesInput,
    )
    from opsflow.scaling import LoadScalingState
    from opsflow.spec import Scaling, StackSpec, WeeklySchedule
    from opsflow.status import RUNNING, InstanceStatus, why_not_start
    from workflows import common, handlers
    from workflows.healing import LayerHealingWorkflow
    from workflows.scaling import LoadScalingWorkflow
    from workflows.stack.base import StackBase, detach


class _LayerLoop(NamedTuple):
    """A kind of per-layer loop the stack keeps running: healing or load-based scaling."""

    name: str  # healing | scaling
    title: str
    started: EventKind
    stopped: EventKind
    state_field: str  # LoopsState field: layer -> the settings the loop was given
    workflow: Callable[..., Awaitable[None]]
    initial: Callable[[StackSpec, str, Any, int | None], Any]
    workflow_id: Callable[[str, str], str]
    # Its signals: new settings, and the end of the loop.
    reconfigure: Callable[..., Any]
    stop: Callable[..., Any]


HEALING = _LayerLoop(
    name="healing",
    title="auto healing",
    started=EventKind.HEALING_STARTED,
    stopped=EventKind.HEALING_STOPPED,
    state_field="healing",
    workflow=LayerHealingWorkflow.run,
    initial=lambda spec, layer, config, max_events: HealingState(
        stack=spec.name, layer=layer, config=config, max_history_events=max_events
    ),
    workflow_id=names.healing_workflow_id,
    reconfigure=LayerHealingWorkflow.reconfigure,
    stop=LayerHealingWorkflow.stop,
)


LOAD_SCALING = _LayerLoop(
    name="scaling",
    title="load-based scaling",
    started=EventKind.SCALING_STARTED,
    stopped=EventKind.SCALING_STOPPED,
    state_field="load_scaling",
    workflow=LoadScalingWorkflow.run,
    initial=lambda spec, layer, config, max_events: LoadScalingState(
        stack=spec.name,
        layer=layer,
        config=config,
        region=spec.region,
        max_history_events=max_events,
    ),
    workflow_id=names.scaling_workflow_id,
    reconfigure=LoadScalingWorkflow.reconfigure,
    stop=LoadScalingWorkflow.stop,
)


class LoopsMixin(StackBase):
    async def _sync_layer_loops(self, loop: _LayerLoop, wanted: dict[str, Any]) -> None:
        """One loop per layer that wants it: started, told its new settings, or stopped
        when the layer no longer wants it (or is gone)."""
        running: dict[str, Any] = getattr(self._state.loops, loop.state_field)
        stack = self._spec().name
        await self._stop_layer_loops(loop, [layer for layer in running if layer not in wanted])
        for layer, config in wanted.items():
            current = running.get(layer)
            if current == config:
                continue
            running[layer] = config
            if current is not None:
                handle = workflow.get_external_workflow_handle(loop.workflow_id(stack, layer))
                await handle.signal(loop.reconfigure, config)
                continue
            child = await workflow.start_child_workflow(
                loop.workflow,
                loop.initial(self._spec(), layer, config, self._state.max_history_events),
                id=loop.workflow_id(stack, layer),
                parent_close_policy=ParentClosePolicy.ABANDON,
                search_attributes=self._tags(
                    SearchAttributePair(common.STACK_ATTRIBUTE, stack),
                    SearchAttributePair(common.LAYER_ATTRIBUTE, layer),
                ),
            )
            detach(child)
            self._event(loop.started, f"{loop.title} on for layer {layer}")

    async def _stop_layer_loops(self, loop: _LayerLoop, layers: list[str]) -> None:
        running: dict[str, Any] = getattr(self._state.loops, loop.state_field)
        for layer in layers:
            running.pop(layer, None)
            handle = workflow.get_external_workflow_handle(
                loop.workflow_id(self._spec().name, layer)
            )
            try:
                await handle.signal(loop.stop)
            except Exception:  # it ended already
                workflow.logger.warning("%s loop of layer %s is gone", loop.name, layer)
            self._event(loop.stopped, f"{loop.title} off for layer {layer}")

    async def _sync_schedules(self, wanted: dict[str, WeeklySchedule]) -> None:
        """Temporal Schedules for the time-based instances, as the stack file says."""
        changed = [h for h, hours in wanted.items() if self._state.loops.schedules.get(h) != hours]
        remove = [h for h in self._state.loops.schedules if h not in wanted]
        if not wanted and not remove:
            return  # (with schedules, every apply syncs: one deleted by hand comes back)
        done: list[str] = await workflow.execute_activity(
            activity.SYNC_SCHEDULES,
            SyncSchedulesInput(
                stack=self._spec().name, schedules=wanted, changed=changed, remove=remove
            ),
            result_type=list[str],
            start_to_close_timeout=common.PROVIDER_TIMEOUT,
            retry_policy=common.PROVIDER_RETRY,
        )
        self._state.loops.schedules = wanted
        if done:
            self._event(EventKind.SCHEDULES, "; ".join(done))

    @workflow.signal(name=handlers.HEAL_INSTANCE)
    async def heal_instance(self, request: HealRequest) -> None:
        """A healing loop asks for a lost instance to be replaced: built like a start
        (setup, then each app's current release), run first on the instance."""
        view = self._state.members.instances.get(request.hostname)
        if view is None or self._state.deleting:
            why = "the stack is being deleted" if view else "no such instance any more"
            loop = workflow.get_external_workflow_handle_for(
                LayerHealingWorkflow.run, request.reply_to
            )
            skipped = InstanceCommandResult(
                command_id=request.command_id,
                hostname=request.hostname,
                ok=True,
                skipped=True,
                status=view.status if view else InstanceStatus.TERMINATED,
                error=why,
            )
            await loop.signal(LayerHealingWorkflow.instance_result, skipped)
            return
        command = self._start_command_for(request.hostname)
        command.kind, command.id = InstanceCommandKind.HEAL, request.command_id
        if command.machine is not None:  # one instance per heal, whatever the retries
            command.machine.token = request.command_id
        command.reply_to, command.reason = request.reply_to, request.reason
        await self._send(request.hostname, command)

    @workflow.signal(name=handlers.SCALE_INSTANCE)
    async def scale_instance(self, request: ScaleRequest) -> None:
        """A schedule or a layer's load asks for an instance to run or not."""
        if self._state.deleting or self._state.applied.spec is None:
            return
        view = self._state.members.instances.get(request.hostname)
        if view is None:
            if request.layer is None or self._spec().layer(request.layer) is None:
                return
            async with self._lock:
                self._state.loops.scaling[request.hostname] = Scaling.LOAD
                await self._create_instance(
                    request.hostname, [request.layer], from_file=False, start=True
                )
            self._scaled(request, "added and started")
            return
        # The last scaling command sent may not show in the status yet (a start still
        # queued while the view says stopped): the opposite request is sent all the same,
        # and the instance, which runs its commands in order, skips what is already so.
        last = self._state.loops.scaled.get(request.hostname)
        if request.run and (why_not_start(view.status) is None or last is False):
            await self._send(request.hostname, self._start_command_for(request.hostname))
            self._state.loops.scaled[request.hostname] = True
            self._scaled(request, "started")
        elif not request.run and (
            (view.status in RUNNING and view.status != InstanceStatus.STOPPING) or last is True
        ):
            await self._send(request.hostname, self._command(InstanceCommandKind.STOP))
            self._state.loops.scaled[request.hostname] = False
            self._scaled(request, "stopped")

    def _scaled(self, request: ScaleRequest, what: str) -> None:
        self._event(
            EventKind.SCALING,
            f"{request.hostname} {what} ({request.source}-based): {request.reason}",
            hostname=request.hostname,
            details={"source": request.source},
        )

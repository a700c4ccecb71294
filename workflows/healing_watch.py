"""The healing loop's watch (a mixin of LayerHealingWorkflow): between rounds, one
`watch_layer` per task queue holds a connection to each instance due a check and returns
at the first loss; its report is assessed like a probe's, its losses decisive at once.
What to watch is decided by opsflow.healing.to_watch after every round and every ended
watch: a watch whose instances changed is cancelled and started anew; one that failed
waits for the next round (`_resting`)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities import names as activity
    from opsflow import healing
    from opsflow.healing import Decision, HealingState
    from opsflow.messages import InstanceView, LayerProbeReport, WatchLayerInput, WatchTarget
    from workflows import common


@dataclass
class _Watch:
    """A watch_layer in flight: the instances it holds, on one task queue."""

    targets: list[WatchTarget]
    task: asyncio.Task[LayerProbeReport]


def _settled(task: asyncio.Task[LayerProbeReport]) -> None:
    """A cancelled watch's end is nobody's business (its failure is read where it matters)."""
    if not task.cancelled():
        task.exception()


class WatchMixin:
    _state: HealingState
    _last_views: list[InstanceView]  # the layer as the last round (or watch) saw it
    _watches: dict[str | None, _Watch]  # by task queue
    _resting: set[str | None]  # queues whose watch failed: until the next round

    async def _carry_out(self, decision: Decision) -> None:
        raise NotImplementedError

    def _where(self) -> str:
        raise NotImplementedError

    def _watched(self) -> bool:
        """Some watch has ended (a loss, its time up, or a failure)."""
        return any(w.task.done() for w in self._watches.values())

    async def _watch_reports(self) -> None:
        """Assess what ended watches found, as a round's probes; then watch anew."""
        ended = [(q, w) for q, w in self._watches.items() if w.task.done()]
        for queue, watch in ended:
            del self._watches[queue]
            try:
                report = watch.task.result()
            except ActivityError as err:
                workflow.logger.warning(
                    "healing %s: watch on %s failed: %s", self._where(), queue, err
                )
                self._resting.add(queue)
                continue
            if report.outcomes:
                self._last_views = report.instances
                for decision in healing.assess(self._state, report, workflow.now()):
                    await self._carry_out(decision)
        if ended:
            self._rewatch(self._last_views)

    def _rewatch(self, views: Iterable[InstanceView]) -> None:
        """Watch exactly the instances due a check: watches whose instances changed are
        cancelled and started anew."""
        wanted = healing.to_watch(self._state, views, workflow.now())
        if not (wanted or self._watches) or not workflow.patched(common.WATCH_PATCH):
            return
        # Sorted: the order of the commands must not depend on the process's str hashing.
        for queue in sorted(set(self._watches) | set(wanted), key=lambda q: q or ""):
            watch, targets = self._watches.get(queue), wanted.get(queue, [])
            if watch is not None and watch.targets == targets:
                continue
            if watch is not None:
                watch.task.cancel()
                del self._watches[queue]
            if targets and queue not in self._resting:
                task = asyncio.create_task(self._watch(queue, targets))
                task.add_done_callback(_settled)
                self._watches[queue] = _Watch(targets, task)

    async def _watch(self, queue: str | None, targets: list[WatchTarget]) -> LayerProbeReport:
        check = self._state.config.check
        request = WatchLayerInput(
            stack=self._state.stack,
            layer=self._state.layer,
            instances=targets,
            task_queue=queue,
            keepalive_interval=healing.WATCH_KEEPALIVE,
            answer_within=check.timeout,
            max_seconds=healing.WATCH_MAX.total_seconds(),
        )
        report: LayerProbeReport = await workflow.execute_activity(
            activity.WATCH_LAYER,
            request,
            result_type=LayerProbeReport,
            # Its time, then a reconnect's and the stack's view at the end.
            start_to_close_timeout=healing.WATCH_MAX + timedelta(seconds=3 * check.timeout + 30),
            heartbeat_timeout=common.WATCH_HEARTBEAT_TIMEOUT,
            retry_policy=common.WATCH_RETRY,
            task_queue=queue,
            schedule_to_start_timeout=common.start_within(queue),
        )
        return report

    def _unwatch(self) -> None:
        for watch in self._watches.values():
            watch.task.cancel()
        self._watches.clear()

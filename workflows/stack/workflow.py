"""StackWorkflow: the durable stack. Owns the spec, knows every instance's status, decides
when configure runs, and starts instance and deployment workflows.

Mutations are Updates with validators, so bad input is refused before it enters history
and the caller gets an answer (a signal could only be fire-and-forget).

The handlers live in one module per concern (apply, members, commands, loops, queries);
this class composes them (the SDK collects handlers from base classes) and runs the
stack's main loop: configure rounds, continue-as-new, the end after a delete.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from opsflow.events import EventKind
    from opsflow.state import StackState
    from workflows import common
    from workflows.stack.apply import ApplyMixin
    from workflows.stack.commands import CommandsMixin
    from workflows.stack.queries import QueriesMixin


@workflow.defn(name="StackWorkflow")
class StackWorkflow(ApplyMixin, CommandsMixin, QueriesMixin):
    @workflow.init
    def __init__(self, state: StackState) -> None:
        self._state = state
        # Guards state across the awaits of apply/add/delete (starting children), so two
        # updates never interleave half-applied changes.
        self._lock = asyncio.Lock()
        self._publishing = False
        # A configure round between its quiet period and its commands sent (publishing
        # its snapshot): describe still says a round is pending, so waits do not end early.
        self._configuring = False

    @workflow.run
    async def run(self, state: StackState) -> None:
        if self._state.applied.spec is None:
            # Started by `stack apply` (update-with-start): if that first apply is refused
            # or fails, there is no stack, and nothing may be left running.
            await workflow.wait_condition(
                lambda: self._state.applied.spec is not None or workflow.all_handlers_finished()
            )
            if self._state.applied.spec is None:
                return
        while True:
            await workflow.wait_condition(
                lambda: (
                    self._state.members.configure_pending
                    or self._deleted()
                    or common.history_is_long(self._state.max_history_events)
                )
            )
            if self._deleted():
                await workflow.wait_condition(workflow.all_handlers_finished)
                self._event(EventKind.STACK_DELETED, "stack deleted; every instance terminated")
                return
            if self._state.members.configure_pending:
                await self._configure_round()
                continue
            await workflow.wait_condition(workflow.all_handlers_finished)
            workflow.continue_as_new(self._state)

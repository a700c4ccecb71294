"""Instances: add, register, start/stop/delete, wait for a status, kill (a drill)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from temporalio.client import WorkflowFailureError, WorkflowQueryFailedError
from temporalio.exceptions import TimeoutError as TemporalTimeout

from client.api.base import NO_ANSWER, run_url
from client.api.stacks import StackCalls
from opsflow import names
from opsflow.drills import (
    KillInstanceInput,
    NetworkDrillInput,
    kill_workflow_id,
    network_drill_workflow_id,
)
from opsflow.errors import InvalidInput, NotFound, OperationFailed, OpsflowError
from opsflow.messages import (
    AddInstanceInput,
    ConfigurationQuery,
    InstanceActionInput,
    InstanceActionKind,
    InstanceStatusLine,
    InstanceView,
    RegisterInstanceInput,
    RegisterInstanceResult,
    RunContext,
    StackDescription,
)
from opsflow.spec import Provider
from opsflow.state import InstanceState
from workflows.drills import KillInstanceWorkflow, NetworkDrillWorkflow
from workflows.instance import InstanceWorkflow
from workflows.stack import StackWorkflow

# A wait asks the statuses this often after a change, backing off to POLL_MOST meanwhile.
POLL_FIRST = 0.25
POLL_MOST = 2.0


class InstanceCalls(StackCalls):
    # ---- instances -----------------------------------------------------------------

    async def add_instance(self, stack: str, request: AddInstanceInput) -> InstanceView:
        handle = self._stack(stack)
        return await self._call(
            handle.id,
            lambda: handle.execute_update(
                StackWorkflow.add_instance, self._stamped(request), rpc_timeout=self.update_timeout
            ),
        )

    async def register_instance(
        self, stack: str, request: RegisterInstanceInput
    ) -> RegisterInstanceResult:
        handle = self._stack(stack)
        return await self._call(
            handle.id,
            lambda: handle.execute_update(
                StackWorkflow.register_instance,
                self._stamped(request),
                rpc_timeout=self.update_timeout,
            ),
        )

    async def instance_action(
        self, stack: str, hostname: str, action: InstanceActionKind
    ) -> InstanceView:
        handle = self._stack(stack)
        request = InstanceActionInput(hostname=hostname, action=action)
        return await self._call(
            handle.id,
            lambda: handle.execute_update(
                StackWorkflow.instance_action,
                self._stamped(request),
                rpc_timeout=self.update_timeout,
            ),
        )

    async def wait_instances(
        self,
        stack: str,
        until: Callable[[InstanceStatusLine | None], bool],
        hostnames: Iterable[str] | None = None,
        timeout: float = 900,
    ) -> StackDescription:
        """Wait until `until` holds for each instance named (or every instance); then the
        stack's description, once.

        Asks only the instances' statuses (a small query: describe carries the spec, every
        view and the events), first every POLL_FIRST seconds, then less often while nothing
        changes (up to POLL_MOST), so a wait on a large stack does not flood its workflow."""
        deadline = time.monotonic() + timeout
        wanted = list(hostnames) if hostnames is not None else None
        pause = POLL_FIRST
        seen: list[InstanceStatusLine] | None = None
        while True:
            found = await self.statuses(stack)
            lines = {line.hostname: line for line in found}
            targets = wanted if wanted is not None else list(lines)
            if all(until(lines.get(h)) for h in targets):
                return await self.describe(stack)
            if time.monotonic() > deadline:
                raise OperationFailed(
                    f"instances of {stack} did not settle within {timeout:.0f}s",
                    run_url(names.stack_workflow_id(stack)),
                )
            pause = POLL_FIRST if found != seen else min(pause * 1.5, POLL_MOST)
            seen = found
            await asyncio.sleep(pause)

    async def kill_instance(self, stack: str, hostname: str) -> StackDescription:
        """A machine crash for drills: every process of a local instance SIGKILLed (an
        isolated machine), or its sshd and connections (an sshd-process instance).

        Nothing is told to the stack: its healing loop (if the layer has one) has to notice.
        A worker does it (KillInstanceWorkflow), on the machine where the instance runs (its
        `OPSFLOW_HOME`). NotFound for an unknown stack or instance, InvalidInput for a
        provider other than local, OperationFailed when the instance is not running there
        or no worker answers. Returns the stack as it was just before the kill.
        """
        found, view = await self._local_instance(stack, hostname, "instance kill")
        request = KillInstanceInput(stack=stack, hostname=hostname, task_queue=view.task_queue)
        killed = await self._drill(
            KillInstanceWorkflow.run, request, kill_workflow_id(stack, hostname, _nonce())
        )
        if not killed:
            raise OperationFailed(
                f"{hostname} is not running here (the stack shows it {view.status.value}): "
                "nothing to kill"
            )
        return found

    async def network_drill(self, stack: str, hostname: str, cut: bool) -> str:
        """Cut an isolated local instance's link (a partition: its processes keep running)
        or give it back; what the worker did, or why it changed nothing (a restore after a
        heal replaced the machine). InvalidInput for an instance that is not local or not
        an isolated machine."""
        what = "instance kill --network" if cut else "instance restore-network"
        _, view = await self._local_instance(stack, hostname, what)
        request = NetworkDrillInput(
            stack=stack, hostname=hostname, cut=cut, task_queue=view.task_queue
        )
        workflow_id = network_drill_workflow_id(stack, hostname, _nonce())
        said: str = await self._drill(NetworkDrillWorkflow.run, request, workflow_id)
        return said

    async def _local_instance(
        self, stack: str, hostname: str, what: str
    ) -> tuple[StackDescription, InstanceView]:
        found = await self.describe(stack)
        view = next((v for v in found.instances if v.hostname == hostname), None)
        if view is None:
            raise NotFound(f"stack {stack} has no instance {hostname!r}")
        if view.provider != Provider.LOCAL:
            raise InvalidInput(
                f"{what}: {hostname} is an instance of provider {view.provider.value}; "
                "drills are for local instances (their machines are on a worker's host)"
            )
        return found, view

    async def _drill(self, run: Any, request: Any, workflow_id: str) -> Any:
        stack = request.stack

        async def start() -> Any:
            try:
                return await self.temporal.execute_workflow(
                    run,
                    request,
                    id=workflow_id,
                    task_queue=self.task_queue,
                    # Without a worker it would wait forever; a drill takes a moment.
                    execution_timeout=self.update_timeout,
                    search_attributes=self._stack_attributes(stack),
                )
            except WorkflowFailureError as err:
                if not isinstance(err.cause, TemporalTimeout):
                    raise
                seconds = self.update_timeout.total_seconds()
                raise OperationFailed(
                    NO_ANSWER.format(what=workflow_id, seconds=seconds, queue=self.task_queue),
                    run_url(workflow_id),
                ) from None

        return await self._call(workflow_id, start)

    async def instance_state(self, stack: str, hostname: str) -> InstanceState:
        workflow_id = names.instance_workflow_id(stack, hostname)
        handle = self.temporal.get_workflow_handle(workflow_id)
        return await self._call(
            workflow_id,
            lambda: handle.query(InstanceWorkflow.describe, rpc_timeout=self.query_timeout),
        )

    async def run_context(self, stack: str, request: ConfigurationQuery) -> RunContext:
        """What a run of `request.event` on `request.hostname` would be given now: the
        stack's `run_context` query (attributes and data bags with secure values sealed)."""
        handle = self._stack(stack)
        try:
            return await self._call(
                handle.id,
                lambda: handle.query(
                    StackWorkflow.run_context, request, rpc_timeout=self.query_timeout
                ),
            )
        except WorkflowQueryFailedError as err:  # e.g. an instance gone meanwhile
            raise NotFound(f"stack {stack}: {err.message}") from None

    async def last_log_tail(self, stack: str, hostname: str) -> str | None:
        """The log tail of the instance's most recent failed recipe run, if any."""
        try:
            state = await self.instance_state(stack, hostname)
        except OpsflowError:
            return None
        failed = [run for run in state.runs if not run.ok]
        return failed[-1].log_tail if failed else None


def _nonce() -> str:
    return uuid.uuid4().hex

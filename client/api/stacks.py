"""Stacks: plan, apply, describe, events, list, delete."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from pydantic import BaseModel
from temporalio.client import (
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.common import QueryRejectCondition, WorkflowIDConflictPolicy

from client.api.base import CONTINUED_QUERY_ATTEMPTS, ApiBase, run_url
from opsflow import names
from opsflow.errors import InvalidInput, NotFound, OperationFailed, OpsflowError
from opsflow.messages import (
    ApplyInput,
    ApplyResult,
    DeleteStackInput,
    DeleteStackResult,
    InstanceStatusLine,
    StackDescription,
    StackEvent,
)
from opsflow.plan import conflicts, plan_stack
from opsflow.spec import StackSpec
from opsflow.state import StackState
from opsflow.status import InstanceStatus
from workflows.stack import StackWorkflow

T = TypeVar("T")


class StackSummary(BaseModel):
    name: str
    provider: str
    layers: int
    instances: int
    online: int
    problem: str | None = None  # the stack did not answer (no worker on its task queue?)


class StackCalls(ApiBase):
    # ---- stacks --------------------------------------------------------------------

    async def plan(self, spec: StackSpec) -> list[str]:
        current = await self._describe_or_none(spec.name)
        instances = {v.hostname: v for v in current.instances} if current else {}
        problems = conflicts(current.spec if current else None, instances, spec)
        if problems:
            raise InvalidInput("\n".join(problems))
        return plan_stack(current.spec if current else None, instances, spec).changes

    async def apply(self, spec: StackSpec, source_file: str | None = None) -> ApplyResult:
        workflow_id = names.stack_workflow_id(spec.name)
        start = WithStartWorkflowOperation(
            StackWorkflow.run,
            StackState(tag_runs=self.tag_runs, max_history_events=self.max_history_events),
            id=workflow_id,
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=self._stack_attributes(spec.name),
        )
        return await self._call(
            workflow_id,
            lambda: self.temporal.execute_update_with_start_workflow(
                StackWorkflow.apply,
                self._stamped(ApplyInput(spec=spec, source_file=source_file)),
                start_workflow_operation=start,
                rpc_timeout=self.update_timeout,
            ),
        )

    async def _describe_or_none(self, stack: str) -> StackDescription | None:
        try:
            return await self.describe(stack)
        except NotFound:
            return None

    async def describe(self, stack: str) -> StackDescription:
        return await self._ask_stack(stack, StackWorkflow.describe)

    async def statuses(self, stack: str) -> list[InstanceStatusLine]:
        """Every instance's status only: what a wait asks again and again."""
        return await self._ask_stack(stack, StackWorkflow.statuses)

    async def _ask_stack(self, stack: str, query: Callable[[StackWorkflow], Awaitable[T] | T]) -> T:
        handle = self._stack(stack)
        # A query that reaches a run as it continues as new is rejected with that status:
        # the stack is there, in its next run, which the same handle asks next time.
        for _ in range(CONTINUED_QUERY_ATTEMPTS):
            try:
                answer: T = await self._call(
                    handle.id,
                    lambda: handle.query(
                        query,
                        reject_condition=QueryRejectCondition.NOT_OPEN,
                        rpc_timeout=self.query_timeout,
                    ),
                )
                return answer
            except WorkflowQueryRejectedError as err:
                if err.status != WorkflowExecutionStatus.CONTINUED_AS_NEW:
                    raise NotFound(f"no stack named {stack}") from None
            except WorkflowQueryFailedError as err:
                raise NotFound(f"no stack named {stack}: {err.message}") from None
        raise OperationFailed(
            f"stack {stack} continued as new on every one of {CONTINUED_QUERY_ATTEMPTS} "
            "questions; ask again",
            run_url(handle.id),
        )

    async def events(
        self,
        stack: str,
        kinds: Iterable[str] = (),
        hostname: str | None = None,
        limit: int | None = None,
    ) -> list[StackEvent]:
        """The stack's recent events (the stack keeps the newest few hundred), oldest first:
        only those of `kinds` (any kind when empty) and of `hostname` when given, the newest
        `limit` of them when given."""
        wanted = set(kinds)
        found = [
            event
            for event in (await self.describe(stack)).events
            if (not wanted or event.kind in wanted)
            and (hostname is None or event.hostname == hostname)
        ]
        if limit is not None:
            if limit < 1:
                raise InvalidInput(f"limit: {limit} must be at least 1")
            found = found[-limit:]
        return found

    async def list_stacks(self) -> list[StackSummary]:
        query = "WorkflowType = 'StackWorkflow' AND ExecutionStatus = 'Running'"
        names = [e.id.removeprefix("stack:") async for e in self.temporal.list_workflows(query)]
        # Asked all at once; one stack that does not answer does not hide the others.
        found = await asyncio.gather(*(self._summary(name) for name in names))
        return sorted((s for s in found if s is not None), key=lambda s: s.name)

    async def _summary(self, stack: str) -> StackSummary | None:
        try:
            found = await self.describe(stack)
        except NotFound:
            return None  # applied never, or finished between list and query
        except OpsflowError as err:
            problem = str(err).splitlines()[0]
            return StackSummary(
                name=stack, provider="?", layers=0, instances=0, online=0, problem=problem
            )
        return StackSummary(
            name=found.name,
            provider=found.spec.provider.value,
            layers=len(found.spec.layers),
            instances=len(found.instances),
            online=sum(v.status == InstanceStatus.ONLINE for v in found.instances),
        )

    async def delete_stack(self, stack: str) -> DeleteStackResult:
        handle = self._stack(stack)
        request = self._stamped(DeleteStackInput())
        if request.origin is None:  # nothing to check: the request as before the check
            return await self._call(
                handle.id,
                lambda: handle.execute_update(
                    StackWorkflow.delete, rpc_timeout=self.update_timeout
                ),
            )
        return await self._call(
            handle.id,
            lambda: handle.execute_update(
                StackWorkflow.delete, request, rpc_timeout=self.update_timeout
            ),
        )

    async def wait_stack_deleted(self, stack: str, timeout: float = 600) -> None:
        handle = self._stack(stack)
        try:
            await asyncio.wait_for(handle.result(), timeout)
        except TimeoutError:
            raise OperationFailed(
                f"stack {stack} was not deleted within {timeout:.0f}s", run_url(handle.id)
            ) from None
        except WorkflowFailureError as err:
            raise OperationFailed(
                f"deleting stack {stack} failed: {err.cause}", run_url(handle.id)
            ) from None


def refuse_if_deleting(found: StackDescription) -> None:
    if found.deleting:
        raise InvalidInput(f"stack {found.name} is being deleted (its schedules with it)")

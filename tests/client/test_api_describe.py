"""`describe` asks a stack that is continuing as new again, instead of saying it does not
exist (a query can reach the closing run, which rejects it as CONTINUED_AS_NEW)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowQueryRejectedError

from client.api import CONTINUED_QUERY_ATTEMPTS, OpsflowClient
from opsflow.errors import NotFound, OperationFailed


class _Handle:
    """A stack's workflow handle whose first queries are rejected with `statuses`."""

    def __init__(self, statuses: list[WorkflowExecutionStatus], answer: object) -> None:
        self.id = "stack:shop"
        self.statuses = statuses
        self.answer = answer
        self.queries = 0

    async def query(self, *_: Any, **__: Any) -> object:
        self.queries += 1
        if self.statuses:
            raise WorkflowQueryRejectedError(self.statuses.pop(0))
        return self.answer


class _Temporal:
    def __init__(self, handle: _Handle) -> None:
        self.handle = handle

    def get_workflow_handle(self, workflow_id: str) -> _Handle:
        assert workflow_id == self.handle.id
        return self.handle


def _client(handle: _Handle) -> OpsflowClient:
    return OpsflowClient(cast(Client, _Temporal(handle)), task_queue="q")


async def test_a_query_that_met_a_continue_as_new_is_asked_again() -> None:
    answer = object()
    handle = _Handle([WorkflowExecutionStatus.CONTINUED_AS_NEW] * 2, answer)
    assert await _client(handle).describe("shop") is answer
    assert handle.queries == 3


async def test_a_closed_stack_is_not_found_at_once() -> None:
    handle = _Handle([WorkflowExecutionStatus.COMPLETED], object())
    with pytest.raises(NotFound, match="no stack named shop"):
        await _client(handle).describe("shop")
    assert handle.queries == 1


async def test_a_stack_that_keeps_continuing_as_new_fails_after_a_few_attempts() -> None:
    statuses = [WorkflowExecutionStatus.CONTINUED_AS_NEW] * (CONTINUED_QUERY_ATTEMPTS + 1)
    handle = _Handle(statuses, object())
    with pytest.raises(OperationFailed, match="continued as new"):
        await _client(handle).describe("shop")
    assert handle.queries == CONTINUED_QUERY_ATTEMPTS

"""The refusals workflows and activities share: never retried, typed for the CLI's exit 2."""

from __future__ import annotations

from opsflow.errors import ErrorType
from workflows.failures import invalid, not_found


def test_invalid_is_a_non_retryable_invalid_input() -> None:
    error = invalid("--batch: 0 is not a positive amount")
    assert error.type == ErrorType.INVALID_INPUT and error.non_retryable
    assert error.message == "--batch: 0 is not a positive amount"


def test_not_found_is_a_non_retryable_not_found() -> None:
    error = not_found("stack shop does not exist")
    assert error.type == ErrorType.NOT_FOUND and error.non_retryable
    assert error.message == "stack shop does not exist"

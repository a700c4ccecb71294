"""The ApplicationErrors opsflow refuses a request with, built one way for workflows and
activities alike.

Here rather than in opsflow/ (which stays free of temporalio) or activities/ (which the
workflow sandbox does not import): this module needs only temporalio.exceptions and
opsflow.errors, so a workflow imports it through the sandbox and an activity imports it
without pulling in any workflow code.
"""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

from opsflow.errors import ErrorType


def invalid(message: str) -> ApplicationError:
    """Bad input: never retried, and the CLI exits 2."""
    return ApplicationError(message, type=ErrorType.INVALID_INPUT, non_retryable=True)


def not_found(message: str) -> ApplicationError:
    """A stack, layer or instance that does not exist: never retried, the CLI exits 2."""
    return ApplicationError(message, type=ErrorType.NOT_FOUND, non_retryable=True)

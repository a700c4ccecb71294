"""One error hierarchy, mapped once to CLI exit codes.

2 means the input was wrong and nothing was changed; 1 means an operation was tried and
failed (the message says where to look).
"""

from __future__ import annotations


class OpsflowError(Exception):
    """Base of every error opsflow reports to a user."""

    exit_code = 1


class InvalidInput(OpsflowError):
    """Bad input: a stack file, a CLI argument or a request that cannot apply."""

    exit_code = 2


class SpecError(InvalidInput):
    """A stack file that does not validate; carries one line per problem."""

    def __init__(self, file: str, problems: list[str]) -> None:
        self.file = file
        self.problems = problems
        super().__init__("\n".join(f"{file}: {p}" for p in problems))


class NotFound(InvalidInput):
    """A stack, layer or instance that does not exist."""


class OperationFailed(OpsflowError):
    """An operation ran and failed; `where` tells the user where to look."""

    def __init__(self, message: str, where: str | None = None) -> None:
        self.where = where
        super().__init__(f"{message}\n  see: {where}" if where else message)


class Unreachable(OpsflowError):
    """Temporal (or another service opsflow needs) cannot be reached."""


# Application error types carried in Temporal failures, so the CLI can map a failed
# update or workflow back to the right exit code without parsing messages.
INVALID_INPUT_TYPE = "InvalidInput"
NOT_FOUND_TYPE = "NotFound"
RECIPE_FAILED_TYPE = "RecipeFailed"
COOKBOOKS_FETCH_FAILED_TYPE = "CookbooksFetchFailed"
# Retryable (a timeout, a reset, HTTP 5xx): its own type, since listing a type as
# non-retryable in a retry policy overrides the error's own flag.
COOKBOOKS_UNAVAILABLE_TYPE = "CookbooksSourceUnavailable"

"""One error hierarchy, mapped once to CLI exit codes.

2 means the input was wrong and nothing was changed; 1 means an operation was tried and
failed (the message says where to look).
"""

from __future__ import annotations

from enum import StrEnum


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


class ErrorType(StrEnum):
    """The application error types carried in Temporal failures, one vocabulary for every
    workflow and activity: the CLI maps a failed update or workflow back to the right exit
    code, and a retry policy names what is not worth retrying, without parsing messages.

    The values are on the wire (recorded histories, retry policies of running workflows):
    never change one.
    """

    INVALID_INPUT = "InvalidInput"
    NOT_FOUND = "NotFound"
    RECIPE_FAILED = "RecipeFailed"
    COOKBOOKS_FETCH_FAILED = "CookbooksFetchFailed"
    # Retryable (a timeout, a reset, HTTP 5xx): its own type, since listing a type as
    # non-retryable in a retry policy overrides the error's own flag.
    COOKBOOKS_UNAVAILABLE = "CookbooksSourceUnavailable"
    # A recipe run: its worker-side record vanished; its staging on the instance failed.
    RUN_LOST = "RunLost"
    RUN_SETUP_FAILED = "RunSetupFailed"
    VOLUMES_NOT_READY = "VolumesNotReady"
    # SSH, as activities.ssh reports it.
    HOST_KEY_MISMATCH = "HostKeyMismatch"
    SSH_AUTH_FAILED = "SshAuthFailed"
    SSH_UNREACHABLE = "SshUnreachable"
    SSH_COMMAND_TIMEOUT = "SshCommandTimeout"
    # A host to register that does not qualify; the stack's registration of one that failed.
    REGISTERED_HOST_REFUSED = "RegisteredHostRefused"
    REGISTER_FAILED = "RegisterFailed"
    # AWS, per service (activities.aws): refused is non-retryable, throttled retryable.
    # ELBv2 reports as EC2 does.
    EC2_REFUSED = "Ec2Refused"
    EC2_THROTTLED = "Ec2Throttled"
    RDS_REFUSED = "RdsRefused"
    RDS_THROTTLED = "RdsThrottled"
    RDS_NOT_READY = "RdsNotReady"
    CLOUDWATCH_REFUSED = "CloudWatchRefused"
    CLOUDWATCH_THROTTLED = "CloudWatchThrottled"

"""boto3 clients as every AWS activity makes them, and AWS's errors as every AWS activity
reports them.

Clients: the standard configuration (profile, endpoint, credentials from the
environment), the given region, standard retries (so throttling backs off before an
activity sees it).

Errors: what is left of throttling after those retries is a retryable ApplicationError,
any other refusal a non-retryable one, both carrying AWS's code and message; each service
has its own pair of error types (ErrorTypes), so a workflow can tell which service said no.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, WaiterError
from temporalio.exceptions import ApplicationError

from opsflow.errors import ErrorType

MAX_ATTEMPTS = 5
# The codes AWS services use for "slow down" (CloudWatch: ThrottledException too).
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
    }
)


@dataclass(frozen=True)
class ErrorTypes:
    """The ApplicationError types of one service's errors; `service` names it in messages."""

    service: str
    refused: ErrorType  # non-retryable
    throttled: ErrorType  # retryable


# ELBv2 reports as EC2 does (its activities came with the ec2 provider).
EC2_ERRORS = ErrorTypes("EC2", ErrorType.EC2_REFUSED, ErrorType.EC2_THROTTLED)
RDS_ERRORS = ErrorTypes("RDS", ErrorType.RDS_REFUSED, ErrorType.RDS_THROTTLED)
CLOUDWATCH_ERRORS = ErrorTypes(
    "CloudWatch", ErrorType.CLOUDWATCH_REFUSED, ErrorType.CLOUDWATCH_THROTTLED
)


def client(service: str, region: str) -> Any:
    config = Config(region_name=region, retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS})
    return boto3.client(service, config=config)


def error_code(err: ClientError) -> str:
    """AWS's error code (`InvalidAMIID.NotFound`, `Throttling`, ...); empty if none."""
    return str(err.response.get("Error", {}).get("Code", ""))


def refusal(
    err: ClientError, types: ErrorTypes, *, prefix: str = "", suffix: str = ""
) -> ApplicationError:
    """AWS's refusal as an ApplicationError: throttling retryable, the rest not.

    The message is `{prefix}AWS refused {operation}: {code}: {message}{suffix}`.
    """
    code = error_code(err)
    message = err.response.get("Error", {}).get("Message", str(err))
    text = f"{prefix}AWS refused {err.operation_name}: {code}: {message}{suffix}"
    if code in THROTTLING_CODES:
        return ApplicationError(text, type=types.throttled)
    return ApplicationError(text, type=types.refused, non_retryable=True)


def wait_failure(
    err: WaiterError, types: ErrorTypes, *, prefix: str = "", suffix: str = ""
) -> ApplicationError:
    """A boto3 waiter that gave up (or saw a failure state): retryable, as the state may
    still come."""
    return ApplicationError(
        f"{prefix}{types.service} wait failed: {err}{suffix}", type=types.refused
    )

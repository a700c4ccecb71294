"""The error vocabulary: the types carried in Temporal failures are on the wire (recorded
histories, retry policies of running workflows), so their values never change."""

from __future__ import annotations

from opsflow.errors import ErrorType

# As the types were written before they became one enum; a workflow started then still
# lists these strings as non-retryable, and the CLI still maps them.
WIRE_VALUES = {
    "INVALID_INPUT": "InvalidInput",
    "NOT_FOUND": "NotFound",
    "RECIPE_FAILED": "RecipeFailed",
    "COOKBOOKS_FETCH_FAILED": "CookbooksFetchFailed",
    "COOKBOOKS_UNAVAILABLE": "CookbooksSourceUnavailable",
    "RUN_LOST": "RunLost",
    "RUN_SETUP_FAILED": "RunSetupFailed",
    "VOLUMES_NOT_READY": "VolumesNotReady",
    "HOST_KEY_MISMATCH": "HostKeyMismatch",
    "SSH_AUTH_FAILED": "SshAuthFailed",
    "SSH_UNREACHABLE": "SshUnreachable",
    "SSH_COMMAND_TIMEOUT": "SshCommandTimeout",
    "REGISTERED_HOST_REFUSED": "RegisteredHostRefused",
    "REGISTER_FAILED": "RegisterFailed",
    "EC2_REFUSED": "Ec2Refused",
    "EC2_THROTTLED": "Ec2Throttled",
    "RDS_REFUSED": "RdsRefused",
    "RDS_THROTTLED": "RdsThrottled",
    "RDS_NOT_READY": "RdsNotReady",
    "CLOUDWATCH_REFUSED": "CloudWatchRefused",
    "CLOUDWATCH_THROTTLED": "CloudWatchThrottled",
}


def test_every_error_type_keeps_its_wire_value() -> None:
    assert {member.name: member.value for member in ErrorType} == WIRE_VALUES


def test_an_error_type_is_its_string() -> None:
    """What ApplicationError and RetryPolicy are given is a str, and prints as its value."""
    assert isinstance(ErrorType.INVALID_INPUT, str) and f"{ErrorType.NOT_FOUND}" == "NotFound"

"""Instance statuses (OpsWorks' names) and which command each allows."""

from __future__ import annotations

from enum import StrEnum


class InstanceStatus(StrEnum):
    REQUESTED = "requested"
    BOOTING = "booting"
    RUNNING_SETUP = "running_setup"
    ONLINE = "online"
    SETUP_FAILED = "setup_failed"
    START_FAILED = "start_failed"
    CONNECTION_LOST = "connection_lost"
    STOPPING = "stopping"
    STOPPED = "stopped"
    TERMINATING = "terminating"
    TERMINATED = "terminated"


# Statuses an instance rests in until someone acts; `--wait` waits for one of these.
SETTLED = frozenset(
    {
        InstanceStatus.ONLINE,
        InstanceStatus.SETUP_FAILED,
        InstanceStatus.START_FAILED,
        InstanceStatus.STOPPED,
        InstanceStatus.TERMINATED,
    }
)
FAILED = frozenset({InstanceStatus.SETUP_FAILED, InstanceStatus.START_FAILED})
# Statuses in which the instance's machine exists and may hold running processes.
RUNNING = frozenset(
    {
        InstanceStatus.BOOTING,
        InstanceStatus.RUNNING_SETUP,
        InstanceStatus.ONLINE,
        InstanceStatus.SETUP_FAILED,
        InstanceStatus.CONNECTION_LOST,
        InstanceStatus.STOPPING,
    }
)
CAN_START = frozenset(
    {
        InstanceStatus.REQUESTED,
        InstanceStatus.STOPPED,
        InstanceStatus.START_FAILED,
        InstanceStatus.SETUP_FAILED,
    }
)


def why_not_start(status: InstanceStatus) -> str | None:
    if status in CAN_START:
        return None
    return f"it is {status.value}; only a stopped or failed instance can be started"


def why_not_stop(status: InstanceStatus) -> str | None:
    if status in RUNNING or status in (InstanceStatus.START_FAILED, InstanceStatus.REQUESTED):
        return None
    return f"it is {status.value}; it is not running"


def why_not_delete(status: InstanceStatus) -> str | None:
    if status in (InstanceStatus.TERMINATING, InstanceStatus.TERMINATED):
        return "it is already being deleted"
    return None


def why_not_run_recipes(status: InstanceStatus) -> str | None:
    if status == InstanceStatus.ONLINE:
        return None
    return f"it is {status.value}; recipes run only on online instances"


def entered_or_left_online(before: InstanceStatus | None, after: InstanceStatus) -> bool:
    """OpsWorks runs Configure everywhere when an instance enters or leaves online."""
    was = before == InstanceStatus.ONLINE
    return was != (after == InstanceStatus.ONLINE)

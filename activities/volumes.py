"""Making an ec2 instance's EBS volumes ready at their mount points, over SSH, right after
launch and before setup (OpsWorks did the same before running Setup).

Blocking; called from the launch activity (activities.providers). The instance may still
be booting: SSH is tried until READY_SECONDS have passed. A volume that cannot be made
ready (no device, mkfs or mount refused) is a non-retryable VolumesNotReady with the
script's output.
"""

from __future__ import annotations

import time

from temporalio.exceptions import ApplicationError

from activities import remote_script, ssh
from opsflow.errors import ErrorType
from opsflow.messages import SshEndpoint
from opsflow.volumes import FILESYSTEM, VolumeMount, nvme_serial, xen_alias

READY_SECONDS = 300.0
SCRIPT_TIMEOUT = 600.0
DEVICE_WAIT_SECONDS = 120


def mount(
    endpoint: SshEndpoint,
    root: str,
    mounts: list[VolumeMount],
    device_wait_seconds: int = DEVICE_WAIT_SECONDS,
) -> str:
    """Run the mount script on the instance; its output (one line per volume). A device
    may show up a little after its attachment: each is waited for that long."""
    if not mounts:
        return ""
    _wait_for_ssh(endpoint)
    code, out, err = ssh.run(
        endpoint,
        "sh -s",
        timeout=SCRIPT_TIMEOUT,
        stdin=mount_script(mounts, root, device_wait_seconds).encode(),
    )
    if code != 0:
        raise ApplicationError(
            f"{endpoint.user}@{endpoint.host}: volumes not ready (exit {code}): "
            f"{(err or out).strip()}",
            type=ErrorType.VOLUMES_NOT_READY,
            non_retryable=True,
        )
    return out


def mount_script(
    mounts: list[VolumeMount], root: str, wait_seconds: int = DEVICE_WAIT_SECONDS
) -> str:
    """volumes.sh with its values: each volume made ready at `{root}{mount_point}`."""
    values: dict[str, remote_script.Value] = {
        "ROOT": root,
        "FILESYSTEM": FILESYSTEM,
        "WAIT_SECONDS": int(wait_seconds),
        "VOLUMES": len(mounts),
    }
    for index, mount in enumerate(mounts, start=1):
        values |= {
            f"VOLUME_{index}_SERIAL": nvme_serial(mount),
            f"VOLUME_{index}_DEVICE": mount.device,
            f"VOLUME_{index}_ALIAS": xen_alias(mount),
            f"VOLUME_{index}_MOUNT_POINT": mount.mount_point,
        }
    return remote_script.compose("activities", ["volumes.sh"], values)


def _wait_for_ssh(endpoint: SshEndpoint) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while True:
        try:
            ssh.ping(endpoint, timeout=ssh.CONNECT_TIMEOUT)
            return
        except ApplicationError as err:
            if err.type != ErrorType.SSH_UNREACHABLE or time.monotonic() > deadline:
                raise
        time.sleep(2)

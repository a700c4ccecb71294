"""Where a layer's EBS volumes appear on an instance, and the script that makes each one
ready at its mount point (pure: the script is run by activities.volumes).

A volume attached as /dev/sdf shows up as /dev/sdf or /dev/xvdf on Xen instances and, on
Nitro instances, as an NVMe namespace that udev links as
/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol<id without the dash>: the script looks
for all three. A volume without a filesystem gets ext4; one with a filesystem (a volume
kept by a heal, or reattached) is mounted as it is, so its data stays. The mount goes into
the instance's /etc/fstab with `nofail`, so a reboot mounts it again and never hangs on it.
"""

from __future__ import annotations

import shlex

from pydantic import BaseModel

from opsflow.messages import Ec2Machine, Ec2Resources

# Devices opsflow attaches volumes as, in the order of the layer's `volumes`.
DEVICE_LETTERS = "fghijklmnop"
FILESYSTEM = "ext4"


class VolumeMount(BaseModel):
    volume_id: str
    device: str
    mount_point: str


def device_name(index: int) -> str:
    """The device the index-th volume of a layer is attached as."""
    return f"/dev/sd{DEVICE_LETTERS[index]}"


def mounts_for(machine: Ec2Machine, resources: Ec2Resources) -> list[VolumeMount]:
    """The instance's volumes with their devices and the layer's mount points."""
    return [
        VolumeMount(volume_id=volume_id, device=device_name(index), mount_point=spec.mount_point)
        for index, (volume_id, spec) in enumerate(
            zip(resources.volume_ids, machine.volumes, strict=False)
        )
    ]


_FUNCTIONS = r"""set -eu
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }
find_device() {
  for candidate in "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_$1" "$2" "$3"; do
    if [ -b "$candidate" ]; then readlink -f "$candidate"; return 0; fi
  done
  return 1
}
ready() {
  waited=0
  until device=$(find_device "$1" "$2" "$3"); do
    if [ "$waited" -ge "$wait_seconds" ]; then
      echo "volume $1: no block device $2 after ${wait_seconds}s" >&2
      exit 3
    fi
    sleep 1
    waited=$((waited + 1))
  done
  target="${root%/}$4"
  as_root mkdir -p "$target" "$(dirname "$fstab")"
  if mountpoint -q "$target"; then echo "volume $1: already on $target"; return 0; fi
  if ! as_root blkid "$device" >/dev/null 2>&1; then
    as_root mkfs -t "$filesystem" -q "$device"
  fi
  as_root mount "$device" "$target"
  uuid=$(as_root blkid -s UUID -o value "$device")
  if ! grep -qs "^UUID=$uuid " "$fstab"; then
    # fstab separates fields by blanks: a space in the path is written \040.
    listed=$(printf '%s' "$target" | sed 's/ /\\040/g')
    printf 'UUID=%s %s %s defaults,nofail 0 2\n' "$uuid" "$listed" "$filesystem" |
      as_root tee -a "$fstab" >/dev/null
  fi
  echo "volume $1: $device on $target"
}
"""


def mount_script(mounts: list[VolumeMount], root: str, wait_seconds: int = 120) -> str:
    """A POSIX sh script that makes each volume ready at `{root}{mount_point}` (idempotent:
    a mounted volume is left as it is, an fstab line is written once)."""
    q = shlex.quote
    lines = [
        _FUNCTIONS,
        f"root={q(root)}",
        'fstab="${root%/}/etc/fstab"',
        f"filesystem={FILESYSTEM}",
        f"wait_seconds={int(wait_seconds)}",
    ]
    for mount in mounts:
        serial = mount.volume_id.replace("-", "")
        alias = mount.device.replace("/dev/sd", "/dev/xvd", 1)
        lines.append(f"ready {q(serial)} {q(mount.device)} {q(alias)} {q(mount.mount_point)}")
    return "\n".join(lines) + "\n"

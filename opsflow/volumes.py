"""Where a layer's EBS volumes appear on an instance (pure: activities/volumes.sh, sent by
activities.volumes, makes each one ready at its mount point).

A volume attached as /dev/sdf shows up as /dev/sdf or /dev/xvdf on Xen instances and, on
Nitro instances, as an NVMe namespace that udev links as
/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol<id without the dash>: the script looks
for all three. A volume without a filesystem gets ext4; one with a filesystem (a volume
kept by a heal, or reattached) is mounted as it is, so its data stays. The mount goes into
the instance's /etc/fstab with `nofail`, so a reboot mounts it again and never hangs on it.
"""

from __future__ import annotations

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


def nvme_serial(mount: VolumeMount) -> str:
    """The volume id as its NVMe device's name carries it: without the dash."""
    return mount.volume_id.replace("-", "")


def xen_alias(mount: VolumeMount) -> str:
    """The name a Xen instance gives the device the volume was attached as."""
    return mount.device.replace("/dev/sd", "/dev/xvd", 1)

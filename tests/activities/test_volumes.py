"""EBS volumes made ready over real SSH on a real block device: a loop device stands in
for the attached volume (the script finds it by the device name it was attached as), and
a local instance's root stands in for the machine's /."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities import volumes
from opsflow.errors import ErrorType
from opsflow.messages import Ec2Machine, Ec2Resources, LaunchResult
from opsflow.spec import Ec2Options, VolumeSpec
from opsflow.volumes import VolumeMount, mounts_for


def _loop_devices_work(image: Path) -> str | None:
    if shutil.which("losetup") is None:
        return None
    attached = subprocess.run(
        ["losetup", "-f", "--show", str(image)], capture_output=True, text=True, check=False
    )
    return attached.stdout.strip() if attached.returncode == 0 else None


@pytest.fixture
def block_device(tmp_path: Path) -> Iterator[str]:
    image = tmp_path / "volume.img"
    with image.open("wb") as out:
        out.truncate(32 * 1024 * 1024)
    device = _loop_devices_work(image)
    if device is None:
        pytest.skip("no loop devices on this machine: no block device to stand in for EBS")
    try:
        yield device
    finally:
        subprocess.run(["losetup", "-d", device], check=False)


def unmount(target: Path) -> None:
    subprocess.run(["umount", str(target)], check=False)


def test_a_new_volume_gets_a_filesystem_a_mount_and_one_fstab_line(
    instance: LaunchResult, block_device: str
) -> None:
    root = Path(instance.root)
    target = root / "data"
    mount = VolumeMount(volume_id="vol-0abc1234", device=block_device, mount_point="/data")
    try:
        said = volumes.mount(instance.ssh, instance.root, [mount])
        assert f"volume vol0abc1234: {block_device} on {target}" in said
        assert subprocess.run(["mountpoint", "-q", str(target)], check=False).returncode == 0
        (target / "orders.db").write_text("kept\n")
        fstab = (root / "etc/fstab").read_text().splitlines()
        assert len(fstab) == 1 and fstab[0].startswith("UUID=")
        listed = str(target).replace(" ", "\\040")  # the home has a space: fstab escapes it
        assert fstab[0].split()[1:4] == [listed, "ext4", "defaults,nofail"]
        # Again while mounted: nothing changes (a retried launch).
        assert "already on" in volumes.mount(instance.ssh, instance.root, [mount])
        unmount(target)
        # Mounted again (a heal reattaches the kept volume): no mkfs, the data is there.
        volumes.mount(instance.ssh, instance.root, [mount])
        assert (target / "orders.db").read_text() == "kept\n"
        assert (root / "etc/fstab").read_text().splitlines() == fstab
    finally:
        unmount(target)


def test_a_volume_whose_device_never_appears_fails_with_the_scripts_word(
    instance: LaunchResult,
) -> None:
    mount = VolumeMount(volume_id="vol-0abc1234", device="/dev/sdz", mount_point="/data")
    with pytest.raises(ApplicationError, match="no block device /dev/sdz after 1s") as failed:
        volumes.mount(instance.ssh, instance.root, [mount], device_wait_seconds=1)
    assert failed.value.type == ErrorType.VOLUMES_NOT_READY and failed.value.non_retryable
    assert not (Path(instance.root) / "data").exists()


def test_volumes_are_made_ready_in_order_each_with_its_own_values(
    instance: LaunchResult, block_device: str
) -> None:
    target = Path(instance.root) / "data one"
    first = VolumeMount(volume_id="vol-0abc1234", device=block_device, mount_point="/data one")
    second = VolumeMount(volume_id="vol-0def5678", device="/dev/sdy", mount_point="/logs")
    try:
        with pytest.raises(ApplicationError, match="volume vol0def5678: no block device /dev/sdy"):
            volumes.mount(instance.ssh, instance.root, [first, second], device_wait_seconds=1)
        assert subprocess.run(["mountpoint", "-q", str(target)], check=False).returncode == 0
        assert not (Path(instance.root) / "logs").exists()
    finally:
        unmount(target)


def test_each_volume_is_named_by_the_device_it_is_attached_as() -> None:
    machine = Ec2Machine(
        stack="s",
        layer="db",
        hostname="db1",
        region="us-east-1",
        options=Ec2Options(),
        volumes=[VolumeSpec(size=10, mount_point="/data"), VolumeSpec(size=5, mount_point="/logs")],
        token="t",
    )
    resources = Ec2Resources(instance_id="i-1", volume_ids=["vol-1", "vol-2"])
    assert [(m.volume_id, m.device, m.mount_point) for m in mounts_for(machine, resources)] == [
        ("vol-1", "/dev/sdf", "/data"),
        ("vol-2", "/dev/sdg", "/logs"),
    ]

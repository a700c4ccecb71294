# shellcheck shell=sh
# Make each EBS volume ready at ${ROOT}{its mount point}, idempotently: a mounted volume is
# left as it is, a volume without a filesystem gets one, an fstab line is written once.
# Values: ROOT, FILESYSTEM, WAIT_SECONDS (per device), VOLUMES (how many), and per volume
# i (1..VOLUMES): VOLUME_i_SERIAL (the volume id without its dash, as NVMe names it),
# VOLUME_i_DEVICE (the device it was attached as), VOLUME_i_ALIAS (its Xen name),
# VOLUME_i_MOUNT_POINT (see opsflow/volumes.py).
set -eu
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
    if [ "$waited" -ge "$WAIT_SECONDS" ]; then
      echo "volume $1: no block device $2 after ${WAIT_SECONDS}s" >&2
      exit 3
    fi
    sleep 1
    waited=$((waited + 1))
  done
  target="${ROOT%/}$4"
  as_root mkdir -p "$target" "$(dirname "$fstab")"
  if mountpoint -q "$target"; then echo "volume $1: already on $target"; return 0; fi
  if ! as_root blkid "$device" >/dev/null 2>&1; then
    as_root mkfs -t "$FILESYSTEM" -q "$device"
  fi
  as_root mount "$device" "$target"
  uuid=$(as_root blkid -s UUID -o value "$device")
  if ! grep -qs "^UUID=$uuid " "$fstab"; then
    # fstab separates fields by blanks: a space in the path is written \040.
    listed=$(printf '%s' "$target" | sed 's/ /\\040/g')
    printf 'UUID=%s %s %s defaults,nofail 0 2\n' "$uuid" "$listed" "$FILESYSTEM" |
      as_root tee -a "$fstab" >/dev/null
  fi
  echo "volume $1: $device on $target"
}
fstab="${ROOT%/}/etc/fstab"
i=1
while [ "$i" -le "$VOLUMES" ]; do
  # Only variable names are spliced into the eval'd text; the values stay in variables.
  eval "ready \"\$VOLUME_${i}_SERIAL\" \"\$VOLUME_${i}_DEVICE\" \"\$VOLUME_${i}_ALIAS\"" \
    "\"\$VOLUME_${i}_MOUNT_POINT\""
  i=$((i + 1))
done

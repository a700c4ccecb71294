# shellcheck shell=sh
# Boot an isolated local instance (activities/local_machine.py runs this under
# `unshare --mount --propagation private`, in a session of its own): its disk is an overlay
# of this host's / with the machine's own upper layer, mounted only inside this private
# mount namespace (gone with the machine's last process, so a crash leaves no mount), then
# systemd-nspawn runs the machine on it, replacing this shell.
# Arguments: UPPER WORK ROOTFS, then systemd-nspawn's command line.
set -eu
upper=$1 work=$2 rootfs=$3
shift 3
mount -t overlay overlay -o "lowerdir=/,upperdir=$upper,workdir=$work" "$rootfs"
exec "$@"

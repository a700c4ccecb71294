# shellcheck shell=sh
# In the run directory: poll for `exit` for one chunk (WAIT_POLLS polls, the first
# FAST_POLLS of them FAST_POLL_SECONDS apart, then POLL_SECONDS), then report.sh.
# Values: RUN, NAP_FIFO, WAIT_POLLS, FAST_POLLS, FAST_POLL_SECONDS, POLL_SECONDS.
cd "$RUN" || exit 91
# A pause between polls. `sleep` is a fork and an exec per poll: with many instances
# waiting on one small machine, that alone can take the CPU. Under bash (the usual login
# shell, which runs this command) a timed `read` on a FIFO nobody writes to pauses without
# either; the instance keeps one FIFO for every run (made once, so no fork per run).
nap() { sleep "$1"; }
if [ -n "${BASH_VERSION:-}" ] && { [ -p "$NAP_FIFO" ] || mkfifo -m 600 "$NAP_FIFO" 2>/dev/null ||
  [ -p "$NAP_FIFO" ]; } && exec 9<>"$NAP_FIFO"; then
  # shellcheck disable=SC3045 # read -t/-u: only ever defined under bash (checked above)
  nap() { read -r -t "$1" -u 9 _ 2>/dev/null; return 0; }
fi
i=0 d=$FAST_POLL_SECONDS
while [ ! -e exit ]; do
  [ $i -lt "$WAIT_POLLS" ] || { echo state=pending; exit 0; }
  # shellcheck disable=SC2154 # readf assigns p
  if [ $((i % 20)) -eq 0 ] && readf p pid && ! alive "$p" && [ ! -e exit ]; then
    echo state=died; exit 0
  fi
  [ $i -lt "$FAST_POLLS" ] || d=$POLL_SECONDS
  nap "$d"; i=$((i + 1))
done

# shellcheck shell=sh
# Stop a run: leave the `cancelled` marker (run.sh checks it before each recipe), TERM
# its process group, KILL what is left after the grace period, make sure `exit` says
# CANCELLED_EXIT, then report.sh. A run never claimed is claimed as cancelled, so an
# attempt still on its way cannot start it.
# Values: RUNS, RUN, CANCELLED_EXIT, GRACE_POLLS, GRACE_SECONDS, POLL_SECONDS.
# Whether any live (not zombie) process is in process group $1: fields 3 and 5 of
# /proc/*/stat, after the command name (which may hold spaces and parentheses).
group_alive() {
  [ -n "$1" ] && cat /proc/[0-9]*/stat 2>/dev/null |
    sed -n 's/^.*) [^Z] [0-9]* \([0-9]*\) .*$/\1/p' | grep -qx "$1"
}
note() { printf '%s opsflow: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" >> log; }
ended() {
  [ -e exit ] && return 0
  date -u +%Y-%m-%dT%H:%M:%SZ > finished
  printf '%s\n' "$CANCELLED_EXIT" > exit.tmp && mv exit.tmp exit
}
mkdir -p "$RUNS" || exit 90
if mkdir "$RUN" 2>/dev/null; then
  cd "$RUN" || exit 91
  : > cancelled; note "cancelled before it started"; ended
fi
cd "$RUN" || exit 91
if [ ! -e exit ]; then
  : > cancelled
  i=0; while [ ! -s pid ] && [ ! -e exit ] && [ $i -lt 200 ]; do sleep 0.01; i=$((i + 1)); done
  readf pid pid
  # shellcheck disable=SC2154 # readf assigns pid
  if [ ! -e exit ] && group_alive "$pid"; then
    note "cancel requested: stopping the run (TERM to process group $pid)"
    kill -s TERM -- "-$pid" 2>/dev/null
    i=0
    while group_alive "$pid" && [ $i -lt "$GRACE_POLLS" ]; do
      sleep "$POLL_SECONDS"; i=$((i + 1))
    done
    if group_alive "$pid"; then
      note "still running after ${GRACE_SECONDS}s: KILL to process group $pid"
      kill -s KILL -- "-$pid" 2>/dev/null
      i=0; while group_alive "$pid" && [ $i -lt 100 ]; do sleep 0.02; i=$((i + 1)); done
    fi
  fi
  if [ ! -e exit ]; then note "cancelled"; ended; fi
fi

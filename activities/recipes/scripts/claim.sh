# shellcheck shell=sh
# Claim the run directory or say what state an earlier attempt left it in; if claimed,
# move the run files in, start run.sh detached and prune old runs. wait.sh follows in
# the same command.
# Values: RUNS, RUN, NONCE, KEEP_RUNS; $in from stage.sh.
# shellcheck disable=SC2154 # in: set by stage.sh (same command); p: assigned by readf
claim() { mkdir "$RUN" 2>/dev/null && printf '%s\n' "$NONCE" > "$RUN/owner"; }
if claim; then c=new
elif [ -e "$RUN/exit" ]; then c='done'
elif readf p "$RUN/pid" && alive "$p"; then c=running
elif [ -e "$RUN/exit" ]; then c='done'
else
  n=1; while [ -e "$RUN.lost-$n" ]; do n=$((n + 1)); done
  mv -T "$RUN" "$RUN.lost-$n" && echo lost=$n
  if claim; then c=new; else c=busy; fi
fi
echo claim=$c
if [ $c = new ]; then
  mv "$in"/run/* "$RUN"/ || { rm -rf "$in"; exit 92; }
  # Finished (or lost) runs beyond the newest KEEP_RUNS go; run ids have no spaces.
  set -- "$RUNS"/*
  # shellcheck disable=SC2012 # ls -t: newest first; run ids are plain names
  [ $# -le "$KEEP_RUNS" ] ||
  ( cd "$RUNS" && ls -1t | tail -n +$((KEEP_RUNS + 1)) | while read -r d; do
      case $d in *.lost-*) ;; *) [ -e "$d/exit" ] || continue ;; esac
      rm -rf -- "$d"
    done ) 2>/dev/null
fi
rm -rf "$in"
[ $c != busy ] || exit 0
cd "$RUN" || exit 91
if [ $c = new ] && [ ! -e pid ]; then
  : >> log
  ( setsid nohup sh ./run.sh </dev/null >/dev/null 2>&1 & echo $! > pid.tmp ) && mv pid.tmp pid
fi

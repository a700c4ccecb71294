# shellcheck shell=sh
# The detached run script (run.sh in the run directory): run each recipe in order with
# the manager's tool, log with timestamps, write `exit`; TERM (a cancellation) ends it
# with OPSFLOW_CANCELLED_EXIT. With an app (OPSFLOW_APP_ACTION set): its release step
# before the recipes and after them (app.sh). The manager's part (manager-*.sh) defines
# `tool` (sets `missing` when the tool is absent) and `invoke RECIPE FILE`.
# Values: OPSFLOW_RUN_DIR, OPSFLOW_RECIPES and OPSFLOW_RECIPE_FILES (the recipes and their
# files under OPSFLOW_COOKBOOKS, in the same order: names of safe characters, split on
# blanks), OPSFLOW_CANCELLED_EXIT, OPSFLOW_APP_ACTION, OPSFLOW_USERS (set: converge the
# stack users first, users.sh); exported above them: the recipes'
# environment (the app's, then opsflow's own). Every value is named OPSFLOW_*, a prefix
# opsflow keeps for itself, so no app variable of another name is overwritten.
cd "$OPSFLOW_RUN_DIR" || exit 1
stamp() {
  while IFS= read -r line || [ -n "$line" ]; do
    printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$line"
  done
}
say() { printf '%s opsflow: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" >> log; }
app_failed() { :; }
finish() {
  [ "$1" = 0 ] || app_failed
  date -u +%Y-%m-%dT%H:%M:%SZ > finished
  printf '%s\n' "$1" > exit.tmp && mv exit.tmp exit
  exit 0
}
trap ': > cancelled; say "stopped: the run was cancelled"; finish "$OPSFLOW_CANCELLED_EXIT"' TERM
date -u +%Y-%m-%dT%H:%M:%SZ > started
tool
n=0
step() {
  printf '%s\n' "$1" > recipe
  if [ -e cancelled ]; then say "cancelled before $1"; finish "$OPSFLOW_CANCELLED_EXIT"; fi
  say "running $1"
  if [ -n "$missing" ]; then say "$missing"; return 127; fi
  if [ ! -f "$2" ]; then say "recipe $1 not found: no $2 on this instance"; return 127; fi
  n=$((n + 1)); mkfifo "stream.$n" || return 1
  { stamp < "stream.$n" >> log; : > "stream.$n.done"; } &
  ( cd "$OPSFLOW_ROOT" && invoke "$1" "$2" ) > "stream.$n" 2>&1 < /dev/null
  rc=$?
  # A daemon the recipe started may hold the stream open: give the stamper 1 s, not more.
  i=0; while [ ! -e "stream.$n.done" ] && [ $i -lt 100 ]; do sleep 0.01; i=$((i + 1)); done
  rm -f "stream.$n"
  return $rc
}
# Stack users (users.sh) before anything else the run does on the instance.
[ -z "$OPSFLOW_USERS" ] || users_converge
[ -z "$OPSFLOW_APP_ACTION" ] || app_prepare
# The two lists split on blanks, whatever IFS the app's environment exported.
ifs=$IFS IFS=' '
# shellcheck disable=SC2086 # split on purpose: both lists hold names of safe characters
set -- $OPSFLOW_RECIPE_FILES
for recipe in $OPSFLOW_RECIPES; do
  IFS=$ifs
  step "$recipe" "$OPSFLOW_COOKBOOKS/$1" || finish $?
  shift
done
IFS=$ifs
[ -z "$OPSFLOW_APP_ACTION" ] || app_complete
say "done"
finish 0

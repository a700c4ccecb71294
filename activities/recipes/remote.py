"""The remote scripts: staging, claiming and starting, waiting on, stopping a run, and the
detached run script itself. Every interpolated value is quoted."""

from __future__ import annotations

import posixpath

from activities.recipes.layout import Layout
from activities.recipes.managers import STEPS, TARGET, recipe_path
from activities.recipes.releases import App, app_steps
from activities.ssh import quote
from opsflow.messages import RecipeRunInput
from opsflow.spec import ConfigurationManager

# One remote command waits at most this long, then the next one takes over: bounds how
# long an abandoned activity's thread lingers.
WAIT_CHUNK_SECONDS = 30
POLL_SECONDS = 0.05
# Most recipe runs are short: the first half second is polled finely, for latency.
FAST_POLL_SECONDS = 0.01
FAST_POLLS = 50
# A cancelled run's processes get TERM, then KILL after this long.
CANCEL_GRACE_SECONDS = 5.0
CANCELLED_EXIT_CODE = 130
# Finished run directories kept on an instance (the worker keeps their logs too).
KEEP_REMOTE_RUNS = 30

# Whether a pid runs; a zombie nobody reaped yet counts as dead.
# Shell builtins only (no fork): it runs in every wait loop on every instance.
_ALIVE = (
    'alive() { kill -0 "$1" 2>/dev/null || return 1; '
    's=; read -r s 2>/dev/null < "/proc/$1/stat"; s=${s##*) }; '
    '[ "${s%% *}" != Z ]; }'
)
# `readf NAME FILE`: NAME= the file's first line, or empty (a builtin, unlike $(cat FILE)).
_READF = 'readf() { eval "$1="; [ -f "$2" ] && IFS= read -r "$1" < "$2"; return 0; }'
_HELPERS = f"{_READF}\n{_ALIVE}"
# Whether any live (not zombie) process is in process group $1: fields 3 and 5 of
# /proc/*/stat, after the command name (which may hold spaces and parentheses).
_GROUP_ALIVE = (
    'group_alive() { [ -n "$1" ] && cat /proc/[0-9]*/stat 2>/dev/null | '
    "sed -n 's/^.*) [^Z] [0-9]* \\([0-9]*\\) .*$/\\1/p' | grep -qx \"$1\"; }"
)


def stage_script(layout: Layout) -> str:
    """Read the payload (stdin) aside into $in; stage the cookbooks (and the app's code)
    if it has them and they are missing; say whether they are staged (stop there if
    not: `cookbooks=0`/`app=0` say which is missing)."""
    cookbooks = quote(layout.cookbooks)
    dirs = " ".join(
        quote(d) for d in (layout.runs, layout.tmp, posixpath.dirname(layout.cookbooks))
    )
    app = ""
    if layout.app_code is not None:
        code = quote(layout.app_code)
        app = f"""mkdir -p {quote(posixpath.dirname(layout.app_code))} || exit 90
if [ ! -d {code} ] && [ -d "$in/app" ]; then
  mv -T "$in/app" {code} 2>/dev/null && echo app_new=1
fi
[ -d {code} ] || {{ echo app=0; s=0; }}
"""
    return f"""{_HELPERS}
mkdir -p {dirs} || exit 90
in=$(mktemp -d {quote(layout.tmp)}/in.XXXXXX) || exit 90
tar -x${{z:-}}f - -C "$in" --no-same-owner || {{ rm -rf "$in"; exit 92; }}
if [ ! -d {cookbooks} ] && [ -d "$in/cookbooks" ]; then
  mv -T "$in/cookbooks" {cookbooks} 2>/dev/null && echo new=1
fi
s=1
[ -d {cookbooks} ] || {{ echo cookbooks=0; s=0; }}
{app}if [ $s = 0 ]; then rm -rf "$in"; echo staged=0; exit 0; fi
echo staged=1
"""


def claim_script(layout: Layout, nonce: str) -> str:
    """Claim the run directory or say what state an earlier attempt left it in; if
    claimed, move the run files in, start run.sh detached and prune old runs. The wait
    (`_wait_body`) follows in the same command."""
    run, owner = quote(layout.run), quote(layout.in_run("owner"))
    exit_file, pid = quote(layout.in_run("exit")), quote(layout.in_run("pid"))
    return f"""claim() {{ mkdir {run} 2>/dev/null && printf '%s\\n' {quote(nonce)} > {owner}; }}
if claim; then c=new
elif [ -e {exit_file} ]; then c=done
elif readf p {pid} && alive "$p"; then c=running
elif [ -e {exit_file} ]; then c=done
else
  n=1; while [ -e {run}.lost-$n ]; do n=$((n + 1)); done
  mv -T {run} {run}.lost-$n && echo lost=$n
  if claim; then c=new; else c=busy; fi
fi
echo claim=$c
if [ $c = new ]; then
  mv "$in"/run/* {run}/ || {{ rm -rf "$in"; exit 92; }}
  # Finished (or lost) runs beyond the newest {KEEP_REMOTE_RUNS} go; run ids have no spaces.
  set -- {quote(layout.runs)}/*
  [ $# -le {KEEP_REMOTE_RUNS} ] ||
  ( cd {quote(layout.runs)} && ls -1t | tail -n +{KEEP_REMOTE_RUNS + 1} | while read -r d; do
      case $d in *.lost-*) ;; *) [ -e "$d/exit" ] || continue ;; esac
      rm -rf -- "$d"
    done ) 2>/dev/null
fi
rm -rf "$in"
[ $c != busy ] || exit 0
cd {run} || exit 91
if [ $c = new ] && [ ! -e pid ]; then
  : >> log
  ( setsid nohup sh ./run.sh </dev/null >/dev/null 2>&1 & echo $! > pid.tmp ) && mv pid.tmp pid
fi
"""


def wait_script(layout: Layout) -> str:
    """Wait on a run already started (the start command's wait chunk ran out)."""
    return f"""{_HELPERS}
cd {quote(layout.run)} || exit 91
{wait_body(layout)}"""


def _report() -> str:
    """In the run directory, once `exit` exists: the outcome, `---`, the whole log."""
    return """echo state=done
for f in exit recipe recipes manager started finished; do readf v $f; echo "$f=$v"; done
if [ -e cancelled ]; then echo cancelled=1; fi
if [ -e app_release ]; then readf v app_release; echo "release=$v"; fi
if [ -e app_previous ]; then readf v app_previous; echo "previous_release=$v"; fi
if [ -e app_error ]; then readf v app_error; echo "app_error=$v"; fi
echo ---
cat log 2>/dev/null
exit 0
"""


# A pause between polls. `sleep` is a fork and an exec per poll: with many instances
# waiting on one small machine, that alone can take the CPU. Under bash (the usual login
# shell, which runs this command) a timed `read` on a FIFO nobody writes to pauses without
# either; the instance keeps one FIFO for every run (made once, so no fork per run).
def _nap(layout: Layout) -> str:
    fifo = quote(posixpath.join(layout.state, "nap.fifo"))
    return f"""nap() {{ sleep "$1"; }}
if [ -n "${{BASH_VERSION:-}}" ] && {{ [ -p {fifo} ] || mkfifo -m 600 {fifo} 2>/dev/null ||
  [ -p {fifo} ]; }} && exec 9<>{fifo}; then
  nap() {{ read -r -t "$1" -u 9 _ 2>/dev/null; return 0; }}
fi"""


def wait_body(layout: Layout) -> str:
    """In the run directory: poll for `exit` for one chunk, then report."""
    slow = int((WAIT_CHUNK_SECONDS - FAST_POLLS * FAST_POLL_SECONDS) / POLL_SECONDS)
    return f"""{_nap(layout)}
i=0 d={FAST_POLL_SECONDS}
while [ ! -e exit ]; do
  [ $i -lt {FAST_POLLS + slow} ] || {{ echo state=pending; exit 0; }}
  if [ $((i % 20)) -eq 0 ] && readf p pid && ! alive "$p" && [ ! -e exit ]; then
    echo state=died; exit 0
  fi
  [ $i -lt {FAST_POLLS} ] || d={POLL_SECONDS}
  nap $d; i=$((i + 1))
done
{_report()}"""


def stop_script(layout: Layout) -> str:
    """Stop a run: leave the `cancelled` marker (run.sh checks it before each recipe),
    TERM its process group, KILL what is left after the grace period, make sure `exit`
    says 130, then report. A run never claimed is claimed as cancelled, so an attempt
    still on its way cannot start it."""
    grace_polls = max(int(CANCEL_GRACE_SECONDS / POLL_SECONDS), 1)
    return f"""{_HELPERS}
{_GROUP_ALIVE}
note() {{ printf '%s opsflow: %s\\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" >> log; }}
ended() {{
  [ -e exit ] && return 0
  date -u +%Y-%m-%dT%H:%M:%SZ > finished
  printf '%s\\n' {CANCELLED_EXIT_CODE} > exit.tmp && mv exit.tmp exit
}}
mkdir -p {quote(layout.runs)} || exit 90
if mkdir {quote(layout.run)} 2>/dev/null; then
  cd {quote(layout.run)} || exit 91
  : > cancelled; note "cancelled before it started"; ended
fi
cd {quote(layout.run)} || exit 91
if [ ! -e exit ]; then
  : > cancelled
  i=0; while [ ! -s pid ] && [ ! -e exit ] && [ $i -lt 200 ]; do sleep 0.01; i=$((i + 1)); done
  readf pid pid
  if [ ! -e exit ] && group_alive "$pid"; then
    note "cancel requested: stopping the run (TERM to process group $pid)"
    kill -s TERM -- "-$pid" 2>/dev/null
    i=0
    while group_alive "$pid" && [ $i -lt {grace_polls} ]; do
      sleep {POLL_SECONDS}; i=$((i + 1))
    done
    if group_alive "$pid"; then
      note "still running after {CANCEL_GRACE_SECONDS:g}s: KILL to process group $pid"
      kill -s KILL -- "-$pid" 2>/dev/null
      i=0; while group_alive "$pid" && [ $i -lt 100 ]; do sleep 0.02; i=$((i + 1)); done
    fi
  fi
  if [ ! -e exit ]; then note "cancelled"; ended; fi
fi
{_report()}"""


def run_script(
    layout: Layout,
    request: RecipeRunInput,
    recipes: list[str],
    manager: ConfigurationManager,
    app: App | None = None,
    nonce: str = "",
) -> str:
    """The detached script: run each recipe in order with the manager's tool, log with
    timestamps, write `exit`; TERM (a cancellation) ends it with 130. With an app: its
    release step before the recipes and after them (see _app_steps)."""
    attributes = layout.in_run("attributes.json")
    env = {
        "OPSFLOW_ATTRIBUTES": attributes,
        "OPSFLOW_EVENT": request.event,
        "OPSFLOW_INSTANCE": request.hostname,
        "OPSFLOW_ROOT": layout.root,
        "OPSFLOW_RUN_ID": request.run_id,
        "OPSFLOW_STACK": request.stack,
    }
    if manager == ConfigurationManager.PUPPET:
        env |= {
            "FACTER_opsflow_stack": request.stack,
            "FACTER_opsflow_instance": request.hostname,
            "FACTER_opsflow_event": request.event,
            "FACTER_opsflow_root": layout.root,
            "FACTER_opsflow_attributes": attributes,
        }
    # The app's variables first: opsflow's own win a clash.
    app_env = app.environment if app is not None else {}
    exports = "\n".join(f"export {name}={quote(value)}" for name, value in (app_env | env).items())
    before, after = app_steps(layout, request, app, nonce) if app else ("", "")
    steps = "\n".join(
        f"step {quote(recipe)} {quote(recipe_path(layout, manager, recipe))}"
        f" {quote(TARGET[manager](recipe))} || finish $?"
        for recipe in recipes
    )
    return f"""#!/bin/sh
# opsflow run {request.run_id} ({manager.value}, generated): recipes in order, the first
# failure ends it.
cd {quote(layout.run)} || exit 1
{exports}
stamp() {{
  while IFS= read -r line || [ -n "$line" ]; do
    printf '%s %s\\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$line"
  done
}}
say() {{ printf '%s opsflow: %s\\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" >> log; }}
app_failed() {{ :; }}
finish() {{
  [ "$1" = 0 ] || app_failed
  date -u +%Y-%m-%dT%H:%M:%SZ > finished
  printf '%s\\n' "$1" > exit.tmp && mv exit.tmp exit
  exit 0
}}
trap ': > cancelled; say "stopped: the run was cancelled"; finish {CANCELLED_EXIT_CODE}' TERM
date -u +%Y-%m-%dT%H:%M:%SZ > started
{STEPS[manager](layout)}
n=0
step() {{
  printf '%s\\n' "$1" > recipe
  if [ -e cancelled ]; then say "cancelled before $1"; finish {CANCELLED_EXIT_CODE}; fi
  say "running $1"
  if [ -n "$missing" ]; then say "$missing"; return 127; fi
  if [ ! -f "$2" ]; then say "recipe $1 not found: no $2 on this instance"; return 127; fi
  n=$((n + 1)); mkfifo "stream.$n" || return 1
  {{ stamp < "stream.$n" >> log; : > "stream.$n.done"; }} &
  ( cd {quote(layout.root)} && invoke "$1" "$2" "$3" ) > "stream.$n" 2>&1 < /dev/null
  rc=$?
  # A daemon the recipe started may hold the stream open: give the stamper 1 s, not more.
  i=0; while [ ! -e "stream.$n.done" ] && [ $i -lt 100 ]; do sleep 0.01; i=$((i + 1)); done
  rm -f "stream.$n"
  return $rc
}}
{before}{steps}
{after}say "done"
finish 0
"""

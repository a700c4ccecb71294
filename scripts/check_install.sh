#!/usr/bin/env bash
# Check that a plain `pip install .` (not editable) gives a working opsflow: a fresh venv in
# a temp directory, the checkout installed into it from a copy (so no build/ or egg-info is
# left in the checkout), then, from a directory that is not the checkout:
#   - `opsflow --help` runs;
#   - the worker module imports from site-packages (not from the checkout) with everything
#     it registers;
#   - `opsflow dev up` starts the dev server and that installed worker (on free ports, in a
#     temp OPSFLOW_HOME), `dev status` shows both running, `dev down --all` stops them
#     (and removes the bridge `dev up` claimed for isolated machines).
# A tool, not part of `make test` (a fresh install takes a minute or two).
# Usage: scripts/check_install.sh   (exit 0: all checks passed)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CHECKOUT=$PWD

say() { printf 'check_install: %s\n' "$*" >&2; }
fail() {
  say "FAILED: $*"
  exit 1
}

PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/opsflow-install.XXXXXX")
VENV=$WORK/venv
HOME_DIR=$WORK/home
cleanup() {
  if [ -x "$VENV/bin/opsflow" ] && [ -d "$HOME_DIR/run" ]; then
    (cd "$WORK" && OPSFLOW_HOME=$HOME_DIR "$VENV/bin/opsflow" dev down --all >/dev/null 2>&1) || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

say "copying the checkout to $WORK/src"
mkdir -p "$WORK/src"
if git -C "$CHECKOUT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  # Tracked and new files, as they are now (uncommitted changes included); nothing ignored.
  (
    cd "$CHECKOUT"
    git ls-files -z --cached --others --exclude-standard |
      while IFS= read -r -d '' file; do
        if [ -e "$file" ]; then printf '%s\0' "$file"; fi # not a file deleted but tracked
      done |
      xargs -0 cp -P --parents -t "$WORK/src"
  )
else
  tar -C "$CHECKOUT" --exclude=./.venv --exclude=./build -cf - . | tar -C "$WORK/src" -xf -
fi

say "making a fresh venv and installing (pip install ., not editable)"
"$PYTHON" -m venv "$VENV"
started=$SECONDS
"$VENV/bin/python" -m pip install --quiet "$WORK/src" || fail "pip install ."
say "installed in $((SECONDS - started)) s"

cd "$WORK" # not the checkout: nothing may come from it
[ -x "$VENV/bin/opsflow" ] || fail "no opsflow console script in the venv"
"$VENV/bin/opsflow" --help >"$WORK/help.txt" || fail "opsflow --help"
grep -q "Usage: opsflow" "$WORK/help.txt" || fail "opsflow --help printed no usage"
say "ok: opsflow --help"

"$VENV/bin/python" - "$VENV" <<'PY' || fail "the worker module does not import from site-packages"
import sys
from pathlib import Path

venv = Path(sys.argv[1]).resolve()
import worker  # noqa: E402

for name in ("worker", "client", "workflows", "activities", "opsflow"):
    module = sys.modules.get(name) or __import__(name)
    where = Path(module.__file__).resolve()
    assert venv in where.parents, f"{name} comes from {where}, not from the venv"
assert worker.WORKFLOWS and callable(worker.build_worker)
PY
say "ok: the worker module imports from site-packages"

ports=$("$VENV/bin/python" -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))
')
read -r port ui_port <<<"$ports"
export OPSFLOW_HOME=$HOME_DIR OPSFLOW_DEV_PORT=$port OPSFLOW_UI_PORT=$ui_port
unset TEMPORAL_ADDRESS
"$VENV/bin/opsflow" dev up >"$WORK/up.txt" 2>&1 || {
  cat "$WORK/up.txt" >&2
  fail "opsflow dev up (dev server and the installed worker)"
}
"$VENV/bin/opsflow" dev status -o json | "$VENV/bin/python" -c '
import json, sys
parts = {p["name"]: p for p in json.load(sys.stdin)}
assert parts["temporal"]["running"] and parts["worker"]["running"], parts
' || fail "dev status does not show both parts running"
"$VENV/bin/opsflow" dev down --all >/dev/null || fail "opsflow dev down"
say "ok: opsflow dev up starts the dev server and the installed worker; dev down stops them"

tops=$("$VENV/bin/python" -c '
import importlib.metadata as m
print(" ".join(sorted((m.distribution("opsflow").read_text("top_level.txt") or "").split())))
')
say "top-level names the wheel installs into site-packages: $tops"
say "all checks passed"

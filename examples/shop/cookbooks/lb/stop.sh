#!/bin/sh
# The lb layer's shutdown recipe: HAProxy stops accepting and finishes what it holds.
set -eu
pid=$(cat "${OPSFLOW_ROOT%/}/run/haproxy.pid" 2>/dev/null || true)
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -qa haproxy "/proc/$pid/cmdline"; then
  kill -USR1 "$pid"
  echo "HAProxy stopping ($pid)"
else
  echo "HAProxy not running"
fi

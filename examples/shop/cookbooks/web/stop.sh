#!/bin/sh
# shutdown and undeploy (and `run shop stop --app store`): stop the web server. HAProxy's
# checks take the instance out within a second; the configure round that follows its
# leaving `online` takes it out of the configuration.
set -eu
pidfile=${OPSFLOW_ROOT%/}/run/shop-web.pid
pid=$(cat "$pidfile" 2>/dev/null || true)
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -qa http.server "/proc/$pid/cmdline"; then
  kill "$pid"
  echo "web server stopped ($pid)"
else
  echo "web server not running"
fi
rm -f "$pidfile"

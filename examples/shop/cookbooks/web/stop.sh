#!/bin/sh
# shutdown and undeploy (and `run shop stop --app store`): stop the web server, letting the
# requests in flight finish. HAProxy sends the next ones to the other instances (its checks
# take this one out within a second, and retry what it refuses meanwhile); the configure
# round that follows its leaving `online` takes it out of the configuration.
set -eu
pidfile=${OPSFLOW_ROOT%/}/run/shop-web.pid
pid=$(cat "$pidfile" 2>/dev/null || true)
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -qa shop/serve.py "/proc/$pid/cmdline"; then
  kill "$pid"
  # Until its requests are answered (a few ms for the shop's page; 10 s at most).
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  echo "web server stopped ($pid)"
else
  echo "web server not running"
fi
rm -f "$pidfile"

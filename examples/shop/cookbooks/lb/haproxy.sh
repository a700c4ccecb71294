#!/bin/sh
# The lb layer's setup and configure recipe. HAProxy's backends are the web layer's online
# instances, read from the stack configuration, so configure (which runs whenever an
# instance enters or leaves online) takes a dead or stopped one out and a healed one back.
# A changed configuration is checked, then loaded without dropping a connection: the new
# HAProxy takes the listening socket over the stats socket (-x) and the old one finishes
# the requests it holds (-sf).
set -eu
root=${OPSFLOW_ROOT%/}
cfg=$root/etc/haproxy/haproxy.cfg
mkdir -p "$root/etc/haproxy" "$root/var/log"

servers=$(python3 - <<'PY'
import json, os

with open(os.environ["OPSFLOW_ATTRIBUTES"]) as attributes:
    layers = json.load(attributes)["opsflow"]["layers"]
for host, instance in sorted(layers.get("web", {}).get("instances", {}).items()):
    if instance["status"] == "online" and instance.get("private_ip"):
        print(f"    server {host} {instance['private_ip']}:80 check")
PY
)
names=$(printf '%s\n' "$servers" | awk 'NF { printf " %s", $2 }')
echo "backends:${names:- none}"
printf '%s backends:%s\n' "$(date -u +%FT%TZ)" "${names:- none}" >> "$root/var/log/shop-lb.log"

cat > "$cfg.new" <<CFG
# Written by the shop's lb::haproxy recipe (opsflow) at each configure: do not edit.
global
    pidfile /run/haproxy.pid
    stats socket /run/haproxy.sock mode 600 expose-fd listeners level admin

defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 10s
    # A request whose server refuses, resets or does not answer goes to another server.
    retries 3
    option redispatch 1
    retry-on all-retryable-errors
    # Every server checked twice a second: a dead one is out within a second.
    option httpchk GET /
    default-server inter 500ms fall 2 rise 2

frontend shop
    bind :80
    default_backend web

backend web
    balance roundrobin
$servers
CFG
if command -v haproxy > /dev/null; then haproxy -c -q -f "$cfg.new"; fi

if [ -n "$root" ]; then
  mv "$cfg.new" "$cfg"
  # Not a machine of its own: port 80 would be this host's.
  echo "instance root $OPSFLOW_ROOT is not /: HAProxy not started"
  exit 0
fi
pid=$(cat /run/haproxy.pid 2>/dev/null || true)
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -qa haproxy "/proc/$pid/cmdline"; then
  if cmp -s "$cfg.new" "$cfg"; then
    rm "$cfg.new"
    echo "HAProxy running ($pid), configuration unchanged"
    exit 0
  fi
  mv "$cfg.new" "$cfg"
  haproxy -D -p /run/haproxy.pid -f "$cfg" -x /run/haproxy.sock -sf "$pid"
  echo "HAProxy reloaded ($pid -> $(cat /run/haproxy.pid))"
else
  mv "$cfg.new" "$cfg"
  haproxy -D -p /run/haproxy.pid -f "$cfg"
  echo "HAProxy started ($(cat /run/haproxy.pid))"
fi

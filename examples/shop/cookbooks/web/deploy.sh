#!/bin/sh
# The web layer's deploy recipe, run for each release before `current` is switched to it
# (and by rollback, and `opsflow run shop start|stop|restart --app store`): render the
# release's page, then make sure the web server (serve.py) runs. It serves
# {deploy_to}/current and follows that link at every request, so the switch of `current`
# that follows this recipe is the whole release change: no restart, no failed request.
set -eu
here=${0%/*}
case $OPSFLOW_EVENT in
  stop) exec sh "$here/stop.sh" ;;
  restart) sh "$here/stop.sh" ;;
esac

release=$OPSFLOW_RELEASE_PATH
current=${release%/releases/*}/current
# The page says which version and which instance answered (names only: safe in sed).
version=$(tr -cd 'A-Za-z0-9._-' < "$release/VERSION")
sed -e "s/@VERSION@/${version:-unversioned}/g" -e "s/@HOSTNAME@/$OPSFLOW_INSTANCE/g" \
  -e "s/@RELEASE@/$OPSFLOW_RELEASE/g" "$release/index.html.in" > "$release/index.html.tmp"
mv "$release/index.html.tmp" "$release/index.html"
echo "$OPSFLOW_RELEASE: page of $version rendered"

if [ "$OPSFLOW_ROOT" != / ]; then
  # Not a machine of its own (OPSFLOW_ISOLATION=none, or no isolation on this host): a
  # server on port 80 would be this host's, shared by every instance.
  echo "instance root $OPSFLOW_ROOT is not /: not starting the web server"
  exit 0
fi
server=/usr/local/lib/shop/serve.py
pidfile=/run/shop-web.pid
pid=$(cat "$pidfile" 2>/dev/null || true)
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -qa "$server" "/proc/$pid/cmdline"; then
  echo "web server running ($pid), serving $current"
  exit 0
fi
install -D -m 0644 "$here/serve.py" "$server"
# A session of its own, so the server outlives this run (and a cancelled run's group kill).
# shellcheck disable=SC2016 # $$ and $1, $2, $3 are the inner shell's
setsid sh -c 'echo $$ > "$1" && exec python3 "$2" "$3"' sh "$pidfile" "$server" "$current" \
  >> /var/log/shop-web.log 2>&1 < /dev/null &
# Done when it answers (a 404 before the first release is current is an answer).
python3 - <<'PY'
import socket, sys, time

deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    try:
        socket.create_connection(("127.0.0.1", 80), 1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit("the web server did not listen on port 80 in 10 s: see /var/log/shop-web.log")
PY
echo "web server started ($(cat "$pidfile")), serving $current"

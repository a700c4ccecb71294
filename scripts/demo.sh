#!/usr/bin/env bash
# `make demo`: the embedded environment, the example shop online with its app deployed,
# then where to look: the shop's URL (HAProxy on lb1) and the Temporal UI.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OPSFLOW=.venv/bin/opsflow

"$OPSFLOW" dev up
"$OPSFLOW" stack apply examples/shop/stack.yml --wait
# The app as examples/shop/app holds it (v1, until you edit its VERSION).
"$OPSFLOW" deploy shop store --wait

# lb1's address, and its root: "/" when it is a machine of its own, the only case where
# the recipes start HAProxy and the web servers (else port 80 would be this host's).
read -r address root < <("$OPSFLOW" instance list shop -o json | .venv/bin/python -c '
import json, sys
lb = next(i for i in json.load(sys.stdin) if i["hostname"] == "lb1")
print(lb["private_ip"], lb["root"])')
echo
if [ "$root" = / ]; then
  echo "The shop: http://$address/ (HAProxy on lb1, in front of web1, web2 and web3)"
else
  echo "The shop: http://$address/ does not answer here: local instances are not isolated" \
    "machines on this host (see dev up's line above), so HAProxy and the web servers were" \
    "not started"
fi
echo "Temporal UI (every run of the demo): http://127.0.0.1:${OPSFLOW_UI_PORT:-8233}"

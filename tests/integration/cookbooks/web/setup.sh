#!/bin/sh
# Runs once when a web instance boots: lay out the web root and write a page from the stack configuration.
set -eu
mkdir -p srv/www etc
greeting=$(python3 -c 'import json,os; print(json.load(open(os.environ["OPSFLOW_ATTRIBUTES"]))["shop"]["greeting"])')
printf '%s from %s\n' "$greeting" "$OPSFLOW_INSTANCE" > srv/www/index.html
echo "web setup done on $OPSFLOW_INSTANCE (event $OPSFLOW_EVENT)"

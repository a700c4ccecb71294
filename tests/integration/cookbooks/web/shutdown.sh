#!/bin/sh
# Runs before the instance stops: say goodbye so a load balancer would drain it.
set -eu
echo "web shutting down on $OPSFLOW_INSTANCE"
rm -f srv/www/index.html

#!/bin/sh
# The db layer runs shell recipes (configuration_manager: shell on the layer).
set -eu
mkdir -p var/lib/shopdb
echo "db ready on $OPSFLOW_INSTANCE"

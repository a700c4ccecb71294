#!/bin/sh
# Runs once when the database instance boots.
set -eu
mkdir -p var/lib/shopdb
echo "created $(date -u +%FT%TZ)" > var/lib/shopdb/created
echo "db ready on $OPSFLOW_INSTANCE"

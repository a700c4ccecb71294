#!/bin/sh
# Runs on every online instance whenever an instance enters or leaves online: write the
# list of web peers and the database address, as a load balancer or app config would.
set -eu
mkdir -p etc
python3 - <<'PY'
import json, os
attrs = json.load(open(os.environ["OPSFLOW_ATTRIBUTES"]))
layers = attrs["opsflow"]["layers"]
online = lambda layer: sorted(h for h, i in layers.get(layer, {}).get("instances", {}).items()
                             if i["status"] == "online")
with open("etc/peers.json", "w") as out:
    json.dump({"web": online("web"), "db": online("db")}, out)
print("peers:", online("web"), "db:", online("db"))
PY

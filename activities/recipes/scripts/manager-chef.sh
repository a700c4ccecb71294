# shellcheck shell=sh
# Chef recipes: `cinc-client`/`chef-client -z` (client.rb) or `chef-solo` (solo.rb),
# `-o 'recipe[c::r]'`, one invocation per recipe, so the failing one is known.
# Values: OPSFLOW_RUN_DIR.
# shellcheck disable=SC2034 # missing: read by run.sh's step
tool() {
  CHEF='' CHEF_MODE=''
  for c in cinc-client chef-client; do
    if [ -z "$CHEF" ] && p=$(command -v "$c" 2>/dev/null); then CHEF=$p CHEF_MODE=client; fi
  done
  if [ -z "$CHEF" ] && p=$(command -v chef-solo 2>/dev/null); then CHEF=$p CHEF_MODE=solo; fi
  missing=
  [ -n "$CHEF" ] ||
    missing="no chef-client, cinc-client or chef-solo found on this instance (PATH=$PATH)"
}
invoke() {
  if [ "$CHEF_MODE" = client ]; then
    exec "$CHEF" -z --no-color -F doc -c "$OPSFLOW_RUN_DIR/client.rb" \
      -j "$OPSFLOW_RUN_DIR/node.json" -o "recipe[$1]"
  fi
  exec "$CHEF" --no-color -F doc -c "$OPSFLOW_RUN_DIR/solo.rb" \
    -j "$OPSFLOW_RUN_DIR/node.json" -o "recipe[$1]"
}

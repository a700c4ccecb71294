# shellcheck shell=sh
# Puppet recipes: `puppet apply -e 'include m::r'`, the cookbooks dir is the modulepath;
# every directory of puppet's under this instance's own OPSFLOW_PUPPET_STATE.
# Values: OPSFLOW_PUPPET_STATE, OPSFLOW_COOKBOOKS, OPSFLOW_RUN_DIR.
# shellcheck disable=SC2034 # missing: read by run.sh's step
tool() {
  PUPPET=$(command -v puppet 2>/dev/null) || PUPPET=
  [ -n "$PUPPET" ] || [ ! -x /opt/puppetlabs/bin/puppet ] || PUPPET=/opt/puppetlabs/bin/puppet
  missing=
  [ -n "$PUPPET" ] ||
    missing="no puppet on this instance (not on PATH=$PATH, nor /opt/puppetlabs/bin/puppet)"
}
# --detailed-exitcodes: 0 nothing changed, 2 changes made, anything else a failure.
# `m::init` is the module's main class `m` (manifests/init.pp), as Chef's `c::default` is
# `recipe[c]`: a public module is used as it is, without a wrapper class.
invoke() {
  class=$1
  case $class in *::init) class=${class%::init} ;; esac
  "$PUPPET" apply --detailed-exitcodes --color=false --modulepath="$OPSFLOW_COOKBOOKS" \
    --confdir="$OPSFLOW_PUPPET_STATE/conf" --vardir="$OPSFLOW_PUPPET_STATE/var" \
    --codedir="$OPSFLOW_PUPPET_STATE/code" --logdir="$OPSFLOW_PUPPET_STATE/log" \
    --rundir="$OPSFLOW_PUPPET_STATE/run" --publicdir="$OPSFLOW_PUPPET_STATE/public" \
    --hiera_config="$OPSFLOW_RUN_DIR/hiera.yaml" -e "include $class"
  rc=$?
  case $rc in 0 | 2) return 0 ;; *) return $rc ;; esac
}

#!/usr/bin/env bash
# Set up this checkout on a Debian machine: the system packages opsflow uses, then .venv
# with the project and its dev extras. Safe to run again: it only acts on what is missing,
# so an up-to-date machine is done in well under a second (make demo/test run it first).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV=.venv
# Hash of the pyproject.toml last installed into .venv: a changed one means reinstall.
STAMP=$VENV/.opsflow-pyproject.sha256

say() { printf 'bootstrap: %s\n' "$*" >&2; }

# The first Python >= 3.11 on PATH (pyproject's requires-python).
find_python() {
  local py
  for py in python3 python3.13 python3.12 python3.11; do
    if command -v "$py" >/dev/null &&
      "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$py"
      return 0
    fi
  done
  return 1
}

# Debian packages this machine still lacks, one per line.
missing_packages() {
  command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || echo openssh-server
  command -v ssh >/dev/null || echo openssh-client
  # puppet apply for puppet stacks (Debian's puppet-agent provides /usr/bin/puppet).
  command -v puppet >/dev/null || [ -x /opt/puppetlabs/bin/puppet ] || echo puppet-agent
  # git cookbook sources.
  command -v git >/dev/null || echo git
  # Runs on hosts whose login user is not root go through `sudo -n`; tests run one so.
  command -v sudo >/dev/null || echo sudo
  # `make lint` checks every shell script with it.
  command -v shellcheck >/dev/null || echo shellcheck
  # The mTLS tests put nginx (a gRPC proxy requiring a client certificate) before Temporal.
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || echo nginx
  # Isolated local instances: machines under systemd-nspawn, each in a network namespace.
  command -v systemd-nspawn >/dev/null || echo systemd-container
  command -v ip >/dev/null || [ -x /usr/sbin/ip ] || echo iproute2
  # The demo shop's load balancer layer.
  command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || echo haproxy
  # Debian's own python3 has no ensurepip (so no `python3 -m venv`) without python3-venv.
  if [ ! -x "$VENV/bin/python" ] && ! "$PYTHON" -m ensurepip --version >/dev/null 2>&1; then
    echo python3-venv
  fi
}

install_packages() {
  [ $# -gt 0 ] || return 0
  if [ "$(id -u)" -ne 0 ]; then
    say "not root: skipping 'apt-get install $*'; install them yourself if a test needs them"
    return 0
  fi
  say "installing $*"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

install_project() {
  local want
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ -x "$VENV/bin/opsflow" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  say "installing opsflow and its dev extras into $VENV"
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip install --quiet -e '.[dev]'
  echo "$want" >"$STAMP"
}

PYTHON=$(find_python) || {
  say "needs Python >= 3.11 on PATH (Debian 12: apt-get install python3)"
  exit 1
}
mapfile -t packages < <(missing_packages)
install_packages "${packages[@]}"
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi
install_project

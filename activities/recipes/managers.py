"""The configuration managers: each one's files in the run directory (chef's client.rb,
solo.rb and node JSON; puppet's hiera.yaml) and its part of the run script (finding the
tool, invoking it for one recipe)."""

from __future__ import annotations

import functools
import json
import posixpath
from collections.abc import Callable
from typing import Any

from activities.recipes.layout import Layout
from activities.ssh import quote
from opsflow.attributes import deep_merge
from opsflow.messages import RecipeRunInput
from opsflow.recipes import recipe_file
from opsflow.spec import ConfigurationManager

PUPPET_FALLBACK = "/opt/puppetlabs/bin/puppet"


def chef_node(configuration: dict[str, Any]) -> dict[str, Any]:
    """The node JSON: the attributes, plus `opsworks` as an alias of `opsflow` (with any
    `opsworks` keys of the custom JSON on top), for cookbooks ported from OpsWorks."""
    alias = deep_merge(configuration.get("opsflow") or {}, configuration.get("opsworks") or {})
    return {**configuration, "opsworks": alias}


def _ruby(value: str) -> str:
    """A single-quoted Ruby string: no interpolation, only \\\\ and \\' are escapes."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def chef_config(layout: Layout, request: RecipeRunInput, *, local_mode: bool) -> str:
    """client.rb (`local_mode`) or solo.rb: everything under this instance's state dir."""
    state = functools.partial(layout.tool_state, "chef")
    settings = {
        "chef_repo_path": _ruby(state("repo")),
        "cookbook_path": f"[{_ruby(layout.cookbooks)}]",
        "cache_path": _ruby(state("cache")),
        "file_cache_path": _ruby(state("cache")),
        "file_backup_path": _ruby(state("backup")),
        # Per run: normal attributes saved with the node never outlive the run.
        "node_path": _ruby(layout.in_run("chef-nodes")),
        "client_key": _ruby(state("client.pem")),
        "validation_key": _ruby(state("validation.pem")),
        "node_name": _ruby(request.hostname),
        "log_location": "STDOUT",
        "chef_license": _ruby("accept-silent"),
    }
    lines = [f"# opsflow run {request.run_id} (generated)"]
    if local_mode:
        lines.append("local_mode true")
    lines += [f"{key} {value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def hiera_config(layout: Layout) -> str:
    """Hiera 5, one level: the run's attributes.json (JSON strings are YAML strings)."""
    return f"""---
version: 5
defaults:
  datadir: {json.dumps(layout.run)}
  data_hash: json_data
hierarchy:
  - name: "opsflow run attributes"
    path: "attributes.json"
"""


def _shell_steps(layout: Layout) -> str:
    return """missing=
invoke() { if [ -x "$2" ]; then exec "$2"; else exec sh "$2"; fi; }"""


def _puppet_steps(layout: Layout) -> str:
    state = functools.partial(layout.tool_state, "puppet")
    dirs = [("confdir", "conf"), ("vardir", "var"), ("codedir", "code"), ("logdir", "log")]
    dirs += [("rundir", "run"), ("publicdir", "public")]
    options = " ".join(f"--{option}={quote(state(name))}" for option, name in dirs)
    return f"""PUPPET=$(command -v puppet 2>/dev/null) || PUPPET=
[ -n "$PUPPET" ] || [ ! -x {PUPPET_FALLBACK} ] || PUPPET={PUPPET_FALLBACK}
missing=
[ -n "$PUPPET" ] || missing="no puppet on this instance (not on PATH=$PATH, nor {PUPPET_FALLBACK})"
# --detailed-exitcodes: 0 nothing changed, 2 changes made, anything else a failure.
invoke() {{
  "$PUPPET" apply --detailed-exitcodes --color=false --modulepath={quote(layout.cookbooks)} \\
    {options} \\
    --hiera_config={quote(layout.in_run("hiera.yaml"))} -e "$3"
  rc=$?
  case $rc in 0 | 2) return 0 ;; *) return $rc ;; esac
}}"""


def _chef_steps(layout: Layout) -> str:
    client, solo = quote(layout.in_run("client.rb")), quote(layout.in_run("solo.rb"))
    node = quote(layout.in_run("node.json"))
    return f"""CHEF= CHEF_MODE=
for c in cinc-client chef-client; do
  if [ -z "$CHEF" ] && p=$(command -v "$c" 2>/dev/null); then CHEF=$p CHEF_MODE=client; fi
done
if [ -z "$CHEF" ] && p=$(command -v chef-solo 2>/dev/null); then CHEF=$p CHEF_MODE=solo; fi
missing=
[ -n "$CHEF" ] ||
  missing="no chef-client, cinc-client or chef-solo found on this instance (PATH=$PATH)"
# One invocation per recipe, so the failing one is known.
invoke() {{
  if [ "$CHEF_MODE" = client ]; then
    exec "$CHEF" -z --no-color -F doc -c {client} -j {node} -o "$3"
  fi
  exec "$CHEF" --no-color -F doc -c {solo} -j {node} -o "$3"
}}"""


# Per manager: the run script's tool setup (sets `missing` when the tool is absent and
# defines `invoke NAME FILE TARGET`), and a recipe's TARGET argument.
STEPS: dict[ConfigurationManager, Callable[[Layout], str]] = {
    ConfigurationManager.SHELL: _shell_steps,
    ConfigurationManager.PUPPET: _puppet_steps,
    ConfigurationManager.CHEF: _chef_steps,
}
TARGET: dict[ConfigurationManager, Callable[[str], str]] = {
    ConfigurationManager.SHELL: lambda recipe: "",
    ConfigurationManager.PUPPET: lambda recipe: f"include {recipe}",
    ConfigurationManager.CHEF: lambda recipe: f"recipe[{recipe}]",
}


def recipe_path(layout: Layout, manager: ConfigurationManager, recipe: str) -> str:
    return posixpath.join(layout.cookbooks, recipe_file(manager, recipe))

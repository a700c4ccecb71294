"""The configuration managers: each one's files in the run directory (chef's client.rb,
solo.rb and node JSON; puppet's hiera.yaml) and its part of the run script
(scripts/manager-*.sh: finding the tool, invoking it for one recipe)."""

from __future__ import annotations

import functools
import json

from activities.recipes.layout import Layout
from activities.remote_script import Value
from opsflow.attributes import chef_node as chef_node  # moved there (pure: the CLI uses it)
from opsflow.messages import RecipeRunInput
from opsflow.spec import ConfigurationManager


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


# Per manager: its part of the run script (scripts/manager-*.sh): `tool` finds the tool
# (sets `missing` when it is absent), `invoke RECIPE FILE` runs one recipe.
SCRIPTS: dict[ConfigurationManager, str] = {
    ConfigurationManager.SHELL: "manager-shell.sh",
    ConfigurationManager.PUPPET: "manager-puppet.sh",
    ConfigurationManager.CHEF: "manager-chef.sh",
}


def script_values(manager: ConfigurationManager, layout: Layout) -> dict[str, Value]:
    """The values its part of the run script needs beyond run.sh's own."""
    if manager == ConfigurationManager.PUPPET:
        return {"OPSFLOW_PUPPET_STATE": layout.tool_state("puppet")}
    return {}

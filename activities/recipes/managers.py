"""The configuration managers: each one's files in the run directory (chef's client.rb,
solo.rb and node JSON; puppet's hiera.yaml) and its part of the run script
(scripts/manager-*.sh: finding the tool, invoking it for one recipe)."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from typing import Any

from activities.recipes.layout import Layout
from activities.remote_script import Value
from opsflow import settings as opsflow_settings
from opsflow.attributes import chef_node as chef_node  # moved there (pure: the CLI uses it)
from opsflow.messages import RecipeRunInput
from opsflow.secrets import reveal
from opsflow.spec import ConfigurationManager
from workflows.failures import invalid

# Chef 12 stacks: the run directory's data bags (data_bag_path), one file per item.
DATA_BAGS = "data_bags"
# Chef's own rule for data bag and item names (Chef::DataBag::VALID_NAME).
DATA_BAG_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def _ruby(value: str) -> str:
    """A single-quoted Ruby string: no interpolation, only \\\\ and \\' are escapes."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def chef_config(
    layout: Layout, request: RecipeRunInput, *, local_mode: bool, data_bags: bool = False
) -> str:
    """client.rb (`local_mode`) or solo.rb: everything under this instance's state dir;
    with `data_bags` (Chef 12 stacks), data_bag_path is the run's `data_bags/`, so
    `search(:aws_opsworks_app, "deploy:true")` finds OpsWorks' data bags."""
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
    if data_bags:
        settings["data_bag_path"] = _ruby(layout.in_run(DATA_BAGS))
    lines = [f"# opsflow run {request.run_id} (generated)"]
    if local_mode:
        lines.append("local_mode true")
    lines += [f"{key} {value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def data_bag_files(
    bags: Mapping[str, Mapping[str, Mapping[str, Any]]] | None,
) -> tuple[dict[str, bytes], list[str]]:
    """The run files `data_bags/BAG/ITEM.json` of a Chef 12 stack's data bags (as Chef's
    local mode reads them: one JSON object per file, its `id` the file's name), secure
    values revealed here, on the worker; and those plaintexts, to redact from every log.
    None (a Chef 11 stack): no files."""
    if bags is None:
        return {}, []
    items: dict[str, dict[str, Any]] = {}
    # Every bag is a directory, an empty one too: search() on a bag that does not exist
    # fails in Chef's local mode, and OpsWorks always gave all nine (some empty).
    folders = {f"{DATA_BAGS}/": b""}
    for bag, bag_items in bags.items():
        if not DATA_BAG_NAME.fullmatch(bag):
            raise invalid(f"invalid data bag name {bag!r}: expected [A-Za-z0-9_-]+")
        folders[f"{DATA_BAGS}/{bag}/"] = b""
        for item_id, item in bag_items.items():
            if not DATA_BAG_NAME.fullmatch(item_id):
                raise invalid(f"data bag {bag}: invalid item id {item_id!r}")
            if item.get("id", item_id) != item_id:
                raise invalid(f"data bag {bag}: item {item_id!r} has id {item.get('id')!r}")
            items[f"{DATA_BAGS}/{bag}/{item_id}.json"] = {"id": item_id, **item}
    revealed, secrets = reveal(items, opsflow_settings.secret_key())
    files = {
        name: json.dumps(item, indent=2, sort_keys=True).encode() for name, item in revealed.items()
    }
    return {**folders, **files}, secrets


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

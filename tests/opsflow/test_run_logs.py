"""RunLogMeta: a saved run's metadata, read from what the recipe runner wrote."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from opsflow.run_logs import RunLogMeta

WRITTEN = {
    "attached": False,
    "cancelled": True,
    "command_id": "deployment:shop:3:web1",
    "configuration_manager": "shell",
    "event": "execute_recipes",
    "exit_code": 130,
    "failed_recipe": "app::slow",
    "finished": "2025-01-02T03:04:06Z",
    "hostname": "web1",
    "recipes": ["app::slow"],
    "run_id": "web1-execute_recipes-3",
    "stack": "shop",
    "stage_only": False,
    "started": "2025-01-02T03:04:05Z",
}


def test_what_the_runner_writes_reads_back_field_for_field_in_the_files_order() -> None:
    meta = RunLogMeta.model_validate(WRITTEN)
    assert meta.cancelled and meta.exit_code == 130 and meta.recipes == ["app::slow"]
    # `command list -o json` prints the model: the same JSON as the sorted file.
    assert json.dumps(meta.model_dump(mode="json")) == json.dumps(WRITTEN, sort_keys=True)


def test_an_older_file_without_some_fields_reads_with_defaults_and_ignores_unknown_keys() -> None:
    meta = RunLogMeta.model_validate(
        {"stack": "shop", "hostname": "web1", "run_id": "r1", "exit_code": 0, "later": 1}
    )
    assert (meta.event, meta.recipes, meta.command_id, meta.finished) == (None, [], None, "")
    assert not meta.cancelled and "later" not in meta.model_dump()


@pytest.mark.parametrize("missing", ["stack", "hostname", "run_id"])
def test_a_file_without_its_names_is_no_run(missing: str) -> None:
    with pytest.raises(ValidationError, match=missing):
        RunLogMeta.model_validate({k: v for k, v in WRITTEN.items() if k != missing})

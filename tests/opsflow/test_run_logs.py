"""RunLogMeta: a saved run's metadata, read from what the recipe runner wrote; an
instance's run index: newest first, cut to the newest runs, bad entries skipped."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from opsflow.run_logs import RunLogMeta, SavedRun, index_document, parse_index, with_run

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
    "task_queue": "opsflow@1a2b3c",
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
    assert meta.task_queue is None  # saved before runs said where they came from
    assert not meta.cancelled and "later" not in meta.model_dump()


@pytest.mark.parametrize("missing", ["stack", "hostname", "run_id"])
def test_a_file_without_its_names_is_no_run(missing: str) -> None:
    with pytest.raises(ValidationError, match=missing):
        RunLogMeta.model_validate({k: v for k, v in WRITTEN.items() if k != missing})


def saved(run_id: str, log: str = "a" * 64, **fields: object) -> SavedRun:
    meta = RunLogMeta.model_validate(
        {"stack": "shop", "hostname": "web1", "run_id": run_id, **fields}
    )
    return SavedRun(meta=meta, log=log)


def test_a_run_goes_first_and_the_oldest_beyond_keep_are_cut() -> None:
    runs: list[SavedRun] = []
    for run_id in ("r1", "r2", "r3", "r4"):
        runs, cut = with_run(runs, saved(run_id), keep=3)
    assert [r.meta.run_id for r in runs] == ["r4", "r3", "r2"]
    assert [r.meta.run_id for r in cut] == ["r1"]
    # saved again (a retry re-attached): it moves first, replacing its earlier entry
    runs, cut = with_run(runs, saved("r2", attached=True), keep=3)
    assert [(r.meta.run_id, r.meta.attached) for r in runs] == [
        ("r2", True),
        ("r4", False),
        ("r3", False),
    ]
    assert cut == []
    # the run being saved is never the one cut
    assert [r.meta.run_id for r in with_run(runs, saved("r9"), keep=0)[0]] == ["r9"]


def test_an_index_reads_back_and_skips_what_is_no_saved_run() -> None:
    runs = [saved("r2", "b" * 64, exit_code=1), saved("r1")]
    assert parse_index(index_document(runs)) == runs
    document = json.loads(index_document(runs))
    document["runs"][1:1] = [
        {"meta": {"stack": "shop", "hostname": "web1", "run_id": "x"}, "log": "not a digest"},
        {"meta": {"stack": "shop"}, "log": "c" * 64},
        "junk",
    ]
    assert parse_index(json.dumps(document).encode()) == runs
    for junk in (b"", b"{", b"[]", b'{"runs": 3}', b"\xff"):
        assert parse_index(junk) == []

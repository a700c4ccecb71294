"""What a saved recipe run was, and the index of an instance's saved runs (runtime/run_logs.py
keeps both in the artifact store; `opsflow command list|log` reads them)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from pydantic import BaseModel, Field, ValidationError

# A blob's name in the artifact store: the sha256 hex digest of its bytes.
DIGEST_PATTERN = r"^[0-9a-f]{64}$"


class RunLogMeta(BaseModel):
    """One run's metadata. Fields in the order the old `{run_id}.json` file (sorted keys)
    had them, so `opsflow command list -o json` prints what it printed when it read the file
    as is. Defaults cover runs saved before a field existed; unknown keys are ignored."""

    attached: bool = Field(False, description="a retry re-attached to the run")
    cancelled: bool = False
    command_id: str | None = Field(None, description="{deployment id}:{hostname}")
    configuration_manager: str = ""
    event: str | None = None
    exit_code: int | None = None
    failed_recipe: str | None = None
    finished: str = Field("", description="UTC ISO 8601, as the instance reported it")
    hostname: str
    recipes: list[str] = Field(default_factory=list)
    run_id: str
    stack: str
    stage_only: bool = False
    started: str = Field("", description="UTC ISO 8601, as the instance reported it")
    task_queue: str | None = Field(
        None,
        description="the task queue its activity came from: a local instance's runs come "
        "from the own queue (QUEUE@ID) of the worker that launched it",
    )


# One saved run: its metadata and its whole log.
RunLog = tuple[RunLogMeta, str]


class SavedRun(BaseModel):
    """An entry of an instance's run index: the run and the blob holding its whole log."""

    meta: RunLogMeta
    log: str = Field(pattern=DIGEST_PATTERN, description="sha256 of the log's blob")


def with_run(
    runs: Sequence[SavedRun], run: SavedRun, keep: int
) -> tuple[list[SavedRun], list[SavedRun]]:
    """(the index with `run` first, cut to the newest `keep`; the entries cut). Saving a run
    again (a retry re-attached to it) replaces its earlier entry and makes it the newest."""
    others = [r for r in runs if r.meta.run_id != run.meta.run_id]
    ordered = [run, *others]
    cut = max(keep, 1)
    return ordered[:cut], ordered[cut:]


def parse_index(data: bytes) -> list[SavedRun]:
    """The entries of an index document, newest first. An entry that is no saved run is
    skipped (as a file that was no run's metadata was): one bad entry hides only itself."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return []
    entries = document.get("runs") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        return []
    found: list[SavedRun] = []
    for entry in entries:
        try:
            found.append(SavedRun.model_validate(entry))
        except ValidationError:
            continue
    return found


def index_document(runs: Sequence[SavedRun]) -> bytes:
    """What `parse_index` reads back."""
    document = {"runs": [r.model_dump(mode="json") for r in runs]}
    return (json.dumps(document, indent=1, sort_keys=True) + "\n").encode()

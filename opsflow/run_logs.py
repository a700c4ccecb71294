"""What a saved recipe run was: the metadata kept next to its full log (runtime/run_logs.py
stores both; `opsflow command list|log` reads them)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RunLogMeta(BaseModel):
    """One run's `{run_id}.json`. Fields in the order the file (sorted keys) has them, so
    `opsflow command list -o json` prints what it printed when it read the file as is.
    Defaults cover files written before a field existed; unknown keys are ignored."""

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


# One saved run: its metadata and its whole log.
RunLog = tuple[RunLogMeta, str]

"""What the remote scripts print, parsed once into a typed model.

Every script prints `key=value` lines, and a script that reports a finished run then
prints `---` and the run's whole log:

    stage   new=1 (cookbooks staged now), app_new=1, cookbooks=0 / app=0 (missing),
            staged=0|1
    claim   lost=N (an earlier attempt's directory set aside), claim=new|running|done|busy
    wait    state=pending|died|done
    report  exit, recipe, recipes, manager, started, finished, cancelled=1, release,
            previous_release, app_error; `---`; the log
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from opsflow.secrets import redact

TAIL_LINES = 40
_SEPARATOR = "\n---\n"


class Claim(StrEnum):
    """What the claim found: a fresh claim, an earlier attempt's run going or done, or a
    directory another attempt is claiming right now."""

    NEW = "new"
    RUNNING = "running"
    DONE = "done"
    BUSY = "busy"


class RunState(StrEnum):
    """Where a run is after one wait chunk."""

    PENDING = "pending"
    DIED = "died"
    DONE = "done"


@dataclass(frozen=True)
class Outcome:
    """A finished run (or a staging), as the activity reports and keeps it."""

    exit_code: int
    recipe: str
    recipes: list[str]
    log: str
    attached: bool
    manager: str = ""
    started: str = ""
    finished: str = ""
    cancelled: bool = False
    release: str = ""
    previous_release: str = ""
    app_error: str = ""

    @property
    def log_tail(self) -> str:
        return "\n".join(self.log.rstrip("\n").splitlines()[-TAIL_LINES:])

    def redacted(self, secrets: list[str]) -> Outcome:
        if not any(secrets):
            return self
        return dataclasses.replace(
            self, log=redact(self.log, secrets), app_error=redact(self.app_error, secrets)
        )


@dataclass(frozen=True)
class Report:
    """One remote command's output. `staged` and `claim` keep the printed value (None when
    the script did not get that far), since a refusal names them."""

    staged: str | None
    claim: Claim | None
    state: RunState | None
    cookbooks_missing: bool
    app_missing: bool
    newly_staged: bool
    exit_code: int
    recipe: str
    recipes: list[str]
    manager: str
    started: str
    finished: str
    cancelled: bool
    release: str
    previous_release: str
    app_error: str
    log: str

    @property
    def is_staged(self) -> bool:
        return self.staged == "1"

    @property
    def lacks_staging(self) -> bool:
        """The instance lacks the cookbooks or the app's code: nothing else was done."""
        return self.staged == "0"

    def outcome(self, *, attached: bool) -> Outcome:
        return Outcome(
            exit_code=self.exit_code,
            recipe=self.recipe,
            recipes=self.recipes,
            log=self.log,
            attached=attached,
            manager=self.manager,
            started=self.started,
            finished=self.finished,
            cancelled=self.cancelled,
            release=self.release,
            previous_release=self.previous_release,
            app_error=self.app_error,
        )


def parse(output: str) -> Report:
    head, _, log = output.partition(_SEPARATOR)
    pairs = (line.split("=", 1) for line in head.splitlines() if "=" in line)
    fields = {key: value for key, value in pairs}  # a key printed twice: the last wins
    return Report(
        staged=fields.get("staged"),
        claim=_member(Claim, fields.get("claim")),
        state=_member(RunState, fields.get("state")),
        cookbooks_missing=fields.get("cookbooks") == "0",
        app_missing=fields.get("app") == "0",
        newly_staged=fields.get("new") == "1",
        exit_code=int(fields.get("exit") or 1),
        recipe=fields.get("recipe", ""),
        recipes=fields.get("recipes", "").split(),
        manager=fields.get("manager", ""),
        started=fields.get("started", ""),
        finished=fields.get("finished", ""),
        cancelled=fields.get("cancelled") == "1",
        release=fields.get("release", ""),
        previous_release=fields.get("previous_release", ""),
        app_error=fields.get("app_error", ""),
        log=log,
    )


_E = TypeVar("_E", bound=StrEnum)


def _member(kind: type[_E], value: str | None) -> _E | None:
    """The member printed, or None when the script did not get that far."""
    if value is None or value not in kind._value2member_map_:
        return None
    return kind(value)

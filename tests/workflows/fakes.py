"""Activities replaced for workflow-logic tests: they record what they were asked to do."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import names
from opsflow.errors import RECIPE_FAILED_TYPE
from opsflow.messages import (
    FetchCookbooksInput,
    LaunchInput,
    LaunchResult,
    MachineInput,
    RecipeRunInput,
    RecipeRunResult,
    ResolvedCookbooks,
    SshEndpoint,
)
from opsflow.spec import ConfigurationManager


@dataclass
class FakeCloud:
    """Fake provider + runner. `fail_setup` hosts fail their setup recipes."""

    fail_setup: set[str] = field(default_factory=set)
    recipe_seconds: float = 0.0
    # What the fake cookbooks provide (as shell recipes); fetches are counted.
    recipes: set[str] = field(
        default_factory=lambda: {
            "web::setup",
            "web::configure",
            "web::down",
            "db::setup",
            "app::hello",
        }
    )
    fetches: int = 0
    stage_only_runs: list[str] = field(default_factory=list)
    explicit: list[tuple[str, list[str]]] = field(default_factory=list)
    runs: list[tuple[str, str]] = field(default_factory=list)  # (hostname, event)
    run_ids: list[str] = field(default_factory=list)
    machines: dict[str, str] = field(default_factory=dict)  # hostname -> running|stopped|gone

    def events_for(self, event: str) -> list[str]:
        return [host for host, ev in self.runs if ev == event]

    def activities(self) -> list[Callable[..., Any]]:
        @activity.defn(name=names.LAUNCH_INSTANCE)
        async def launch(request: LaunchInput) -> LaunchResult:
            self.machines[request.hostname] = "running"
            return LaunchResult(
                ssh=SshEndpoint(
                    host="127.0.0.1",
                    port=2200,
                    user="root",
                    key_file="/k",
                    host_key="ssh-ed25519 A",
                ),
                root=f"/roots/{request.hostname}",
                private_ip="127.0.0.1",
            )

        @activity.defn(name=names.STOP_INSTANCE)
        async def stop(request: MachineInput) -> None:
            self.machines[request.hostname] = "stopped"

        @activity.defn(name=names.TERMINATE_INSTANCE)
        async def terminate(request: MachineInput) -> None:
            self.machines[request.hostname] = "gone"

        @activity.defn(name=names.RUN_RECIPES)
        async def run_recipes(request: RecipeRunInput) -> RecipeRunResult:
            self.runs.append((request.hostname, request.event))
            self.run_ids.append(request.run_id)
            if request.stage_only:
                self.stage_only_runs.append(request.hostname)
            if request.recipes:
                self.explicit.append((request.hostname, list(request.recipes)))
            if self.recipe_seconds:
                # heartbeat so cancellation reaches a long run
                for _ in range(int(self.recipe_seconds * 10)):
                    activity.heartbeat()
                    await asyncio.sleep(0.1)
            if request.event == "setup" and request.hostname in self.fail_setup:
                raise ApplicationError(
                    f"shop/{request.hostname}: recipe web::setup failed with exit code 3: boom",
                    "line 1\nboom",
                    type=RECIPE_FAILED_TYPE,
                    non_retryable=True,
                )
            return RecipeRunResult(run_id=request.run_id, exit_code=0, log_tail="ok")

        @activity.defn(name=names.FETCH_COOKBOOKS)
        async def fetch_cookbooks(request: FetchCookbooksInput) -> ResolvedCookbooks:
            self.fetches += 1
            return ResolvedCookbooks(
                directory="/fake/cookbooks",
                digest=f"digest{self.fetches}",
                description=request.source.describe(),
                recipes={ConfigurationManager.SHELL: sorted(self.recipes)},
            )

        return [launch, stop, terminate, run_recipes, fetch_cookbooks]

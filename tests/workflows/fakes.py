"""Activities replaced for workflow-logic tests: they record what they were asked to do."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities import names
from activities.stack_context import healing_instances, layer_instances
from opsflow.errors import ErrorType
from opsflow.healing import due_for_check
from opsflow.messages import (
    AppAction,
    FetchCookbooksInput,
    HealthCheckInput,
    HealthCheckResult,
    InstanceMetrics,
    InstanceView,
    LaunchInput,
    LaunchResult,
    LayerGaugesInput,
    LayerProbeReport,
    MachineFacts,
    MachineInput,
    MetricsReport,
    ProbeLayerInput,
    ProbeOutcome,
    PublishSnapshotInput,
    ReadMetricsInput,
    RecipeRunInput,
    RecipeRunResult,
    ResolvedCookbooks,
    SnapshotRef,
    SshEndpoint,
    SyncSchedulesInput,
    WatchLayerInput,
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
    # App releases: the fake keeps each host's release history; deploys of `fail_deploy`
    # hosts fail (current untouched), `unhealthy` hosts fail their health checks.
    fail_deploy: set[str] = field(default_factory=set)
    unhealthy: set[str] = field(default_factory=set)
    releases: dict[str, list[str]] = field(default_factory=dict)
    app_runs: list[tuple[str, str, str | None]] = field(default_factory=list)
    health_checks: list[str] = field(default_factory=list)
    runs: list[tuple[str, str]] = field(default_factory=list)  # (hostname, event)
    # (hostname, event, the layers the run's instance was in): its recipes' layers.
    run_layers: list[tuple[str, str, list[str]]] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    # Each run's command custom JSON: (hostname, event, custom_json).
    run_custom_json: list[tuple[str, str, dict[str, Any] | None]] = field(default_factory=list)
    machines: dict[str, str] = field(default_factory=dict)  # hostname -> running|stopped|gone
    # Healing: `dead` machines fail their checks (SSH refused) until replaced; with
    # `stays_dead`, a new machine for the host is dead too. Needs `client` (the stack query).
    client: Client | None = None
    dead: set[str] = field(default_factory=set)
    stays_dead: set[str] = field(default_factory=set)
    probes: list[str] = field(default_factory=list)
    # The watch: `crashed` hosts' watched connections drop (their probes still pass, unless
    # `dead` too) until replaced; every watch asked for, and every one that ended.
    crashed: set[str] = field(default_factory=set)
    watches: list[WatchLayerInput] = field(default_factory=list)
    # Off, a watch fails at once (the loop rests it until its next round), so no activity
    # stays in flight and the time-skipping server skips between rounds: tests that need
    # minutes of workflow time run in seconds. Tests of the watch turn it on.
    watching: bool = False
    # Scaling: each host's metric values (read_metrics), and the schedule syncs asked for.
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    schedule_syncs: list[SyncSchedulesInput] = field(default_factory=list)
    # CloudWatch gauges published (workflow time of the attempt, gauges); with
    # `refuse_gauges`, every publish is refused as AWS would (not retryable), and counted.
    gauges: list[tuple[datetime, LayerGaugesInput]] = field(default_factory=list)
    refuse_gauges: bool = False
    refused_gauges: int = 0
    # Configuration snapshots published (the generation each was asked for), and the
    # snapshot digest each run was given (hostname, event, digest).
    snapshots: list[int] = field(default_factory=list)
    run_snapshots: list[tuple[str, str, str | None]] = field(default_factory=list)
    # Local instances bound to workers: the queue a host's launch returns (absent: none),
    # and every (activity, hostname, task queue it ran on) of the instances' activities.
    binding: dict[str, str] = field(default_factory=dict)
    ran_on: list[tuple[str, str, str]] = field(default_factory=list)

    def queues_of(self, name: str, hostname: str) -> set[str]:
        """The task queues that ran activity `name` for `hostname`."""
        return {q for n, h, q in self.ran_on if n == name and h == hostname}

    def _ran(self, name: str, hostname: str) -> None:
        self.ran_on.append((name, hostname, activity.info().task_queue))

    def events_for(self, event: str) -> list[str]:
        return [host for host, ev in self.runs if ev == event]

    def activities(self) -> list[Callable[..., Any]]:
        @activity.defn(name=names.LAUNCH_INSTANCE)
        async def launch(request: LaunchInput) -> LaunchResult:
            self._ran(names.LAUNCH_INSTANCE, request.hostname)
            self.machines[request.hostname] = "running"
            return LaunchResult(
                task_queue=self.binding.get(request.hostname),
                ssh=SshEndpoint(
                    host="127.0.0.1",
                    port=2200,
                    user="root",
                    key_file="/k",
                    host_key="ssh-ed25519 A",
                ),
                root=f"/roots/{request.hostname}",
                private_ip="127.0.0.1",
                facts=MachineFacts(architecture="x86_64", private_dns_name=request.hostname),
            )

        @activity.defn(name=names.STOP_INSTANCE)
        async def stop(request: MachineInput) -> None:
            self._ran(names.STOP_INSTANCE, request.hostname)
            self.machines[request.hostname] = "stopped"

        @activity.defn(name=names.TERMINATE_INSTANCE)
        async def terminate(request: MachineInput) -> None:
            self._ran(names.TERMINATE_INSTANCE, request.hostname)
            self.machines[request.hostname] = "gone"
            if request.hostname not in self.stays_dead:
                self.dead.discard(request.hostname)
                self.crashed.discard(request.hostname)

        @activity.defn(name=names.PROBE_LAYER)
        async def probe_layer(request: ProbeLayerInput) -> LayerProbeReport:
            assert self.client is not None, "FakeCloud.client is needed for healing loops"
            views = await healing_instances(self.client, request.stack, request.layer)
            now = activity.info().current_attempt_scheduled_time
            outcomes = []
            for view in views:
                if not due_for_check(view, now, request.check) and (
                    view.hostname not in request.recheck
                ):
                    continue
                if view.task_queue != request.task_queue:
                    continue  # another worker's instance: its own probe checks it
                self._ran(names.PROBE_LAYER, view.hostname)
                self.probes.append(view.hostname)
                dead = view.hostname in self.dead
                outcomes.append(
                    ProbeOutcome(
                        hostname=view.hostname,
                        healthy=not dead,
                        reachable=not dead,
                        detail="SSH failed: connection refused" if dead else "ok",
                    )
                )
            return LayerProbeReport(instances=views, outcomes=outcomes)

        @activity.defn(name=names.WATCH_LAYER)
        async def watch_layer(request: WatchLayerInput) -> LayerProbeReport:
            """Until a watched host is in `crashed` (or cancelled), for a second of real
            time at most: then it ends as at its max duration, and the loop starts it again
            (the time-skipping server's clock runs far ahead of the SDK's heartbeats)."""
            assert self.client is not None, "FakeCloud.client is needed for healing loops"
            self.watches.append(request)
            if not self.watching:
                raise ApplicationError(
                    "no watch in this test (FakeCloud.watching)", non_retryable=True
                )
            for target in request.instances:
                self._ran(names.WATCH_LAYER, target.hostname)
            for _ in range(20):
                if lost := sorted({t.hostname for t in request.instances} & self.crashed):
                    break
                activity.heartbeat()
                await asyncio.sleep(0.05)
            else:
                return LayerProbeReport(instances=[], outcomes=[])
            views = await healing_instances(self.client, request.stack, request.layer)
            detail = "SSH connection dropped (closed by the instance); connection refused"
            outcomes = [
                ProbeOutcome(
                    hostname=h, healthy=False, reachable=False, detail=detail, decisive=True
                )
                for h in lost
            ]
            return LayerProbeReport(instances=views, outcomes=outcomes)

        @activity.defn(name=names.RUN_RECIPES)
        async def run_recipes(request: RecipeRunInput) -> RecipeRunResult:
            self._ran(names.RUN_RECIPES, request.hostname)
            self.runs.append((request.hostname, request.event))
            layers = list(request.instance.layers) if request.instance else []
            self.run_layers.append((request.hostname, request.event, layers))
            self.run_snapshots.append((request.hostname, request.event, request.snapshot))
            self.run_ids.append(request.run_id)
            self.run_custom_json.append((request.hostname, request.event, request.custom_json))
            if request.stage_only:
                self.stage_only_runs.append(request.hostname)
            if request.recipes:
                self.explicit.append((request.hostname, list(request.recipes)))
            if self.recipe_seconds:
                # heartbeat so cancellation reaches a long run
                for _ in range(int(self.recipe_seconds * 10)):
                    activity.heartbeat()
                    await asyncio.sleep(0.1)
            if request.app is not None:
                return self._app_run(request)
            if request.event == "setup" and request.hostname in self.fail_setup:
                raise ApplicationError(
                    f"shop/{request.hostname}: recipe web::setup failed with exit code 3: boom",
                    "line 1\nboom",
                    type=ErrorType.RECIPE_FAILED,
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

        @activity.defn(name=names.CHECK_HEALTH)
        async def check_health(request: HealthCheckInput) -> HealthCheckResult:
            self._ran(names.CHECK_HEALTH, request.hostname)
            self.health_checks.append(request.hostname)
            healthy = request.hostname not in self.unhealthy
            detail = "HTTP 200 OK" if healthy else "HTTP 503 Service Unavailable"
            return HealthCheckResult(healthy=healthy, attempts=1, seconds=0.1, detail=detail)

        @activity.defn(name=names.DESCRIBE_LAYER)
        async def describe_layer(stack: str, layer: str) -> list[InstanceView]:
            assert self.client is not None, "FakeCloud.client is needed for scaling loops"
            return await layer_instances(self.client, stack, layer)

        @activity.defn(name=names.READ_METRICS)
        async def read_metrics(request: ReadMetricsInput) -> MetricsReport:
            found = []
            for view in request.instances:
                self._ran(names.READ_METRICS, view.hostname)
                values = self.metrics.get(view.hostname, {})
                wanted = {m: v for m, v in values.items() if m in request.metrics}
                found.append(InstanceMetrics(hostname=view.hostname, values=wanted))
            return MetricsReport(instances=found)

        @activity.defn(name=names.SYNC_SCHEDULES)
        async def sync_schedules(request: SyncSchedulesInput) -> list[str]:
            self.schedule_syncs.append(request)
            return [f"synced {h}" for h in request.changed]

        @activity.defn(name=names.PUBLISH_SNAPSHOT)
        async def publish_snapshot(request: PublishSnapshotInput) -> SnapshotRef:
            self.snapshots.append(request.generation)
            return SnapshotRef(generation=request.generation, digest=f"snap{request.generation}")

        @activity.defn(name=names.PUBLISH_LAYER_GAUGES)
        async def publish_layer_gauges(request: LayerGaugesInput) -> None:
            if self.refuse_gauges:
                self.refused_gauges += 1
                raise ApplicationError(
                    "AWS refused PutMetricData: AccessDenied: not allowed",
                    type="CloudWatchRefused",
                    non_retryable=True,
                )
            self.gauges.append((activity.info().current_attempt_scheduled_time, request))

        return [
            launch,
            stop,
            terminate,
            run_recipes,
            fetch_cookbooks,
            check_health,
            probe_layer,
            watch_layer,
            describe_layer,
            read_metrics,
            sync_schedules,
            publish_layer_gauges,
            publish_snapshot,
        ]

    def _app_run(self, request: RecipeRunInput) -> RecipeRunResult:
        app, host = request.app, request.hostname
        assert app is not None
        history = self.releases.setdefault(host, [])
        self.app_runs.append((host, app.action.value, app.release))
        previous = history[-1] if history else None
        if app.action == AppAction.DEPLOY:
            if host in self.fail_deploy:
                raise ApplicationError(
                    f"shop/{host}: recipe app::deploy failed with exit code 1: no",
                    "no",
                    type=ErrorType.RECIPE_FAILED,
                    non_retryable=True,
                )
            assert app.release is not None
            history.append(app.release)
        elif app.action == AppAction.ROLLBACK:
            if len(history) < 2:
                raise ApplicationError(
                    f"no earlier release on {host}",
                    type=ErrorType.RECIPE_FAILED,
                    non_retryable=True,
                )
            history.pop()
        else:
            history.clear()
        return RecipeRunResult(
            run_id=request.run_id,
            exit_code=0,
            log_tail="ok",
            release=history[-1] if history else None,
            previous_release=previous,
        )

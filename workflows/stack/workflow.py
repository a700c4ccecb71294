"""StackWorkflow: the durable stack. Owns the spec, knows every instance's status, decides
when configure runs, and starts instance and deployment workflows.

Mutations are Updates with validators, so bad input is refused before it enters history
and the caller gets an answer (a signal could only be fire-and-forget).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, NamedTuple

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError
from temporalio.workflow import ChildWorkflowHandle, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities import names as activity
    from opsflow import configure, names
    from opsflow.app_releases import (
        app_of,
        command_release,
        current_releases,
        deploy_release,
    )
    from opsflow.attributes import stack_configuration
    from opsflow.errors import INVALID_INPUT_TYPE, NOT_FOUND_TYPE, InvalidInput, NotFound
    from opsflow.healing import HealingState
    from opsflow.machines import hosts_to_attach, registered_hosts
    from opsflow.messages import (
        AddInstanceInput,
        AppAction,
        AppCommandInput,
        ApplyInput,
        ApplyResult,
        AttachHostInput,
        ConfigurationQuery,
        DeleteStackResult,
        DeployInput,
        DeploymentInput,
        DeploymentSummary,
        DescribeRdsInput,
        FetchCookbooksInput,
        HealRequest,
        InstanceActionInput,
        InstanceActionKind,
        InstanceChanged,
        InstanceCommand,
        InstanceCommandKind,
        InstanceCommandResult,
        InstanceView,
        RdsInfo,
        RdsInstances,
        RegisterInstanceInput,
        RegisterInstanceResult,
        ResolvedCookbooks,
        RunCommandInput,
        RunCommandResult,
        RunContext,
        ScaleRequest,
        StackDescription,
        StackEvent,
        SyncSchedulesInput,
    )
    from opsflow.plan import conflicts, plan_stack
    from opsflow.rollout import Strategy, parse_amount, plan_batches
    from opsflow.scaling import LoadScalingState
    from opsflow.spec import (
        AppSpec,
        Provider,
        RegisteredHostSpec,
        Scaling,
        StackSpec,
        WeeklySchedule,
        missing_recipes,
    )
    from opsflow.starts import recipes_for, start_command
    from opsflow.state import InstanceState, StackState
    from opsflow.status import (
        RUNNING,
        InstanceStatus,
        entered_or_left_online,
        why_not_delete,
        why_not_start,
        why_not_stop,
    )
    from opsflow.targets import (
        app_targets,
        check_recipes_to_execute,
        command_targets,
        instance_of,
        inventory,
        manager_of,
    )
    from opsflow.wanted import (
        healing_wanted,
        load_scaling_wanted,
        scaling_after_apply,
        schedules_of,
    )
    from workflows import common
    from workflows.deployment import DeploymentWorkflow
    from workflows.healing import LayerHealingWorkflow
    from workflows.instance import InstanceWorkflow, failure_message
    from workflows.scaling import LoadScalingWorkflow

# Commands `opsflow run` accepts, with the event their recipes run as (OPSFLOW_EVENT).
RUN_COMMANDS = {
    "setup": "setup",
    "configure": "configure",
    "execute_recipes": "execute_recipes",
    "update_custom_cookbooks": "update_custom_cookbooks",
}


def _invalid(message: str) -> ApplicationError:
    return ApplicationError(message, type=INVALID_INPUT_TYPE, non_retryable=True)


@contextmanager
def refusals() -> Iterator[None]:
    """opsflow's pure checks raise its own errors; an update refuses with their type."""
    try:
        yield
    except NotFound as err:
        raise _not_found(str(err)) from None
    except InvalidInput as err:
        raise _invalid(str(err)) from None


def _detach(child: ChildWorkflowHandle[Any, Any]) -> None:
    """Children outlive the stack's interest in them (they report by signal): observe their
    end so a cancelled or failed child is not reported as an unretrieved exception."""
    child.add_done_callback(lambda done: done.cancelled() or done.exception())


class _LayerLoop(NamedTuple):
    """A kind of per-layer loop the stack keeps running: healing or load-based scaling."""

    name: str  # healing | scaling: event kinds {name}_started / {name}_stopped
    title: str
    state_field: str  # StackState field: layer -> the settings the loop was given
    workflow: Callable[..., Awaitable[None]]
    initial: Callable[[StackSpec, str, Any, int | None], Any]
    workflow_id: Callable[[str, str], str]


HEALING = _LayerLoop(
    name="healing",
    title="auto healing",
    state_field="healing",
    workflow=LayerHealingWorkflow.run,
    initial=lambda spec, layer, config, max_events: HealingState(
        stack=spec.name, layer=layer, config=config, max_history_events=max_events
    ),
    workflow_id=names.healing_workflow_id,
)
LOAD_SCALING = _LayerLoop(
    name="scaling",
    title="load-based scaling",
    state_field="load_scaling",
    workflow=LoadScalingWorkflow.run,
    initial=lambda spec, layer, config, max_events: LoadScalingState(
        stack=spec.name,
        layer=layer,
        config=config,
        region=spec.region,
        max_history_events=max_events,
    ),
    workflow_id=names.scaling_workflow_id,
)


# A host to register did not answer as given: an operation that failed (exit 1).
REGISTER_FAILED_TYPE = "RegisterFailed"


def _not_found(message: str) -> ApplicationError:
    return ApplicationError(message, type=NOT_FOUND_TYPE, non_retryable=True)


@workflow.defn
class StackWorkflow:
    @workflow.init
    def __init__(self, state: StackState) -> None:
        self._state = state
        # Guards state across the awaits of apply/add/delete (starting children), so two
        # updates never interleave half-applied changes.
        self._lock = asyncio.Lock()

    @workflow.run
    async def run(self, state: StackState) -> None:
        if self._state.spec is None:
            # Started by `stack apply` (update-with-start): if that first apply is refused
            # or fails, there is no stack, and nothing may be left running.
            await workflow.wait_condition(
                lambda: self._state.spec is not None or workflow.all_handlers_finished()
            )
            if self._state.spec is None:
                return
        while True:
            await workflow.wait_condition(
                lambda: (
                    self._state.configure_pending
                    or self._deleted()
                    or common.history_is_long(self._state.max_history_events)
                )
            )
            if self._deleted():
                await workflow.wait_condition(workflow.all_handlers_finished)
                self._event("stack_deleted", "stack deleted; every instance terminated")
                return
            if self._state.configure_pending:
                await self._configure_round()
                continue
            await workflow.wait_condition(workflow.all_handlers_finished)
            workflow.continue_as_new(self._state)

    # ---- configure coalescing ------------------------------------------------------

    async def _configure_round(self) -> None:
        # Changes that arrive during the quiet period join this round.
        await workflow.sleep(timedelta(seconds=configure.QUIET_PERIOD_SECONDS))
        self._state.configure_pending = False
        self._state.configure_rounds += 1
        generation = self._state.configure_rounds
        online = sorted(
            h for h, v in self._state.instances.items() if v.status == InstanceStatus.ONLINE
        )
        self._event(
            "configure",
            f"configure round {generation} on {len(online)} online instance(s)",
            details={"instances": online},
        )
        command = InstanceCommand(
            id=f"configure-{generation}",
            kind=InstanceCommandKind.RUN,
            event="configure",
            generation=generation,
        )
        await self._send_all(online, lambda _: command)

    # ---- updates -------------------------------------------------------------------

    @workflow.update
    async def apply(self, request: ApplyInput) -> ApplyResult:
        async with self._lock:
            # Fetched and checked before anything changes: a missing recipe or a source
            # that cannot be fetched leaves the stack as it was.
            cookbooks = await self._fetch_cookbooks(request.spec)
            missing = missing_recipes(request.spec, inventory(cookbooks))
            if missing:
                raise _invalid("; ".join(missing))
            # The registered RDS instances, read from AWS: one that does not exist fails
            # the apply here, with nothing changed.
            rds = await self._describe_rds(request.spec)
            # Registered hosts new to the stack (or changed) must answer, likewise.
            pinned = await self._attach_hosts(
                request.spec.name,
                hosts_to_attach(registered_hosts(request.spec), self._state.registered),
            )
            self._state.cookbooks = cookbooks
            self._state.rds = rds
            self._state.registered |= pinned
            plan = plan_stack(self._state.spec, self._state.instances, request.spec)
            created = self._state.spec is None
            self._state.spec = request.spec
            self._state.source_file = request.source_file
            if created or plan.changes:
                self._event("applied", "; ".join(plan.changes) or "no changes")
            # Started together, not one after another: each await is a round trip.
            self._state.scaling = scaling_after_apply(
                request.spec, self._state.instances, self._state.scaling
            )
            await asyncio.gather(
                *(
                    self._create_instance(
                        hostname, layer, from_file=True, start=hostname not in plan.stay_stopped
                    )
                    for hostname, layer in plan.create_instances.items()
                )
            )
            await self._send_all(plan.restart_instances, self._start_command_for)
            await self._send_all(
                plan.delete_instances, lambda _: self._command(InstanceCommandKind.DELETE)
            )
            await self._sync_layer_loops(HEALING, healing_wanted(request.spec))
            await self._sync_layer_loops(LOAD_SCALING, load_scaling_wanted(request.spec))
            await self._sync_schedules(schedules_of(request.spec))
            return ApplyResult(
                changes=plan.changes,
                started=[
                    *(h for h in plan.create_instances if h not in plan.stay_stopped),
                    *plan.restart_instances,
                ],
                stopping=plan.delete_instances,
            )

    @apply.validator
    def _validate_apply(self, request: ApplyInput) -> None:
        self._refuse_if_deleting()
        problems = conflicts(self._state.spec, self._state.instances, request.spec)
        if problems:
            raise _invalid("; ".join(problems))

    @workflow.update
    async def add_instance(self, request: AddInstanceInput) -> InstanceView:
        async with self._lock:
            await self._create_instance(
                request.hostname, request.layer, from_file=False, start=request.start
            )
            return self._state.instances[request.hostname]

    @add_instance.validator
    def _validate_add_instance(self, request: AddInstanceInput) -> None:
        spec = self._spec()
        if spec.provider == Provider.REGISTERED:
            raise _invalid(
                f"stack {spec.name} is provider registered: opsflow launches no machines for "
                "it; bring a host in with `opsflow instance register`"
            )
        self._check_new_instance(request.layer, request.hostname)

    def _check_new_instance(self, layer: str, hostname: str) -> None:
        self._refuse_if_deleting()
        spec = self._spec()
        if spec.layer(layer) is None:
            known = ", ".join(item.name for item in spec.layers) or "none"
            raise _not_found(f"stack {spec.name} has no layer {layer!r} (layers: {known})")
        if not names.HOSTNAME.match(hostname):
            raise _invalid(f"hostname {hostname!r} must match {names.HOSTNAME.pattern}")
        if hostname in self._state.instances:
            raise _invalid(f"stack {spec.name} already has an instance {hostname!r}")

    @workflow.update
    async def register_instance(self, request: RegisterInstanceInput) -> RegisterInstanceResult:
        """An existing SSH host joins a layer (OpsWorks' register): checked and its host
        key pinned first, so a host that does not answer leaves nothing behind; then set
        up and brought online like any instance."""
        async with self._lock:
            pinned = await self._attach_hosts(self._spec().name, {request.hostname: request.host})
            if request.hostname in self._state.instances:  # registered meanwhile
                raise _invalid(f"stack {self._spec().name} already has {request.hostname!r}")
            self._state.registered |= pinned
            await self._create_instance(
                request.hostname,
                request.layer,
                from_file=False,
                start=True,
                provider=Provider.REGISTERED,
            )
            host_key = pinned[request.hostname].host_key
            assert host_key is not None  # attach_host pins one
            return RegisterInstanceResult(
                view=self._state.instances[request.hostname], host_key=host_key
            )

    @register_instance.validator
    def _validate_register_instance(self, request: RegisterInstanceInput) -> None:
        self._check_new_instance(request.layer, request.hostname)

    @workflow.update
    async def instance_action(self, request: InstanceActionInput) -> InstanceView:
        kind = InstanceCommandKind(request.action.value)
        command = (
            self._start_command_for(request.hostname)
            if kind == InstanceCommandKind.START
            else self._command(kind)
        )
        await self._send(request.hostname, command)
        return self._state.instances[request.hostname]

    @instance_action.validator
    def _validate_instance_action(self, request: InstanceActionInput) -> None:
        self._refuse_if_deleting()
        view = self._instance(request.hostname)
        match request.action:
            case InstanceActionKind.START:
                why = why_not_start(view.status)
            case InstanceActionKind.STOP:
                why = why_not_stop(view.status)
            case InstanceActionKind.DELETE:
                why = why_not_delete(view.status)
        if why:
            raise _invalid(f"cannot {request.action.value} {request.hostname}: {why}")

    @workflow.update
    async def run_command(self, request: RunCommandInput) -> RunCommandResult:
        targets = self._targets(request)
        if request.command == "update_custom_cookbooks":
            async with self._lock:
                self._state.cookbooks = await self._fetch_cookbooks(self._spec())
            fetched = self._state.cookbooks
            self._event(
                "cookbooks", f"cookbooks fetched: {fetched.digest[:12] if fetched else '-'}"
            )
        self._state.deployment_seq += 1
        deployment_id = names.deployment_workflow_id(self._spec().name, self._state.deployment_seq)
        self._event(
            "command",
            f"{request.command} on {', '.join(targets)}",
            details={"deployment": deployment_id},
        )
        child = await workflow.start_child_workflow(
            DeploymentWorkflow.run,
            DeploymentInput(
                stack=self._spec().name,
                id=deployment_id,
                command=request.command,
                event=RUN_COMMANDS[request.command],
                targets=targets,
                recipes=request.recipes or None,
                stage_only=request.command == "update_custom_cookbooks",
                tag_runs=self._state.tag_runs,
            ),
            id=deployment_id,
            parent_close_policy=ParentClosePolicy.ABANDON,
            search_attributes=self._tags(
                SearchAttributePair(common.STACK_ATTRIBUTE, self._spec().name),
                SearchAttributePair(common.COMMAND_ATTRIBUTE, request.command),
            ),
        )
        _detach(child)
        self._remember_started(deployment_id, request.command, None, "all-at-once")
        return RunCommandResult(deployment_id=deployment_id, targets=targets)

    @run_command.validator
    def _validate_run_command(self, request: RunCommandInput) -> None:
        self._refuse_if_deleting()
        if request.command not in RUN_COMMANDS:
            raise _invalid(
                f"unknown command {request.command!r} (commands: {', '.join(RUN_COMMANDS)})"
            )
        targets = self._targets(request)
        if request.command == "execute_recipes":
            with refusals():
                check_recipes_to_execute(
                    self._spec(),
                    self._state.instances,
                    self._state.cookbooks,
                    request.recipes,
                    targets,
                )
        elif request.recipes:
            raise _invalid(f"--recipes goes with execute_recipes, not {request.command}")

    @workflow.update
    async def deploy(self, request: DeployInput) -> RunCommandResult:
        app = self._app(request.app)
        targets = self._app_targets(app.name)
        source = app.source
        if source is not None and request.revision is not None:
            source = source.model_copy(update={"revision": request.revision})
        code = None
        if source is not None:
            # The code is fetched (and a bad revision refused) before any instance is touched.
            code = await self._fetch(FetchCookbooksInput(stack=self._spec().name, source=source))
        self._state.deployment_seq += 1
        number = self._state.deployment_seq
        revision = request.revision or (source.revision if source else None)
        release = deploy_release(self._spec(), self._state.rds, app, number, revision, code)
        return await self._start_deployment(
            number,
            DeploymentInput(
                stack=self._spec().name,
                id=names.deployment_workflow_id(self._spec().name, number),
                command="deploy",
                event="deploy",
                targets=targets,
                app=release,
                strategy=request.strategy,
                batch=request.batch,
                max_failures=request.max_failures,
                canary_bake_seconds=request.canary_bake_seconds,
                health_check=request.health_check or app.health_check,
                tag_runs=self._state.tag_runs,
            ),
        )

    @deploy.validator
    def _validate_deploy(self, request: DeployInput) -> None:
        self._refuse_if_deleting()
        app = self._app(request.app)
        if request.strategy not in {s.value for s in Strategy}:
            raise _invalid(
                f"--strategy: {request.strategy!r} is not one of {[s.value for s in Strategy]}"
            )
        try:
            if request.batch is not None:
                parse_amount("--batch", request.batch, allow_zero=False)
            if request.max_failures is not None:
                parse_amount("--max-failures", request.max_failures, allow_zero=True)
        except InvalidInput as err:
            raise _invalid(str(err)) from None
        if request.revision is not None and (app.source is None or app.source.git is None):
            raise _invalid(f"--revision: app {app.name} is not deployed from git")
        targets = self._app_targets(app.name)
        if request.strategy == Strategy.CANARY:
            batch = parse_amount("--batch", request.batch or "1", allow_zero=False)
            if len(plan_batches(targets, Strategy.CANARY, batch)) < 2:
                raise _invalid(
                    f"--strategy canary: the canary batch ({batch}) already covers all "
                    f"{len(targets)} instance(s) of {app.name}; nothing would wait for approval"
                )

    @workflow.update
    async def app_command(self, request: AppCommandInput) -> RunCommandResult:
        app = self._app(request.app)
        self._state.deployment_seq += 1
        number = self._state.deployment_seq
        return await self._start_deployment(
            number,
            DeploymentInput(
                stack=self._spec().name,
                id=names.deployment_workflow_id(self._spec().name, number),
                command=request.action.value,
                event=request.action.value,
                targets=self._app_targets(app.name),
                app=command_release(
                    self._spec(), self._state.rds, app, request.action, request.release
                ),
                tag_runs=self._state.tag_runs,
            ),
        )

    @app_command.validator
    def _validate_app_command(self, request: AppCommandInput) -> None:
        self._refuse_if_deleting()
        self._app(request.app)
        if request.action == AppAction.DEPLOY:
            raise _invalid("deploy has its own command: opsflow deploy STACK APP")
        if request.release is not None and request.action != AppAction.ROLLBACK:
            raise _invalid("--to goes with rollback")
        self._app_targets(request.app)

    @workflow.signal
    def deployment_finished(self, summary: DeploymentSummary) -> None:
        self._state.remember_deployment(summary)
        self._event(
            "deployment",
            f"{summary.id} {summary.command}"
            + (f" {summary.app}" if summary.app else "")
            + f": {summary.status}",
            details={"deployment": summary.id},
        )
        if summary.app and summary.command == "deploy" and summary.status == "successful":
            current = self._state.pending_releases.pop(summary.id, None)
            if current is not None:
                self._state.apps[summary.app] = current
        elif summary.app and summary.command == "undeploy" and summary.status == "successful":
            self._state.apps.pop(summary.app, None)

    @workflow.query
    def deployments(self) -> list[DeploymentSummary]:
        return list(reversed(self._state.deployments))

    @workflow.update
    async def delete(self) -> DeleteStackResult:
        async with self._lock:
            self._state.deleting = True
            self._event("deleting", "stack delete requested")
            await self._stop_layer_loops(HEALING, list(self._state.healing))
            await self._stop_layer_loops(LOAD_SCALING, list(self._state.load_scaling))
            await self._sync_schedules({})
            hostnames = sorted(self._state.instances)
            await self._send_all(hostnames, lambda _: self._command(InstanceCommandKind.DELETE))
            return DeleteStackResult(instances=hostnames)

    @delete.validator
    def _validate_delete(self) -> None:
        self._refuse_if_deleting()

    # ---- signals and queries -------------------------------------------------------

    @workflow.signal
    def instance_changed(self, change: InstanceChanged) -> None:
        view = change.view
        before = self._state.instances.get(view.hostname)
        if before is None and view.status == InstanceStatus.TERMINATED:
            return
        if entered_or_left_online(before.status if before else None, view.status):
            self._state.configure_pending = True
        if before is None or before.status != view.status:
            self._event(
                "instance_status",
                f"{view.hostname}: {before.status.value if before else 'new'} -> "
                f"{view.status.value}" + (f" ({view.message})" if view.message else ""),
                hostname=view.hostname,
            )
        if view.status == InstanceStatus.TERMINATED:
            self._state.instances.pop(view.hostname, None)
            self._state.registered.pop(view.hostname, None)  # deregistered
        else:
            self._state.instances[view.hostname] = view

    @workflow.signal
    def record_event(self, event: StackEvent) -> None:
        """An event from a healing loop (or another of the stack's workflows)."""
        self._state.record(event)

    @workflow.signal
    async def heal_instance(self, request: HealRequest) -> None:
        """A healing loop asks for a lost instance to be replaced: built like a start
        (setup, then each app's current release), run first on the instance."""
        view = self._state.instances.get(request.hostname)
        if view is None or self._state.deleting:
            why = "the stack is being deleted" if view else "no such instance any more"
            loop = workflow.get_external_workflow_handle(request.reply_to)
            skipped = InstanceCommandResult(
                command_id=request.command_id,
                hostname=request.hostname,
                ok=True,
                skipped=True,
                status=view.status if view else InstanceStatus.TERMINATED,
                error=why,
            )
            await loop.signal("instance_result", skipped)
            return
        command = self._start_command_for(request.hostname)
        command.kind, command.id = InstanceCommandKind.HEAL, request.command_id
        if command.machine is not None:  # one instance per heal, whatever the retries
            command.machine.token = request.command_id
        command.reply_to, command.reason = request.reply_to, request.reason
        await self._send(request.hostname, command)

    @workflow.query
    def layer_instances(self, layer: str) -> list[InstanceView]:
        return [v for v in self._views() if layer in v.layers]

    @workflow.signal
    async def scale_instance(self, request: ScaleRequest) -> None:
        """A schedule or a layer's load asks for an instance to run or not."""
        if self._state.deleting or self._state.spec is None:
            return
        view = self._state.instances.get(request.hostname)
        if view is None:
            if request.layer is None or self._spec().layer(request.layer) is None:
                return
            async with self._lock:
                self._state.scaling[request.hostname] = Scaling.LOAD
                await self._create_instance(
                    request.hostname, request.layer, from_file=False, start=True
                )
            self._scaled(request, "added and started")
            return
        # The last scaling command sent may not show in the status yet (a start still
        # queued while the view says stopped): the opposite request is sent all the same,
        # and the instance, which runs its commands in order, skips what is already so.
        last = self._state.scaled.get(request.hostname)
        if request.run and (why_not_start(view.status) is None or last is False):
            await self._send(request.hostname, self._start_command_for(request.hostname))
            self._state.scaled[request.hostname] = True
            self._scaled(request, "started")
        elif not request.run and (
            (view.status in RUNNING and view.status != InstanceStatus.STOPPING) or last is True
        ):
            await self._send(request.hostname, self._command(InstanceCommandKind.STOP))
            self._state.scaled[request.hostname] = False
            self._scaled(request, "stopped")

    def _scaled(self, request: ScaleRequest, what: str) -> None:
        self._event(
            "scaling",
            f"{request.hostname} {what} ({request.source}-based): {request.reason}",
            hostname=request.hostname,
            details={"source": request.source},
        )

    @workflow.query
    def describe(self) -> StackDescription:
        spec = self._spec()
        return StackDescription(
            name=spec.name,
            spec=spec,
            source_file=self._state.source_file,
            instances=self._views(),
            deleting=self._state.deleting,
            configure_rounds=self._state.configure_rounds,
            configure_pending=self._state.configure_pending,
            events=self._state.events,
        )

    @workflow.query
    def run_context(self, request: ConfigurationQuery) -> RunContext:
        spec = self._spec()
        this = request.instance or self._instance(request.hostname)
        recipes = recipes_for(spec, this.layers, request.event)
        cookbooks = self._state.cookbooks
        return RunContext(
            configuration=stack_configuration(
                spec, self._state.instances.values(), this, request.event
            ),
            recipes=recipes,
            configuration_manager=manager_of(spec, this),
            cookbooks_dir=cookbooks.directory if cookbooks else None,
            cookbooks_digest=cookbooks.digest if cookbooks else None,
        )

    # ---- helpers -------------------------------------------------------------------

    async def _create_instance(
        self,
        hostname: str,
        layer: str,
        *,
        from_file: bool,
        start: bool,
        provider: Provider | None = None,
    ) -> None:
        spec = self._spec()
        view = InstanceView(
            hostname=hostname,
            layers=[layer],
            provider=provider or spec.provider,
            from_file=from_file,
            status=InstanceStatus.REQUESTED if start else InstanceStatus.STOPPED,
            updated_at=workflow.now(),
        )
        self._state.instances[hostname] = view
        self._event("instance_added", f"{hostname} added to layer {layer}", hostname=hostname)
        queue = [self._start_command(layer, hostname)] if start else []
        child = await workflow.start_child_workflow(
            InstanceWorkflow.run,
            InstanceState(
                stack=spec.name,
                view=view,
                queue=queue,
                max_history_events=self._state.max_history_events,
            ),
            id=names.instance_workflow_id(spec.name, hostname),
            parent_close_policy=ParentClosePolicy.ABANDON,
            search_attributes=self._tags(
                SearchAttributePair(common.STACK_ATTRIBUTE, spec.name),
                SearchAttributePair(common.LAYER_ATTRIBUTE, layer),
            ),
        )
        _detach(child)

    async def _sync_layer_loops(self, loop: _LayerLoop, wanted: dict[str, Any]) -> None:
        """One loop per layer that wants it: started, told its new settings, or stopped
        when the layer no longer wants it (or is gone)."""
        running: dict[str, Any] = getattr(self._state, loop.state_field)
        stack = self._spec().name
        await self._stop_layer_loops(loop, [layer for layer in running if layer not in wanted])
        for layer, config in wanted.items():
            current = running.get(layer)
            if current == config:
                continue
            running[layer] = config
            if current is not None:
                handle = workflow.get_external_workflow_handle(loop.workflow_id(stack, layer))
                await handle.signal("reconfigure", config)
                continue
            child = await workflow.start_child_workflow(
                loop.workflow,
                loop.initial(self._spec(), layer, config, self._state.max_history_events),
                id=loop.workflow_id(stack, layer),
                parent_close_policy=ParentClosePolicy.ABANDON,
                search_attributes=self._tags(
                    SearchAttributePair(common.STACK_ATTRIBUTE, stack),
                    SearchAttributePair(common.LAYER_ATTRIBUTE, layer),
                ),
            )
            _detach(child)
            self._event(f"{loop.name}_started", f"{loop.title} on for layer {layer}")

    async def _stop_layer_loops(self, loop: _LayerLoop, layers: list[str]) -> None:
        running: dict[str, Any] = getattr(self._state, loop.state_field)
        for layer in layers:
            running.pop(layer, None)
            handle = workflow.get_external_workflow_handle(
                loop.workflow_id(self._spec().name, layer)
            )
            try:
                await handle.signal("stop")
            except Exception:  # it ended already
                workflow.logger.warning("%s loop of layer %s is gone", loop.name, layer)
            self._event(f"{loop.name}_stopped", f"{loop.title} off for layer {layer}")

    def _views(self) -> list[InstanceView]:
        """Every instance, with its scaling kind (the stack's to know, not the instance's)."""
        return [
            self._state.instances[h].model_copy(
                update={"scaling": self._state.scaling.get(h, Scaling.ALWAYS)}
            )
            for h in sorted(self._state.instances)
        ]

    async def _sync_schedules(self, wanted: dict[str, WeeklySchedule]) -> None:
        """Temporal Schedules for the time-based instances, as the stack file says."""
        changed = [h for h, hours in wanted.items() if self._state.schedules.get(h) != hours]
        remove = [h for h in self._state.schedules if h not in wanted]
        if not wanted and not remove:
            return  # (with schedules, every apply syncs: one deleted by hand comes back)
        done: list[str] = await workflow.execute_activity(
            activity.SYNC_SCHEDULES,
            SyncSchedulesInput(
                stack=self._spec().name, schedules=wanted, changed=changed, remove=remove
            ),
            result_type=list[str],
            start_to_close_timeout=common.PROVIDER_TIMEOUT,
            retry_policy=common.PROVIDER_RETRY,
        )
        self._state.schedules = wanted
        if done:
            self._event("schedules", "; ".join(done))

    async def _send(self, hostname: str, command: InstanceCommand) -> None:
        handle = workflow.get_external_workflow_handle(
            names.instance_workflow_id(self._spec().name, hostname)
        )
        await handle.signal(InstanceWorkflow.enqueue, command)

    async def _send_all(
        self, hostnames: Iterable[str], make: Callable[[str], InstanceCommand]
    ) -> None:
        await asyncio.gather(*(self._send(hostname, make(hostname)) for hostname in hostnames))

    def _command(self, kind: InstanceCommandKind) -> InstanceCommand:
        return InstanceCommand(id=f"{kind.value}-{workflow.uuid4().hex[:8]}", kind=kind)

    def _start_command(self, layer: str, hostname: str) -> InstanceCommand:
        """Start = launch, setup, then the current release of each app on the layer."""
        spec = self._spec()
        return start_command(
            self._command(InstanceCommandKind.START).id,
            spec,
            layer,
            hostname,
            current_releases(spec, self._state.apps, self._state.rds, layer),
            self._state.registered.get(hostname),
        )

    def _start_command_for(self, hostname: str) -> InstanceCommand:
        layers = self._state.instances[hostname].layers
        if not layers:
            return self._command(InstanceCommandKind.START)
        return self._start_command(layers[0], hostname)

    async def _start_deployment(self, number: int, request: DeploymentInput) -> RunCommandResult:
        child = await workflow.start_child_workflow(
            DeploymentWorkflow.run,
            request,
            id=request.id,
            parent_close_policy=ParentClosePolicy.ABANDON,
            search_attributes=self._tags(
                SearchAttributePair(common.STACK_ATTRIBUTE, request.stack),
                SearchAttributePair(common.COMMAND_ATTRIBUTE, request.command),
                SearchAttributePair(common.APP_ATTRIBUTE, request.app.app if request.app else ""),
                SearchAttributePair(common.STATUS_ATTRIBUTE, "running"),
            ),
        )
        _detach(child)
        if request.app is not None and request.app.action == AppAction.DEPLOY:
            self._state.pending_releases[request.id] = request.app
        self._remember_started(
            request.id, request.command, request.app.app if request.app else None, request.strategy
        )
        self._event(
            "command",
            f"{request.command} {request.app.app if request.app else ''} on "
            f"{', '.join(request.targets)}",
            details={"deployment": request.id},
        )
        return RunCommandResult(deployment_id=request.id, targets=request.targets)

    def _remember_started(
        self, deployment_id: str, command: str, app: str | None, strategy: str
    ) -> None:
        release = self._state.pending_releases.get(deployment_id)
        self._state.remember_deployment(
            DeploymentSummary(
                id=deployment_id,
                stack=self._spec().name,
                app=app,
                command=command,
                strategy=strategy,
                status="running",
                revision=release.revision if release else None,
                release=release.release if release else None,
                started_at=workflow.now(),
            )
        )

    async def _attach_hosts(
        self, stack: str, hosts: dict[str, RegisteredHostSpec]
    ) -> dict[str, RegisteredHostSpec]:
        """Each host checked at once, with its host key pinned; the first that fails
        fails the caller (with nothing changed yet)."""
        if not hosts:
            return {}
        names_ = list(hosts)
        results = await asyncio.gather(
            *(
                workflow.execute_activity(
                    activity.ATTACH_HOST,
                    AttachHostInput(stack=stack, hostname=hostname, host=hosts[hostname]),
                    result_type=RegisteredHostSpec,
                    start_to_close_timeout=common.ATTACH_TIMEOUT,
                    retry_policy=common.PROBE_RETRY,
                )
                for hostname in names_
            ),
            return_exceptions=True,
        )
        problems = [
            f"{hostname}: {failure_message(result)[0]}"
            for hostname, result in zip(names_, results, strict=True)
            if isinstance(result, BaseException)
        ]
        if problems:
            raise ApplicationError(
                "registered host(s) not reachable as given, nothing changed: "
                + "; ".join(problems),
                type=REGISTER_FAILED_TYPE,
                non_retryable=True,
            )
        return {
            hostname: result
            for hostname, result in zip(names_, results, strict=True)
            if isinstance(result, RegisteredHostSpec)
        }

    async def _describe_rds(self, spec: StackSpec) -> dict[str, RdsInfo]:
        """rds entry name -> its instance as AWS describes it (none: no AWS call)."""
        if not spec.rds or spec.region is None:
            return {}
        found: RdsInstances = await workflow.execute_activity(
            activity.DESCRIBE_RDS,
            DescribeRdsInput(
                stack=spec.name,
                region=spec.region,
                identifiers=sorted({entry.identifier for entry in spec.rds}),
            ),
            result_type=RdsInstances,
            start_to_close_timeout=common.PROVIDER_TIMEOUT,
            retry_policy=common.PROVIDER_RETRY,
        )
        return {
            entry.name: found.instances[entry.identifier]
            for entry in spec.rds
            if entry.identifier in found.instances
        }

    async def _fetch(self, request: FetchCookbooksInput) -> ResolvedCookbooks:
        resolved: ResolvedCookbooks = await workflow.execute_activity(
            activity.FETCH_COOKBOOKS,
            request,
            result_type=ResolvedCookbooks,
            start_to_close_timeout=common.FETCH_TIMEOUT,
            heartbeat_timeout=common.FETCH_HEARTBEAT_TIMEOUT,
            retry_policy=common.FETCH_RETRY,
        )
        return resolved

    async def _fetch_cookbooks(self, spec: StackSpec) -> ResolvedCookbooks | None:
        if spec.cookbooks is None:
            return None
        resolved: ResolvedCookbooks = await workflow.execute_activity(
            activity.FETCH_COOKBOOKS,
            FetchCookbooksInput(stack=spec.name, source=spec.cookbooks),
            result_type=ResolvedCookbooks,
            start_to_close_timeout=common.FETCH_TIMEOUT,
            heartbeat_timeout=common.FETCH_HEARTBEAT_TIMEOUT,
            retry_policy=common.FETCH_RETRY,
        )
        return resolved

    def _targets(self, request: RunCommandInput) -> list[str]:
        with refusals():
            return command_targets(self._spec(), self._state.instances, request)

    def _app(self, name: str) -> AppSpec:
        with refusals():
            return app_of(self._spec(), name)

    def _app_targets(self, name: str) -> list[str]:
        with refusals():
            return app_targets(self._spec(), self._state.instances, name)

    def _tags(self, *pairs: SearchAttributePair[str]) -> TypedSearchAttributes | None:
        return TypedSearchAttributes(list(pairs)) if self._state.tag_runs else None

    def _instance(self, hostname: str) -> InstanceView:
        with refusals():
            return instance_of(self._spec(), self._state.instances, hostname)

    def _spec(self) -> StackSpec:
        if self._state.spec is None:
            raise _not_found("the stack has not been applied yet")
        return self._state.spec

    def _refuse_if_deleting(self) -> None:
        if self._state.deleting:
            raise _invalid("the stack is being deleted")

    def _deleted(self) -> bool:
        return self._state.deleting and not self._state.instances

    def _event(
        self,
        kind: str,
        message: str,
        hostname: str | None = None,
        details: dict[str, object] | None = None,
    ) -> None:
        self._state.record(
            StackEvent(
                at=workflow.now(),
                kind=kind,
                message=message,
                hostname=hostname,
                details=details or {},
            )
        )

"""StackWorkflow: the durable stack. Owns the spec, knows every instance's status, decides
when configure runs, and starts instance and deployment workflows.

Mutations are Updates with validators, so bad input is refused before it enters history
and the caller gets an answer (a signal could only be fire-and-forget).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError
from temporalio.workflow import ChildWorkflowHandle, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities import names as activity
    from opsflow import configure, names
    from opsflow.attributes import stack_configuration
    from opsflow.errors import INVALID_INPUT_TYPE, NOT_FOUND_TYPE
    from opsflow.messages import (
        AddInstanceInput,
        ApplyInput,
        ApplyResult,
        ConfigurationQuery,
        DeleteStackResult,
        DeploymentInput,
        FetchCookbooksInput,
        InstanceActionInput,
        InstanceActionKind,
        InstanceChanged,
        InstanceCommand,
        InstanceCommandKind,
        InstanceView,
        ResolvedCookbooks,
        RunCommandInput,
        RunCommandResult,
        RunContext,
        StackDescription,
        StackEvent,
    )
    from opsflow.plan import conflicts, plan_stack
    from opsflow.spec import ConfigurationManager, LifecycleEvent, StackSpec, missing_recipes
    from opsflow.state import InstanceState, StackState
    from opsflow.status import (
        InstanceStatus,
        entered_or_left_online,
        why_not_delete,
        why_not_run_recipes,
        why_not_start,
        why_not_stop,
    )
    from workflows import common
    from workflows.deployment import DeploymentWorkflow
    from workflows.instance import InstanceWorkflow

# Commands `opsflow run` accepts, with the event their recipes run as (OPSFLOW_EVENT).
RUN_COMMANDS = {
    "setup": "setup",
    "configure": "configure",
    "execute_recipes": "execute_recipes",
    "update_custom_cookbooks": "update_custom_cookbooks",
}


def _invalid(message: str) -> ApplicationError:
    return ApplicationError(message, type=INVALID_INPUT_TYPE, non_retryable=True)


def _inventory(cookbooks: ResolvedCookbooks | None) -> dict[ConfigurationManager, set[str]]:
    if cookbooks is None:
        return {}
    return {manager: set(found) for manager, found in cookbooks.recipes.items()}


def _detach(child: ChildWorkflowHandle[Any, Any]) -> None:
    """Children outlive the stack's interest in them (they report by signal): observe their
    end so a cancelled or failed child is not reported as an unretrieved exception."""
    child.add_done_callback(lambda done: done.cancelled() or done.exception())


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
        await self._send_all(online, lambda: command)

    # ---- updates -------------------------------------------------------------------

    @workflow.update
    async def apply(self, request: ApplyInput) -> ApplyResult:
        async with self._lock:
            # Fetched and checked before anything changes: a missing recipe or a source
            # that cannot be fetched leaves the stack as it was.
            cookbooks = await self._fetch_cookbooks(request.spec)
            missing = missing_recipes(request.spec, _inventory(cookbooks))
            if missing:
                raise _invalid("; ".join(missing))
            self._state.cookbooks = cookbooks
            plan = plan_stack(self._state.spec, self._state.instances, request.spec)
            created = self._state.spec is None
            self._state.spec = request.spec
            self._state.source_file = request.source_file
            if created or plan.changes:
                self._event("applied", "; ".join(plan.changes) or "no changes")
            # Started together, not one after another: each await is a round trip.
            await asyncio.gather(
                *(
                    self._create_instance(hostname, layer, from_file=True, start=True)
                    for hostname, layer in plan.create_instances.items()
                )
            )
            await self._send_all(
                plan.restart_instances, lambda: self._command(InstanceCommandKind.START)
            )
            await self._send_all(
                plan.delete_instances, lambda: self._command(InstanceCommandKind.DELETE)
            )
            return ApplyResult(
                changes=plan.changes,
                started=[*plan.create_instances, *plan.restart_instances],
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
        self._refuse_if_deleting()
        spec = self._spec()
        if spec.layer(request.layer) is None:
            layers = ", ".join(layer.name for layer in spec.layers) or "none"
            raise _not_found(f"stack {spec.name} has no layer {request.layer!r} (layers: {layers})")
        if not names.HOSTNAME.match(request.hostname):
            raise _invalid(f"hostname {request.hostname!r} must match {names.HOSTNAME.pattern}")
        if request.hostname in self._state.instances:
            raise _invalid(f"stack {spec.name} already has an instance {request.hostname!r}")

    @workflow.update
    async def instance_action(self, request: InstanceActionInput) -> InstanceView:
        kind = InstanceCommandKind(request.action.value)
        await self._send(request.hostname, self._command(kind))
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
            ),
            id=deployment_id,
            parent_close_policy=ParentClosePolicy.ABANDON,
            search_attributes=self._tags(
                SearchAttributePair(common.STACK_ATTRIBUTE, self._spec().name),
                SearchAttributePair(common.COMMAND_ATTRIBUTE, request.command),
            ),
        )
        _detach(child)
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
            self._check_recipes_to_execute(request.recipes, targets)
        elif request.recipes:
            raise _invalid(f"--recipes goes with execute_recipes, not {request.command}")

    @workflow.update
    async def delete(self) -> DeleteStackResult:
        async with self._lock:
            self._state.deleting = True
            self._event("deleting", "stack delete requested")
            hostnames = sorted(self._state.instances)
            await self._send_all(hostnames, lambda: self._command(InstanceCommandKind.DELETE))
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
        else:
            self._state.instances[view.hostname] = view

    @workflow.query
    def describe(self) -> StackDescription:
        spec = self._spec()
        return StackDescription(
            name=spec.name,
            spec=spec,
            source_file=self._state.source_file,
            instances=[self._state.instances[h] for h in sorted(self._state.instances)],
            deleting=self._state.deleting,
            configure_rounds=self._state.configure_rounds,
            configure_pending=self._state.configure_pending,
            events=self._state.events,
        )

    @workflow.query
    def run_context(self, request: ConfigurationQuery) -> RunContext:
        spec = self._spec()
        this = request.instance or self._instance(request.hostname)
        recipes: list[str] = []
        if request.event in {e.value for e in LifecycleEvent}:
            event = LifecycleEvent(request.event)
            for layer_name in this.layers:
                layer = spec.layer(layer_name)
                if layer is not None:
                    recipes.extend(layer.recipes.for_event(event))
        cookbooks = self._state.cookbooks
        return RunContext(
            configuration=stack_configuration(
                spec, self._state.instances.values(), this, request.event
            ),
            recipes=recipes,
            configuration_manager=self._manager(this),
            cookbooks_dir=cookbooks.directory if cookbooks else None,
            cookbooks_digest=cookbooks.digest if cookbooks else None,
        )

    # ---- helpers -------------------------------------------------------------------

    async def _create_instance(
        self, hostname: str, layer: str, *, from_file: bool, start: bool
    ) -> None:
        spec = self._spec()
        view = InstanceView(
            hostname=hostname,
            layers=[layer],
            provider=spec.provider,
            from_file=from_file,
            status=InstanceStatus.REQUESTED if start else InstanceStatus.STOPPED,
            updated_at=workflow.now(),
        )
        self._state.instances[hostname] = view
        self._event("instance_added", f"{hostname} added to layer {layer}", hostname=hostname)
        queue = [self._command(InstanceCommandKind.START)] if start else []
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

    async def _send(self, hostname: str, command: InstanceCommand) -> None:
        handle = workflow.get_external_workflow_handle(
            names.instance_workflow_id(self._spec().name, hostname)
        )
        await handle.signal(InstanceWorkflow.enqueue, command)

    async def _send_all(
        self, hostnames: Iterable[str], make: Callable[[], InstanceCommand]
    ) -> None:
        await asyncio.gather(*(self._send(hostname, make()) for hostname in hostnames))

    def _command(self, kind: InstanceCommandKind) -> InstanceCommand:
        return InstanceCommand(id=f"{kind.value}-{workflow.uuid4().hex[:8]}", kind=kind)

    def _targets(self, request: RunCommandInput) -> list[str]:
        spec = self._spec()
        if request.layer is not None and spec.layer(request.layer) is None:
            raise _not_found(f"stack {spec.name} has no layer {request.layer!r}")
        if request.instance is not None:
            view = self._instance(request.instance)
            if request.layer is not None and request.layer not in view.layers:
                raise _invalid(f"instance {request.instance} is not in layer {request.layer}")
            why = why_not_run_recipes(view.status)
            if why:
                raise _invalid(f"cannot run {request.command} on {request.instance}: {why}")
            return [request.instance]
        targets = sorted(
            h
            for h, v in self._state.instances.items()
            if v.status == InstanceStatus.ONLINE
            and (request.layer is None or request.layer in v.layers)
        )
        if not targets:
            where = f"layer {request.layer}" if request.layer else f"stack {spec.name}"
            raise _invalid(f"no online instance in {where} to run {request.command} on")
        return targets

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

    def _manager(self, view: InstanceView) -> ConfigurationManager:
        spec = self._spec()
        return spec.manager_for(view.layers[0]) if view.layers else spec.configuration_manager

    def _check_recipes_to_execute(self, recipes: list[str], targets: list[str]) -> None:
        if not recipes:
            raise _invalid("execute_recipes needs --recipes cookbook::recipe[,...]")
        bad = [r for r in recipes if not names.RECIPE.match(r)]
        if bad:
            raise _invalid(f"--recipes: {bad} are not cookbook::recipe names")
        inventory = _inventory(self._state.cookbooks)
        for hostname in targets:
            manager = self._manager(self._state.instances[hostname])
            missing = [r for r in recipes if r not in inventory.get(manager, set())]
            if missing:
                raise _invalid(
                    f"--recipes: {', '.join(missing)} not in the stack's cookbooks "
                    f"(as {manager.value} recipes for {hostname})"
                )

    def _tags(self, *pairs: SearchAttributePair[str]) -> TypedSearchAttributes | None:
        return TypedSearchAttributes(list(pairs)) if self._state.tag_runs else None

    def _instance(self, hostname: str) -> InstanceView:
        view = self._state.instances.get(hostname)
        if view is None:
            raise _not_found(f"stack {self._spec().name} has no instance {hostname!r}")
        return view

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

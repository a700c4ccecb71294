"""Commands across instances (`opsflow run`), app deploys and app commands, each a
deployment workflow; and what the stack remembers of them."""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributePair
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities import names as activity
    from opsflow import custom_json, names
    from opsflow.app_releases import app_of, command_release, deploy_release
    from opsflow.errors import InvalidInput
    from opsflow.events import EventKind
    from opsflow.messages import (
        AppAction,
        AppCommandInput,
        AppRelease,
        DeployInput,
        DeploymentInput,
        DeploymentStatus,
        DeploymentSummary,
        FetchCookbooksInput,
        ResolvedCookbooks,
        RunCommandInput,
        RunCommandResult,
    )
    from opsflow.rollout import (
        Strategy,
        canary_batch,
        parse_batch,
        parse_max_failures,
        plan_batches,
    )
    from opsflow.spec import AppSpec
    from opsflow.targets import app_targets, check_recipes_to_execute, command_targets
    from workflows import common, handlers
    from workflows.deployment import DeploymentWorkflow
    from workflows.failures import invalid
    from workflows.origin import check as check_origin
    from workflows.stack.base import StackBase, detach, refusals


# Commands `opsflow run` accepts, with the event their recipes run as (OPSFLOW_EVENT).
RUN_COMMANDS = {
    "setup": "setup",
    "configure": "configure",
    "execute_recipes": "execute_recipes",
    "update_custom_cookbooks": "update_custom_cookbooks",
}


class CommandsMixin(StackBase):
    @workflow.update
    async def run_command(self, request: RunCommandInput) -> RunCommandResult:
        targets = self._targets(request)
        if request.command == "update_custom_cookbooks":
            spec = self._spec()
            if spec.cookbooks is not None and spec.cookbooks.source and request.artifact:
                # The directory as the CLI packed it now, not as the last apply did.
                cookbooks = spec.cookbooks.model_copy(update={"artifact": request.artifact})
                spec = spec.model_copy(update={"cookbooks": cookbooks})
            async with self._lock:
                self._state.applied.cookbooks = await self._fetch_cookbooks(spec)
                self._changed()
            fetched = self._state.applied.cookbooks
            self._event(
                EventKind.COOKBOOKS, f"cookbooks fetched: {fetched.digest[:12] if fetched else '-'}"
            )
        self._state.commands.deployment_seq += 1
        deployment_id = names.deployment_workflow_id(
            self._spec().name, self._state.commands.deployment_seq
        )
        self._event(
            EventKind.COMMAND,
            f"{request.command} on {', '.join(targets)}",
            details={"deployment": deployment_id},
        )
        snapshot = await self._snapshot()
        child = await workflow.start_child_workflow(
            DeploymentWorkflow.run,
            DeploymentInput(
                stack=self._spec().name,
                snapshot=snapshot,
                id=deployment_id,
                command=request.command,
                event=RUN_COMMANDS[request.command],
                targets=targets,
                recipes=request.recipes or None,
                stage_only=request.command == "update_custom_cookbooks",
                tag_runs=self._state.tag_runs,
                custom_json=request.custom_json,
            ),
            id=deployment_id,
            parent_close_policy=ParentClosePolicy.ABANDON,
            search_attributes=self._tags(
                SearchAttributePair(common.STACK_ATTRIBUTE, self._spec().name),
                SearchAttributePair(common.COMMAND_ATTRIBUTE, request.command),
            ),
        )
        detach(child)
        self._remember_started(deployment_id, request.command, None, Strategy.ALL_AT_ONCE)
        return RunCommandResult(deployment_id=deployment_id, targets=targets)

    @run_command.validator
    def _validate_run_command(self, request: RunCommandInput) -> None:
        check_origin(request.origin)
        self._refuse_if_deleting()
        _check_custom_json(request.custom_json)
        if request.command not in RUN_COMMANDS:
            raise invalid(
                f"unknown command {request.command!r} (commands: {', '.join(RUN_COMMANDS)})"
            )
        targets = self._targets(request)
        if request.command == "execute_recipes":
            with refusals():
                check_recipes_to_execute(
                    self._spec(),
                    self._state.members.instances,
                    self._state.applied.cookbooks,
                    request.recipes,
                    targets,
                )
        elif request.recipes:
            raise invalid(f"--recipes goes with execute_recipes, not {request.command}")

    @workflow.update
    async def deploy(self, request: DeployInput) -> RunCommandResult:
        app = self._app(request.app)
        targets = self._app_targets(app.name)
        source = app.source
        if source is not None and request.revision is not None:
            source = source.model_copy(update={"revision": request.revision})
        if source is not None and source.source is not None and request.artifact is not None:
            source = source.model_copy(update={"artifact": request.artifact})
        code = None
        if source is not None:
            # The code is fetched (and a bad revision refused) before any instance is touched.
            code = await self._fetch(FetchCookbooksInput(stack=self._spec().name, source=source))
        self._state.commands.deployment_seq += 1
        number = self._state.commands.deployment_seq
        revision = request.revision or (source.revision if source else None)
        release = deploy_release(self._spec(), self._state.applied.rds, app, number, revision, code)
        return await self._start_deployment(
            number,
            DeploymentInput(
                stack=self._spec().name,
                id=names.deployment_workflow_id(self._spec().name, number),
                command="deploy",
                event="deploy",
                targets=targets,
                app=release,
                strategy=Strategy(request.strategy),  # checked by the validator
                batch=request.batch,
                max_failures=request.max_failures,
                canary_bake_seconds=request.canary_bake_seconds,
                health_check=request.health_check or app.health_check,
                tag_runs=self._state.tag_runs,
                custom_json=request.custom_json,
            ),
        )

    @deploy.validator
    def _validate_deploy(self, request: DeployInput) -> None:
        check_origin(request.origin)
        self._refuse_if_deleting()
        _check_custom_json(request.custom_json)
        app = self._app(request.app)
        if request.strategy not in {s.value for s in Strategy}:
            raise invalid(
                f"--strategy: {request.strategy!r} is not one of {[s.value for s in Strategy]}"
            )
        try:
            if request.batch is not None:
                parse_batch(request.batch)
            if request.max_failures is not None:
                parse_max_failures(request.max_failures)
        except InvalidInput as err:
            raise invalid(str(err)) from None
        if request.revision is not None and (app.source is None or app.source.git is None):
            raise invalid(f"--revision: app {app.name} is not deployed from git")
        targets = self._app_targets(app.name)
        if request.strategy == Strategy.CANARY:
            batch = canary_batch(request.batch)
            if len(plan_batches(targets, Strategy.CANARY, batch)) < 2:
                raise invalid(
                    f"--strategy canary: the canary batch ({batch}) already covers all "
                    f"{len(targets)} instance(s) of {app.name}; nothing would wait for approval"
                )

    @workflow.update
    async def app_command(self, request: AppCommandInput) -> RunCommandResult:
        app = self._app(request.app)
        self._state.commands.deployment_seq += 1
        number = self._state.commands.deployment_seq
        # A rollback that succeeds makes that release current again: what a new or healed
        # instance gets, not the release rolled away from.
        back_to = (
            self._state.commands.rollback_target(app.name, request.release)
            if request.action == AppAction.ROLLBACK
            else None
        )
        return await self._start_deployment(
            number,
            DeploymentInput(
                stack=self._spec().name,
                id=names.deployment_workflow_id(self._spec().name, number),
                command=request.action.value,
                event=request.action.value,
                targets=self._app_targets(app.name),
                app=command_release(
                    self._spec(), self._state.applied.rds, app, request.action, request.release
                ),
                tag_runs=self._state.tag_runs,
                custom_json=request.custom_json,
            ),
            makes_current=back_to,
        )

    @app_command.validator
    def _validate_app_command(self, request: AppCommandInput) -> None:
        check_origin(request.origin)
        self._refuse_if_deleting()
        _check_custom_json(request.custom_json)
        self._app(request.app)
        if request.action == AppAction.DEPLOY:
            raise invalid("deploy has its own command: opsflow deploy STACK APP")
        if request.release is not None and request.action != AppAction.ROLLBACK:
            raise invalid("--to goes with rollback")
        self._app_targets(request.app)

    @workflow.signal(name=handlers.DEPLOYMENT_FINISHED)
    def deployment_finished(self, summary: DeploymentSummary) -> None:
        self._state.commands.remember(summary)
        self._event(
            EventKind.DEPLOYMENT,
            f"{summary.id} {summary.command}"
            + (f" {summary.app}" if summary.app else "")
            + f": {summary.status}",
            details={"deployment": summary.id},
        )
        self._state.commands.finished(summary)

    async def _start_deployment(
        self, number: int, request: DeploymentInput, makes_current: AppRelease | None = None
    ) -> RunCommandResult:
        """Start the deployment's child workflow. The release it makes current when it
        succeeds: a deploy's own, or `makes_current` (a rollback's earlier one)."""
        # The deployment's runs read the configuration of now (they ran a query each before).
        snapshot = await self._snapshot()
        if snapshot is not None:
            request = request.model_copy(update={"snapshot": snapshot})
        child = await workflow.start_child_workflow(
            DeploymentWorkflow.run,
            request,
            id=request.id,
            parent_close_policy=ParentClosePolicy.ABANDON,
            search_attributes=self._tags(
                SearchAttributePair(common.STACK_ATTRIBUTE, request.stack),
                SearchAttributePair(common.COMMAND_ATTRIBUTE, request.command),
                SearchAttributePair(common.APP_ATTRIBUTE, request.app.app if request.app else ""),
                SearchAttributePair(common.STATUS_ATTRIBUTE, DeploymentStatus.RUNNING.value),
            ),
        )
        detach(child)
        if request.app is not None and request.app.action == AppAction.DEPLOY:
            makes_current = request.app
        if makes_current is not None:
            self._state.commands.pending_releases[request.id] = makes_current
        self._remember_started(
            request.id, request.command, request.app.app if request.app else None, request.strategy
        )
        self._event(
            EventKind.COMMAND,
            f"{request.command} {request.app.app if request.app else ''} on "
            f"{', '.join(request.targets)}",
            details={"deployment": request.id},
        )
        return RunCommandResult(deployment_id=request.id, targets=request.targets)

    def _remember_started(
        self, deployment_id: str, command: str, app: str | None, strategy: Strategy
    ) -> None:
        release = self._state.commands.pending_releases.get(deployment_id)
        self._state.commands.remember(
            DeploymentSummary(
                id=deployment_id,
                stack=self._spec().name,
                app=app,
                command=command,
                strategy=strategy,
                status=DeploymentStatus.RUNNING,
                revision=release.revision if release else None,
                release=release.release if release else None,
                started_at=workflow.now(),
            )
        )

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

    def _targets(self, request: RunCommandInput) -> list[str]:
        with refusals():
            return command_targets(self._spec(), self._state.members.instances, request)

    def _app(self, name: str) -> AppSpec:
        with refusals():
            return app_of(self._spec(), name)

    def _app_targets(self, name: str) -> list[str]:
        with refusals():
            return app_targets(self._spec(), self._state.members.instances, name)


def _check_custom_json(document: dict[str, Any] | None) -> None:
    """A command's custom JSON within the limit (the CLI checks first; other callers too)."""
    if document is not None:
        try:
            custom_json.check(document)
        except InvalidInput as err:
            raise invalid(str(err)) from None

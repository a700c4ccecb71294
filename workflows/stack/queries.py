"""What the stack answers without changing: its description, a recipe run's context, a
layer's instances, its deployments."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from opsflow.attributes import stack_configuration
    from opsflow.messages import (
        ConfigurationQuery,
        DeploymentSummary,
        InstanceView,
        RunContext,
        StackDescription,
    )
    from opsflow.spec import Scaling
    from opsflow.starts import recipes_for
    from opsflow.targets import manager_of
    from workflows import handlers
    from workflows.stack.base import StackBase


class QueriesMixin(StackBase):
    @workflow.query
    def describe(self) -> StackDescription:
        spec = self._spec()
        return StackDescription(
            name=spec.name,
            spec=spec,
            source_file=self._state.applied.source_file,
            instances=self._views(),
            deleting=self._state.deleting,
            configure_rounds=self._state.members.configure_rounds,
            configure_pending=self._state.members.configure_pending,
            events=self._state.events,
        )

    @workflow.query(name=handlers.RUN_CONTEXT)
    def run_context(self, request: ConfigurationQuery) -> RunContext:
        spec = self._spec()
        this = request.instance or self._instance(request.hostname)
        recipes = recipes_for(spec, this.layers, request.event)
        cookbooks = self._state.applied.cookbooks
        return RunContext(
            configuration=stack_configuration(
                spec, self._state.members.instances.values(), this, request.event
            ),
            recipes=recipes,
            configuration_manager=manager_of(spec, this),
            cookbooks_dir=cookbooks.directory if cookbooks else None,
            cookbooks_digest=cookbooks.digest if cookbooks else None,
            cookbooks_blob=cookbooks.blob if cookbooks else None,
        )

    @workflow.query(name=handlers.LAYER_INSTANCES)
    def layer_instances(self, layer: str) -> list[InstanceView]:
        return [v for v in self._views() if layer in v.layers]

    @workflow.query
    def deployments(self) -> list[DeploymentSummary]:
        return list(reversed(self._state.commands.deployments))

    def _views(self) -> list[InstanceView]:
        """Every instance, with its scaling kind (the stack's to know, not the instance's)."""
        return [
            self._state.members.instances[h].model_copy(
                update={"scaling": self._state.loops.scaling.get(h, Scaling.ALWAYS)}
            )
            for h in sorted(self._state.members.instances)
        ]

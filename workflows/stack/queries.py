"""What the stack answers without changing: its description, its instances' statuses, a
recipe run's context, a layer's instances, its deployments."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from opsflow import snapshots
    from opsflow.healing import loop_instances
    from opsflow.messages import (
        ConfigurationQuery,
        ConfigurationSnapshot,
        DeploymentSummary,
        InstanceStatusLine,
        InstanceView,
        RunContext,
        StackDescription,
    )
    from opsflow.spec import Scaling
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
            configure_pending=self._state.members.configure_pending or self._configuring,
            events=self._state.events,
        )

    @workflow.query
    def statuses(self) -> list[InstanceStatusLine]:
        """Every instance's status: what a wait polls (small at any size, unlike describe)."""
        return [
            InstanceStatusLine(hostname=h, status=v.status, updated_at=v.updated_at)
            for h, v in sorted(self._state.members.instances.items())
        ]

    @workflow.query(name=handlers.RUN_CONTEXT)
    def run_context(self, request: ConfigurationQuery) -> RunContext:
        """A run's context (runs sent without a snapshot digest, before the upgrade)."""
        this = request.instance or self._instance(request.hostname)
        return snapshots.run_context(self._configuration_snapshot(), this, request.event)

    @workflow.query(name=handlers.CONFIGURATION_SNAPSHOT)
    def configuration_snapshot(self) -> ConfigurationSnapshot:
        """The current generation, for the activity that publishes it to the store."""
        return self._configuration_snapshot()

    def _configuration_snapshot(self) -> ConfigurationSnapshot:
        return snapshots.configuration_snapshot(
            self._spec(),
            self._state.members.instances.values(),
            self._state.applied.cookbooks,
            self._state.members.generation,
            self._state.applied.rds,
        )

    @workflow.query(name=handlers.LAYER_INSTANCES)
    def layer_instances(self, layer: str) -> list[InstanceView]:
        """What the layer's load-based scaling loop counts: its instances whose first
        layer it is."""
        return loop_instances(self._spec(), self._views(), layer, healing=False)

    @workflow.query(name=handlers.HEALING_INSTANCES)
    def healing_instances(self, layer: str) -> list[InstanceView]:
        """What the layer's healing loop checks: its instances whose first layer it is,
        and whose layers all auto-heal."""
        return loop_instances(self._spec(), self._views(), layer, healing=True)

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

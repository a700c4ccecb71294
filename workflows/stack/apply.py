"""Applying a stack file (cookbooks fetched and checked, RDS described, registered hosts
attached first, then instances, loops and schedules brought in line) and deleting the
stack."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities import names as activity
    from opsflow.events import EventKind
    from opsflow.machines import hosts_to_attach, registered_hosts
    from opsflow.messages import (
        ApplyInput,
        ApplyResult,
        DeleteStackInput,
        DeleteStackResult,
        DescribeRdsInput,
        InstanceCommandKind,
        RdsInfo,
        RdsInstances,
    )
    from opsflow.plan import conflicts, plan_stack
    from opsflow.spec import StackSpec, missing_recipes
    from opsflow.targets import inventory
    from opsflow.wanted import (
        healing_wanted,
        load_scaling_wanted,
        scaling_after_apply,
        schedules_of,
    )
    from workflows import common
    from workflows.failures import invalid
    from workflows.origin import check as check_origin
    from workflows.stack import patches
    from workflows.stack.loops import HEALING, LOAD_SCALING, LoopsMixin
    from workflows.stack.members import MembersMixin


class ApplyMixin(MembersMixin, LoopsMixin):
    @workflow.update
    async def apply(self, request: ApplyInput) -> ApplyResult:
        async with self._lock:
            # Fetched and checked before anything changes: a missing recipe or a source
            # that cannot be fetched leaves the stack as it was.
            cookbooks = await self._fetch_cookbooks(request.spec)
            missing = missing_recipes(request.spec, inventory(cookbooks))
            if missing:
                raise invalid("; ".join(missing))
            # The registered RDS instances, read from AWS: one that does not exist fails
            # the apply here, with nothing changed.
            rds = await self._describe_rds(request.spec)
            # Registered hosts new to the stack (or changed) must answer, likewise.
            pinned = await self._attach_hosts(
                request.spec.name,
                hosts_to_attach(registered_hosts(request.spec), self._state.applied.registered),
            )
            self._state.applied.cookbooks = cookbooks
            self._state.applied.rds = rds
            self._state.applied.registered |= pinned
            plan = plan_stack(self._state.applied.spec, self._state.members.instances, request.spec)
            created = self._state.applied.spec is None
            self._state.applied.spec = request.spec
            self._state.applied.source_file = request.source_file
            # Stopped instances whose layers the file changes: the stack shows them in their
            # new layers now, and their next start (which carries the layers) sets them up so.
            for hostname, layers in plan.relayer_instances.items():
                self._state.members.instances[hostname].layers = list(layers)
            if created or plan.changes:
                self._event(EventKind.APPLIED, "; ".join(plan.changes) or "no changes")
            self._changed()
            if plan.converge_users and workflow.patched(patches.USERS_CONFIGURE):
                # Users converge on configure: one round now, not at the next event.
                self._state.members.configure_pending = True
            # Started together, not one after another: each await is a round trip.
            self._state.loops.scaling = scaling_after_apply(
                request.spec, self._state.members.instances, self._state.loops.scaling
            )
            # One snapshot for every start this apply sends (their setup runs read it).
            snapshot = await self._snapshot()
            await self._each(
                list(plan.create_instances.items()),
                lambda item: self._create_instance(
                    item[0],
                    item[1],
                    from_file=True,
                    start=item[0] not in plan.stay_stopped,
                    snapshot=snapshot,
                ),
            )
            await self._send_all(
                plan.restart_instances, lambda h: self._start_command_for(h, snapshot)
            )
            await self._send_all(
                plan.delete_instances,
                lambda _: self._command(InstanceCommandKind.DELETE, snapshot),
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
        check_origin(request.origin)
        self._refuse_if_deleting()
        problems = conflicts(self._state.applied.spec, self._state.members.instances, request.spec)
        if problems:
            raise invalid("; ".join(problems))

    @workflow.update
    async def delete(self, request: DeleteStackInput | None = None) -> DeleteStackResult:
        """`stack delete`; `request` is None from clients before the origin check."""
        async with self._lock:
            self._state.deleting = True
            self._event(EventKind.DELETING, "stack delete requested")
            await self._stop_layer_loops(HEALING, list(self._state.loops.healing))
            await self._stop_layer_loops(LOAD_SCALING, list(self._state.loops.load_scaling))
            await self._sync_schedules({})
            # Every instance's shutdown run reads this one snapshot (not a query each).
            snapshot = await self._snapshot()
            hostnames = sorted(self._state.members.instances)
            await self._send_all(
                hostnames, lambda _: self._command(InstanceCommandKind.DELETE, snapshot)
            )
            return DeleteStackResult(instances=hostnames)

    @delete.validator
    def _validate_delete(self, request: DeleteStackInput | None = None) -> None:
        check_origin(request.origin if request is not None else None)
        self._refuse_if_deleting()

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

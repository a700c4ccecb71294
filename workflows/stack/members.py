"""Membership: instances added, registered, started/stopped/deleted; their status as the
instances report it; the configure rounds that follow (coalesced)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from opsflow.errors import ErrorType

with workflow.unsafe.imports_passed_through():
    from activities import names as activity
    from opsflow import configure, names
    from opsflow.events import EventKind
    from opsflow.messages import (
        AddInstanceInput,
        AttachHostInput,
        InstanceActionInput,
        InstanceActionKind,
        InstanceChanged,
        InstanceCommand,
        InstanceCommandKind,
        InstanceView,
        RegisterInstanceInput,
        RegisterInstanceResult,
        StackEvent,
    )
    from opsflow.spec import Provider, RegisteredHostSpec
    from opsflow.status import (
        InstanceStatus,
        entered_or_left_online,
        why_not_delete,
        why_not_start,
        why_not_stop,
    )
    from workflows import common, handlers
    from workflows.failures import invalid, not_found
    from workflows.instance import failure_message
    from workflows.origin import check as check_origin
    from workflows.stack.base import StackBase, refusals


# A host to register did not answer as given: an operation that failed (exit 1).


class MembersMixin(StackBase):
    async def _configure_round(self) -> None:
        # Changes that arrive during the quiet period join this round.
        await workflow.sleep(timedelta(seconds=configure.QUIET_PERIOD_SECONDS))
        self._state.members.configure_pending = False
        self._configuring = True
        try:
            # The round's runs read the generation that caused it (or a newer one).
            snapshot = await self._snapshot()
            self._state.members.configure_rounds += 1
            generation = self._state.members.configure_rounds
            online = sorted(
                h
                for h, v in self._state.members.instances.items()
                if v.status == InstanceStatus.ONLINE
            )
            self._event(
                EventKind.CONFIGURE,
                f"configure round {generation} on {len(online)} online instance(s)",
                details={"instances": online},
            )
            command = InstanceCommand(
                id=f"configure-{generation}",
                kind=InstanceCommandKind.RUN,
                event="configure",
                generation=generation,
                snapshot=snapshot,
            )
            await self._send_all(online, lambda _: command)
        finally:
            self._configuring = False

    @workflow.update
    async def add_instance(self, request: AddInstanceInput) -> InstanceView:
        async with self._lock:
            await self._create_instance(
                request.hostname, request.layers, from_file=False, start=request.start
            )
            return self._state.members.instances[request.hostname]

    @add_instance.validator
    def _validate_add_instance(self, request: AddInstanceInput) -> None:
        check_origin(request.origin)
        spec = self._spec()
        if spec.provider == Provider.REGISTERED:
            raise invalid(
                f"stack {spec.name} is provider registered: opsflow launches no machines for "
                "it; bring a host in with `opsflow instance register`"
            )
        self._check_new_instance(request.layers, request.hostname)

    def _check_new_instance(self, layers: list[str], hostname: str) -> None:
        self._refuse_if_deleting()
        spec = self._spec()
        for layer in layers:
            if spec.layer(layer) is None:
                known = ", ".join(item.name for item in spec.layers) or "none"
                raise not_found(f"stack {spec.name} has no layer {layer!r} (layers: {known})")
        problem = spec.layers_problem(layers)
        if problem is not None:
            raise invalid(f"--layer: {problem}")
        with refusals():
            names.check_hostname(hostname)
        if hostname in self._state.members.instances:
            raise invalid(f"stack {spec.name} already has an instance {hostname!r}")

    @workflow.update
    async def register_instance(self, request: RegisterInstanceInput) -> RegisterInstanceResult:
        """An existing SSH host joins its layers (OpsWorks' register): checked and its host
        key pinned first, so a host that does not answer leaves nothing behind; then set
        up and brought online like any instance."""
        async with self._lock:
            pinned = await self._attach_hosts(self._spec().name, {request.hostname: request.host})
            if request.hostname in self._state.members.instances:  # registered meanwhile
                raise invalid(f"stack {self._spec().name} already has {request.hostname!r}")
            self._state.applied.registered |= pinned
            await self._create_instance(
                request.hostname,
                request.layers,
                from_file=False,
                start=True,
                provider=Provider.REGISTERED,
            )
            host_key = pinned[request.hostname].host_key
            assert host_key is not None  # attach_host pins one
            return RegisterInstanceResult(
                view=self._state.members.instances[request.hostname], host_key=host_key
            )

    @register_instance.validator
    def _validate_register_instance(self, request: RegisterInstanceInput) -> None:
        check_origin(request.origin)
        self._check_new_instance(request.layers, request.hostname)

    @workflow.update
    async def instance_action(self, request: InstanceActionInput) -> InstanceView:
        kind = InstanceCommandKind(request.action.value)
        snapshot = await self._snapshot()
        command = (
            self._start_command_for(request.hostname, snapshot)
            if kind == InstanceCommandKind.START
            else self._command(kind, snapshot)
        )
        await self._send(request.hostname, command)
        return self._state.members.instances[request.hostname]

    @instance_action.validator
    def _validate_instance_action(self, request: InstanceActionInput) -> None:
        check_origin(request.origin)
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
            raise invalid(f"cannot {request.action.value} {request.hostname}: {why}")

    @workflow.signal(name=handlers.INSTANCE_CHANGED)
    def instance_changed(self, change: InstanceChanged) -> None:
        view = change.view
        before = self._state.members.instances.get(view.hostname)
        if before is None and view.status == InstanceStatus.TERMINATED:
            return
        if entered_or_left_online(before.status if before else None, view.status):
            self._state.members.configure_pending = True
        if before is None or before.status != view.status:
            self._event(
                EventKind.INSTANCE_STATUS,
                f"{view.hostname}: {before.status.value if before else 'new'} -> "
                f"{view.status.value}" + (f" ({view.message})" if view.message else ""),
                hostname=view.hostname,
            )
        self._changed()
        if view.status == InstanceStatus.TERMINATED:
            self._state.members.instances.pop(view.hostname, None)
            self._state.applied.registered.pop(view.hostname, None)  # deregistered
        else:
            self._state.members.instances[view.hostname] = view

    @workflow.signal(name=handlers.RECORD_EVENT)
    def record_event(self, event: StackEvent) -> None:
        """An event from a healing loop (or another of the stack's workflows)."""
        self._state.record(event)

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
                type=ErrorType.REGISTER_FAILED,
                non_retryable=True,
            )
        return {
            hostname: result
            for hostname, result in zip(names_, results, strict=True)
            if isinstance(result, RegisteredHostSpec)
        }

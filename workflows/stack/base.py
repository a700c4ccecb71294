"""What every part of the stack workflow shares: its state, the lock, how it starts an
instance, sends commands, records events and refuses bad requests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ChildWorkflowHandle, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities import names as activity
    from opsflow import names
    from opsflow.app_releases import current_releases
    from opsflow.errors import InvalidInput, NotFound
    from opsflow.events import EventKind
    from opsflow.messages import (
        FetchCookbooksInput,
        InstanceCommand,
        InstanceCommandKind,
        InstanceView,
        PublishSnapshotInput,
        ResolvedCookbooks,
        SnapshotRef,
        StackEvent,
    )
    from opsflow.spec import Provider, StackSpec
    from opsflow.starts import start_command
    from opsflow.state import InstanceState, StackState
    from opsflow.status import InstanceStatus
    from opsflow.targets import instance_of
    from workflows import common
    from workflows.failures import invalid, not_found
    from workflows.instance import InstanceWorkflow, failure_message
    from workflows.stack import patches

_T = TypeVar("_T")


# Publishing a configuration snapshot: one query and one small write; a store that does
# not answer within a few tries leaves the runs to ask the stack instead.
SNAPSHOT_TIMEOUT = timedelta(minutes=1)
SNAPSHOT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=5,
    non_retryable_error_types=common.NOT_RETRYABLE,
)

# The failure's type when the workflow a signal was sent to has ended.
ENDED = "ExternalWorkflowExecutionNotFound"


@contextmanager
def refusals() -> Iterator[None]:
    """opsflow's pure checks raise its own errors; an update refuses with their type."""
    try:
        yield
    except NotFound as err:
        raise not_found(str(err)) from None
    except InvalidInput as err:
        raise invalid(str(err)) from None


def detach(child: ChildWorkflowHandle[Any, Any]) -> None:
    """Children outlive the stack's interest in them (they report by signal): observe their
    end so a cancelled or failed child is not reported as an unretrieved exception."""
    child.add_done_callback(lambda done: done.cancelled() or done.exception())


class StackBase:
    """The stack workflow's state and shared steps; the mixins beside it add the
    handlers of one concern each."""

    _state: StackState
    # Guards state across the awaits of apply/add/delete (starting children), so two
    # updates never interleave half-applied changes.
    _lock: asyncio.Lock
    # A snapshot publish is in flight (at most one: later asks wait for it).
    _publishing: bool
    _configuring: bool

    async def _create_instance(
        self,
        hostname: str,
        layers: list[str],
        *,
        from_file: bool,
        start: bool,
        provider: Provider | None = None,
        snapshot: str | None = None,
    ) -> None:
        spec = self._spec()
        view = InstanceView(
            hostname=hostname,
            layers=list(layers),
            provider=provider or spec.provider,
            from_file=from_file,
            status=InstanceStatus.REQUESTED if start else InstanceStatus.STOPPED,
            updated_at=workflow.now(),
        )
        self._state.members.instances[hostname] = view
        self._changed()
        where = f"layer {layers[0]}" if len(layers) == 1 else f"layers {', '.join(layers)}"
        self._event(EventKind.INSTANCE_ADDED, f"{hostname} added to {where}", hostname=hostname)
        queue = [self._start_command(layers, hostname, snapshot)] if start else []
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
                SearchAttributePair(common.LAYER_ATTRIBUTE, layers[0]),
            ),
        )
        detach(child)

    async def _send(self, hostname: str, command: InstanceCommand) -> None:
        handle = workflow.get_external_workflow_handle(
            names.instance_workflow_id(self._spec().name, hostname)
        )
        try:
            await handle.signal(InstanceWorkflow.enqueue, command)
        except ApplicationError as err:
            # The instance's workflow has ended (deleted, its report of that not read
            # yet; or ended by hand): one gone instance must not fail a delete or a
            # configure round of all the others.
            if err.type != ENDED or not workflow.patched(patches.SEND_TO_ENDED):
                raise
            self._instance_ended(hostname)

    def _instance_ended(self, hostname: str) -> None:
        """Forget an instance whose workflow has ended: nothing can reach it any more (a
        deleted one reports terminated before it ends; that report may still be on its
        way, and then it has nothing left to do)."""
        view = self._state.members.instances.pop(hostname, None)
        if view is None:
            return
        self._state.applied.registered.pop(hostname, None)
        self._changed()
        if view.status == InstanceStatus.ONLINE:
            self._state.members.configure_pending = True
        self._event(
            EventKind.INSTANCE_STATUS,
            f"{hostname}: {view.status.value} -> gone (its workflow has ended)",
            hostname=hostname,
        )

    async def _send_all(
        self, hostnames: Iterable[str], make: Callable[[str], InstanceCommand]
    ) -> None:
        await self._each(list(hostnames), lambda hostname: self._send(hostname, make(hostname)))

    async def _each(self, items: Sequence[_T], act: Callable[[_T], Awaitable[object]]) -> None:
        """`act` on every item at once. A workflow task must end within the SDK's 2 s
        deadlock limit: a thousand commands (and their payloads) in one can take longer on
        a busy worker, so a large fan-out goes SEND_CHUNK at a time, a workflow task each."""
        if len(items) <= common.SEND_CHUNK or not workflow.patched(common.PATCH_SEND_IN_CHUNKS):
            await asyncio.gather(*(act(item) for item in items))
            return
        for first in range(0, len(items), common.SEND_CHUNK):
            await asyncio.gather(*(act(item) for item in items[first : first + common.SEND_CHUNK]))

    def _command(self, kind: InstanceCommandKind, snapshot: str | None = None) -> InstanceCommand:
        return InstanceCommand(
            id=f"{kind.value}-{workflow.uuid4().hex[:8]}", kind=kind, snapshot=snapshot
        )

    def _start_command(
        self, layers: list[str], hostname: str, snapshot: str | None = None
    ) -> InstanceCommand:
        """Start = launch, setup, then the current release of each app on its layers."""
        spec = self._spec()
        command = start_command(
            self._command(InstanceCommandKind.START).id,
            spec,
            layers,
            hostname,
            current_releases(spec, self._state.commands.apps, self._state.applied.rds, layers),
            self._state.applied.registered.get(hostname),
        )
        return command.model_copy(update={"snapshot": snapshot}) if snapshot else command

    def _start_command_for(self, hostname: str, snapshot: str | None = None) -> InstanceCommand:
        layers = self._state.members.instances[hostname].layers
        if not layers:
            return self._command(InstanceCommandKind.START)
        return self._start_command(layers, hostname, snapshot)

    def _changed(self) -> None:
        """Something a run's configuration shows changed: a new configuration generation."""
        self._state.members.generation += 1

    async def _snapshot(self) -> str | None:
        """The digest of a configuration snapshot at least as new as the generation now,
        published first when there is none yet. Asks that come while a publish is in
        flight wait for it (bursts of changes coalesce into one publish), then publish
        once more only if the generation has moved past what that one published. None
        for runs recorded before snapshots (their runs ask the stack)."""
        if not workflow.patched(patches.SNAPSHOTS):
            return None
        wanted = self._state.members.generation
        while True:
            published = self._state.members.snapshot
            if published is not None and published.generation >= wanted:
                return published.digest
            if self._publishing:
                await workflow.wait_condition(lambda: not self._publishing)
                continue
            self._publishing = True
            try:
                ref: SnapshotRef = await workflow.execute_activity(
                    activity.PUBLISH_SNAPSHOT,
                    PublishSnapshotInput(stack=self._spec().name, generation=wanted),
                    result_type=SnapshotRef,
                    start_to_close_timeout=SNAPSHOT_TIMEOUT,
                    retry_policy=SNAPSHOT_RETRY,
                )
            except ActivityError as err:
                # The store cannot be written: these runs ask the stack, as before.
                self._event(
                    EventKind.SNAPSHOT_FAILED,
                    f"configuration snapshot not published: {failure_message(err)[0]}",
                )
                return None
            finally:
                self._publishing = False
            if published is None or ref.generation > published.generation:
                self._state.members.snapshot = ref
            return ref.digest  # as new as `wanted` at least: asked after it

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

    def _tags(self, *pairs: SearchAttributePair[str]) -> TypedSearchAttributes | None:
        return TypedSearchAttributes(list(pairs)) if self._state.tag_runs else None

    def _instance(self, hostname: str) -> InstanceView:
        with refusals():
            return instance_of(self._spec(), self._state.members.instances, hostname)

    def _spec(self) -> StackSpec:
        if self._state.applied.spec is None:
            raise not_found("the stack has not been applied yet")
        return self._state.applied.spec

    def _refuse_if_deleting(self) -> None:
        if self._state.deleting:
            raise invalid("the stack is being deleted")

    def _deleted(self) -> bool:
        return self._state.deleting and not self._state.members.instances

    def _event(
        self,
        kind: EventKind,
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

"""Configuration snapshots in the artifact store: `publish_snapshot` writes the stack's
current generation (asked of the stack workflow once, a query; only its digest goes back
into history), and `SnapshotReader` reads one for a recipe run, cached per digest on this
worker (a digest names one content for ever)."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from functools import lru_cache

from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities import names
from opsflow import names as opsflow_names
from opsflow import snapshots
from opsflow.messages import ConfigurationSnapshot, PublishSnapshotInput, SnapshotRef
from opsflow.settings import artifacts_location
from runtime.artifacts import ArtifactStore, open_store
from workflows import handlers
from workflows.failures import not_found

# Snapshots kept decoded on a worker: a few generations of a few stacks.
CACHED_SNAPSHOTS = 16


@lru_cache(maxsize=4)
def _store_at(location: str) -> ArtifactStore:
    return open_store(location)


def store() -> ArtifactStore:
    """This worker's store (OPSFLOW_ARTIFACTS), opened once per location."""
    return _store_at(artifacts_location())


class SnapshotActivities:
    def __init__(self, client: Client) -> None:
        self._client = client

    @activity.defn(name=names.PUBLISH_SNAPSHOT)
    async def publish_snapshot(self, request: PublishSnapshotInput) -> SnapshotRef:
        stack = request.stack
        handle = self._client.get_workflow_handle(opsflow_names.stack_workflow_id(stack))
        try:
            snapshot: ConfigurationSnapshot = await handle.query(
                handlers.CONFIGURATION_SNAPSHOT, result_type=ConfigurationSnapshot
            )
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise not_found(f"stack {stack} does not exist") from None
            raise  # the server or the stack's worker is busy: retry
        data = snapshots.encode(snapshot)
        target = store()
        digest = await asyncio.to_thread(target.put, data)
        pointer = snapshots.POINTER.format(stack=stack)
        await asyncio.to_thread(target.write_named, pointer, digest.encode())
        return SnapshotRef(generation=snapshot.generation, digest=digest, size=len(data))


class SnapshotReader:
    """Snapshots by digest, read from the store once per worker process."""

    def __init__(self) -> None:
        self._cache: OrderedDict[str, ConfigurationSnapshot] = OrderedDict()
        self._reading: dict[str, asyncio.Future[ConfigurationSnapshot]] = {}

    async def read(self, digest: str) -> ConfigurationSnapshot:
        found = self._cache.get(digest)
        if found is not None:
            self._cache.move_to_end(digest)
            return found
        # Runs starting together on many instances share one read.
        reading = self._reading.get(digest)
        if reading is None:
            reading = asyncio.ensure_future(self._load(digest))
            self._reading[digest] = reading
        try:
            return await asyncio.shield(reading)
        finally:
            if reading.done():
                self._reading.pop(digest, None)

    async def _load(self, digest: str) -> ConfigurationSnapshot:
        data = await asyncio.to_thread(store().get, digest)  # verified against the digest
        snapshot = snapshots.decode(data)
        self._cache[digest] = snapshot
        while len(self._cache) > CACHED_SNAPSHOTS:
            self._cache.popitem(last=False)
        return snapshot

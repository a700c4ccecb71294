"""The public key secure values are sealed with: published by the workers in the artifact
store, chosen by the CLI, and the origin (store + key fingerprint) every change carries.

A worker publishes the public key of its secret key as the named object `keys/public.json`
when it starts (`publish_key`). A store holds one key: a worker whose key differs from the
one already published refuses to start, naming both fingerprints, so workers with
different keys are caught before any change reaches them (to change the key, stop the
workers and delete `keys/public.json`).

The CLI seals with (`sealing_key`), in order:
1. OPSFLOW_SECRET_KEY when set: an explicit choice is kept even if the store's published
   key differs; the workers then refuse the change naming both fingerprints;
2. the key published in the store: what a CLI on another machine needs;
3. an existing `$OPSFLOW_HOME/secret.key` (the embedded default before any worker ran).
A secret.key left on a laptop thus never overrides the workers' published key. With
none of them, sealing a value is refused (exit 2) saying to start a worker.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass

from opsflow import settings
from opsflow.errors import InvalidInput
from opsflow.origin import ClientOrigin
from opsflow.secrets import SecureValue, fingerprint, public_key, seal
from runtime.artifacts import ArtifactStore, open_store

PUBLISHED = "keys/public.json"


@dataclass(frozen=True)
class SealingKey:
    public: bytes
    fingerprint: str
    source: str  # where it came from, for messages


def _of(key: bytes, source: str) -> SealingKey:
    public = public_key(key)
    return SealingKey(public, fingerprint(public), source)


def published_key(store: ArtifactStore) -> SealingKey | None:
    """The public key the workers published in `store`; None if none has."""
    data = store.read_named(PUBLISHED)
    if data is None:
        return None
    where = f"{store.location}: {PUBLISHED}"
    try:
        document = json.loads(data)
        public = base64.urlsafe_b64decode(document["public_key"].encode("ascii"))
        said = document["fingerprint"]
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        raise InvalidInput(
            f"{where} is not a published key: delete it and restart a worker"
        ) from None
    if len(public) != 32 or said != fingerprint(public):
        raise InvalidInput(f"{where} does not match its fingerprint: delete it, restart a worker")
    return SealingKey(public, said, f"the key published in {store.location}")


def publish_key(store: ArtifactStore, key: bytes) -> SealingKey:
    """Publish the public key of the worker's `key` in `store` (once: kept when there).

    InvalidInput when the store already holds another key: the workers of one store must
    share one secret key.
    """
    own = _of(key, "this worker's secret key")
    found = published_key(store)
    if found is None:
        text = base64.urlsafe_b64encode(own.public).decode("ascii")
        document = {"public_key": text, "fingerprint": own.fingerprint}
        store.write_named(PUBLISHED, json.dumps(document, sort_keys=True).encode())
        # Read back: of two workers starting at once with different keys, one learns now.
        found = published_key(store)
    if found is None or found.fingerprint != own.fingerprint:
        raise InvalidInput(
            f"store {store.location} holds the public key "
            f"{found.fingerprint if found else '(none)'} of other workers, "
            f"but this worker's secret key is {own.fingerprint}: give every worker of a store "
            "the same OPSFLOW_SECRET_KEY (to change the key, stop the workers and delete "
            f"{PUBLISHED} from the store)"
        )
    return own


def sealing_key(store: ArtifactStore) -> SealingKey | None:
    """The key a CLI seals with (see the module's order); None without any."""
    local = settings.local_secret_key()
    if local is not None and os.environ.get("OPSFLOW_SECRET_KEY"):
        return _of(local, "OPSFLOW_SECRET_KEY")
    found = published_key(store)
    if found is not None:
        return found
    if local is not None:
        return _of(local, str(settings.opsflow_home() / "secret.key"))
    return None


def require_sealing_key(store: ArtifactStore) -> SealingKey:
    """`sealing_key`, or InvalidInput (exit 2) saying how to get one."""
    found = sealing_key(store)
    if found is None:
        raise InvalidInput(
            f"no worker has published a public key to {store.location}: start a worker "
            "(`opsflow worker`, or `opsflow dev up`) with the same OPSFLOW_ARTIFACTS, or set "
            "OPSFLOW_SECRET_KEY as the workers have it"
        )
    return found


def client_origin(store: ArtifactStore | None = None) -> ClientOrigin:
    """What a CLI's changes carry: its store (default: OPSFLOW_ARTIFACTS's) and the
    fingerprint it seals with."""
    store = store or open_store()
    found = sealing_key(store)
    return ClientOrigin(store=store.location, key_fingerprint=found and found.fingerprint)


def worker_origin(store: ArtifactStore, key: bytes) -> ClientOrigin:
    """A worker's own store and key, after publishing the key (see `publish_key`)."""
    return ClientOrigin(store=store.location, key_fingerprint=publish_key(store, key).fingerprint)


class Sealer:
    """Seals a CLI's secure values, finding the key (and opening the store) only when the
    first value is sealed: a stack file without secure values needs neither."""

    def __init__(self, store: ArtifactStore | None = None, key: SealingKey | None = None) -> None:
        self._store = store
        self._key = key

    @classmethod
    def throwaway(cls) -> Sealer:
        """Seals to a fresh key nobody keeps: for a spec that never leaves this process
        (`stack plan`), so checking a file needs no workers' key."""
        from opsflow.secrets import new_key

        return cls(key=_of(new_key(), "a throwaway key"))

    def seal(self, plaintext: str) -> SecureValue:
        if self._key is None:
            self._key = require_sealing_key(self._store or open_store())
        return seal(self._key.public, plaintext)

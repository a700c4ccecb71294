"""The public key workers publish in the store, and which key a CLI seals with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsflow.errors import InvalidInput
from opsflow.secrets import decrypt, key_fingerprint, new_key
from runtime.artifacts import ArtifactStore, open_store
from runtime.sealing import (
    PUBLISHED,
    Sealer,
    client_origin,
    publish_key,
    published_key,
    sealing_key,
    worker_origin,
)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ArtifactStore:
    monkeypatch.setenv("OPSFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OPSFLOW_SECRET_KEY", raising=False)
    monkeypatch.delenv("OPSFLOW_ARTIFACTS", raising=False)
    return open_store(str(tmp_path / "store"))


def test_a_worker_publishes_its_public_key_once_and_others_with_it_agree(
    store: ArtifactStore,
) -> None:
    key = new_key()
    assert published_key(store) is None
    first = publish_key(store, key)
    assert first.fingerprint == key_fingerprint(key)
    document = json.loads(store.read_named(PUBLISHED) or b"")
    assert document["fingerprint"] == first.fingerprint
    assert key.decode() not in json.dumps(document)  # only the public half
    assert publish_key(store, key) == first  # a second worker with the same key
    found = published_key(store)
    assert found is not None and found.public == first.public
    origin = worker_origin(store, key)
    assert (origin.store, origin.key_fingerprint) == (store.location, first.fingerprint)


def test_a_worker_with_another_key_is_refused_naming_both_fingerprints(
    store: ArtifactStore,
) -> None:
    first, other = new_key(), new_key()
    publish_key(store, first)
    with pytest.raises(InvalidInput) as refused:
        publish_key(store, other)
    message = str(refused.value)
    assert key_fingerprint(first) in message and key_fingerprint(other) in message
    assert store.location in message and "OPSFLOW_SECRET_KEY" in message
    found = published_key(store)  # left as it was
    assert found is not None and found.fingerprint == key_fingerprint(first)


def test_a_damaged_published_key_is_invalid_input_naming_it(store: ArtifactStore) -> None:
    store.write_named(PUBLISHED, b"{not json")
    with pytest.raises(InvalidInput, match=f"{store.location}: {PUBLISHED} is not a published"):
        published_key(store)
    store.delete_named(PUBLISHED)
    publish_key(store, new_key())
    document = json.loads(store.read_named(PUBLISHED) or b"")
    store.write_named(PUBLISHED, json.dumps({**document, "fingerprint": "0" * 16}).encode())
    with pytest.raises(InvalidInput, match="does not match its fingerprint"):
        published_key(store)


def test_the_cli_seals_with_its_env_key_then_the_published_one_then_its_key_file(
    store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert sealing_key(store) is None
    assert client_origin(store).key_fingerprint is None
    home_key = new_key()
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "secret.key").write_bytes(home_key + b"\n")
    assert client_origin(store).key_fingerprint == key_fingerprint(home_key)
    workers = new_key()
    publish_key(store, workers)  # a leftover secret.key never overrides the workers' key
    assert client_origin(store).key_fingerprint == key_fingerprint(workers)
    explicit = new_key()
    monkeypatch.setenv("OPSFLOW_SECRET_KEY", explicit.decode())
    found = sealing_key(store)
    assert found is not None and found.fingerprint == key_fingerprint(explicit)
    assert found.source == "OPSFLOW_SECRET_KEY"


def test_a_sealer_finds_its_key_at_the_first_value_only(store: ArtifactStore) -> None:
    sealer = Sealer(store)  # no key anywhere yet: nothing asked
    workers = new_key()
    publish_key(store, workers)
    assert decrypt(workers, sealer.seal("s3cret")) == "s3cret"
    with pytest.raises(InvalidInput, match="no worker has published a public key"):
        Sealer(open_store(str(Path(store.location).parent / "empty"))).seal("x")

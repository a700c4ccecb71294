"""SSH private keys in a stack file: read by the CLI, sealed, the path kept for display;
and the key secure values are sealed with when the CLI has no secret key of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from client.stackfile import load_stack_file
from opsflow import settings
from opsflow.errors import InvalidInput, SpecError
from opsflow.secrets import decrypt, new_key
from runtime.artifacts import open_store
from runtime.sealing import publish_key
from tests.client.test_stackfile import REGISTERED as REGISTERED_AT
from tests.helpers import write_private_key

REGISTERED = REGISTERED_AT % "./deploy_key"

EC2 = """\
name: shop
provider: ec2
region: us-east-1
ec2: {ami: ami-0abc1234def567890, ssh_key_file: ./stack_key}
layers:
  - name: web
    ec2: {ssh_key_file: ./layer_key}
    instances:
      - hostname: web1
        ec2: {ssh_key_file: ./instance_key}
      - hostname: web2
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPSFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OPSFLOW_ARTIFACTS", raising=False)
    monkeypatch.setenv("OPSFLOW_SECRET_KEY", new_key().decode())
    return tmp_path


def test_a_registered_hosts_key_travels_sealed_and_its_path_stays_for_display(
    home: Path,
) -> None:
    key_file = write_private_key(home / "deploy_key")
    (home / "stack.yml").write_text(REGISTERED)
    spec = load_stack_file(home / "stack.yml")
    host = spec.layers[0].instances[0].ssh
    assert host is not None and host.key is not None
    assert host.key_file == str(key_file)
    assert decrypt(settings.secret_key(), host.key) == key_file.read_text()
    assert host.key_id is not None and host.key_id.startswith("SHA256:")
    body = key_file.read_text().splitlines()[1]
    assert body not in spec.model_dump_json()
    # Sealed again, the ciphertext differs but the host compares equal: no change planned.
    again = load_stack_file(home / "stack.yml").layers[0].instances[0].ssh
    assert again is not None and again.key != host.key and again == host


def test_ec2_key_files_of_stack_layer_and_instance_are_sealed(home: Path) -> None:
    keys = {name: write_private_key(home / name) for name in ("stack_key", "layer_key")}
    keys["instance_key"] = write_private_key(home / "instance_key")
    (home / "stack.yml").write_text(EC2)
    spec = load_stack_file(home / "stack.yml")
    layer = spec.layers[0]
    sealed = {
        "stack_key": spec.ec2,
        "layer_key": layer.ec2,
        "instance_key": layer.instances[0].ec2,
    }
    for name, options in sealed.items():
        assert options is not None and options.ssh_key is not None
        assert options.ssh_key_file == str(keys[name])
        assert decrypt(settings.secret_key(), options.ssh_key) == keys[name].read_text()
    assert layer.instances[1].ec2 is None


@pytest.mark.parametrize(
    "content",
    [b"not a key at all\n", b"-----BEGIN OPENSSH PRIVATE KEY-----\ngarbage\n", b"\xff\x00" * 10],
    ids=["text", "a broken key", "binary"],
)
def test_a_key_file_that_is_not_a_private_key_is_refused_naming_field_and_file(
    home: Path, content: bytes
) -> None:
    (home / "deploy_key").write_bytes(content)
    (home / "stack.yml").write_text(REGISTERED)
    with pytest.raises(SpecError) as caught:
        load_stack_file(home / "stack.yml")
    assert caught.value.problems == [
        f"layers[0].instances[0].ssh.key_file: {home / 'deploy_key'} is not an unencrypted "
        "SSH private key (ed25519, ecdsa or rsa)"
    ]


def test_a_key_protected_by_a_passphrase_is_refused(home: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    (home / "deploy_key").write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    (home / "stack.yml").write_text(REGISTERED)
    with pytest.raises(SpecError, match="is not an unencrypted SSH private key"):
        load_stack_file(home / "stack.yml")


def test_a_missing_key_file_is_refused_naming_the_field(home: Path) -> None:
    (home / "stack.yml").write_text(REGISTERED)
    with pytest.raises(SpecError) as caught:
        load_stack_file(home / "stack.yml")
    assert caught.value.problems == [
        f"layers[0].instances[0].ssh.key_file: './deploy_key' is not a file ({home / 'deploy_key'})"
    ]


def test_without_a_key_of_its_own_the_cli_seals_with_the_published_key(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker_key = new_key()
    monkeypatch.delenv("OPSFLOW_SECRET_KEY")
    write_private_key(home / "deploy_key")
    (home / "stack.yml").write_text(REGISTERED)
    with pytest.raises(InvalidInput) as refused:
        load_stack_file(home / "stack.yml")
    store = open_store()
    assert str(refused.value).startswith(
        f"no worker has published a public key to {store.location}: start a worker"
    )
    publish_key(store, worker_key)
    host = load_stack_file(home / "stack.yml").layers[0].instances[0].ssh
    assert host is not None and host.key is not None
    assert decrypt(worker_key, host.key) == (home / "deploy_key").read_text()
    assert not (home / "home" / "secret.key").exists()  # the CLI made no key of its own


def test_a_stack_file_without_secure_values_needs_no_key(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPSFLOW_SECRET_KEY")
    (home / "stack.yml").write_text("name: shop\n")
    assert load_stack_file(home / "stack.yml").name == "shop"

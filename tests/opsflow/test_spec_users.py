"""Stack users, the Chef version, and apps' domains, SSL, document root and type."""

from __future__ import annotations

import base64
import struct
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import ValidationError

from opsflow.spec import AppType, StackSpec
from opsflow.spec.users import ssh_public_key_problem


def public_key(comment: str = "alice@laptop") -> str:
    raw = Ed25519PrivateKey.generate().public_key()
    return raw.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode() + f" {comment}"


def stack(**extra: Any) -> dict[str, Any]:
    return {"name": "s", "layers": [{"name": "app"}, {"name": "db"}], **extra}


def problem_of(raw: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        StackSpec.model_validate(raw)
    return str(caught.value)


def test_users_are_accepted_with_their_key_sudo_and_layers() -> None:
    key = public_key()
    spec = StackSpec.model_validate(
        stack(users=[{"name": "alice", "ssh_public_key": key, "sudo": True, "layers": ["db"]}])
    )
    (user,) = spec.users
    assert (user.name, user.ssh_public_key, user.sudo, user.layers) == ("alice", key, True, ["db"])


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ({"name": "Alice"}, "is not a Unix user name"),
        ({"name": "root"}, "is a system account"),
        ({"name": "a" * 40}, "is not a Unix user name"),
        ({"layers": ["web"]}, "users[0].layers: unknown layer(s) ['web']"),
        ({"ssh_public_key": "ssh-ed25519"}, "must be `TYPE BASE64 [comment]`"),
        ({"ssh_public_key": "ssh-foo AAAA"}, "is not one OpenSSH takes"),
        ({"ssh_public_key": "ssh-ed25519 not/base64!"}, "does not decode"),
        ({"uid": 12}, "greater than or equal to 1000"),
    ],
)
def test_a_malformed_user_is_refused_naming_the_problem(
    user: dict[str, Any], expected: str
) -> None:
    raw = stack(users=[{"name": "alice", "ssh_public_key": public_key(), **user}])
    assert expected in problem_of(raw)


def test_a_key_whose_data_is_another_type_is_refused() -> None:
    blob = base64.b64encode(struct.pack(">I", 7) + b"ssh-rsa" + b"\0" * 8).decode()
    assert ssh_public_key_problem(f"ssh-ed25519 {blob}") == (
        "the key says 'ssh-ed25519' but its data is a 'ssh-rsa' key"
    )
    assert (
        ssh_public_key_problem(public_key() + "\n" + public_key()) == "must be one line (one key)"
    )


def test_a_user_listed_twice_is_refused() -> None:
    twice = [{"name": "bob", "ssh_public_key": public_key()}] * 2
    assert "users[1].name: user 'bob' is listed twice" in problem_of(stack(users=twice))


@pytest.mark.parametrize(
    ("written", "version"), [(12, "12"), ("12", "12"), (11.10, "11.10"), ("11.4", "11.4")]
)
def test_the_chef_versions_opsworks_had_are_taken(written: Any, version: str) -> None:
    spec = StackSpec.model_validate(stack(chef={"version": written}))
    assert spec.chef.version == version
    assert spec.chef.data_bags == (version == "12")


@pytest.mark.parametrize("written", [13, "12.5", 0.9, "latest"])
def test_a_chef_version_opsworks_did_not_have_is_refused(written: Any) -> None:
    assert "is not a version OpsWorks Stacks had on Linux" in problem_of(
        stack(chef={"version": written})
    )


def test_the_default_chef_is_11_10_with_attributes() -> None:
    spec = StackSpec.model_validate(stack())
    assert (spec.chef.version, spec.chef.data_bags) == ("11.10", False)


CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_an_app_carries_type_domains_document_root_and_attributes() -> None:
    app = {
        "name": "store",
        "layers": ["app"],
        "type": "php",
        "domains": ["shop.example.com", "*.example.org"],
        "document_root": "web/public",
        "attributes": {"RailsEnv": None, "AutoBundleOnDeploy": "true"},
    }
    (parsed,) = StackSpec.model_validate(stack(apps=[app])).apps
    assert parsed.type == AppType.PHP
    assert parsed.domains == ["shop.example.com", "*.example.org"]
    assert parsed.document_root == "web/public"
    assert parsed.attributes == {"RailsEnv": None, "AutoBundleOnDeploy": "true"}


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("domains", ["not a domain"], "is not a domain name"),
        ("document_root", "../etc", "must be a path inside the release"),
        ("document_root", "/srv", "must be a path inside the release"),
        ("type", "cobol", "Input should be"),
        ("ssl", {"certificate": "nope", "key": {"secure": True, "ciphertext": "x"}}, "PEM"),
        ("ssl", {"certificate": CERT, "key": "-----BEGIN PRIVATE KEY-----"}, "secure value"),
    ],
)
def test_a_malformed_app_field_is_refused(field: str, value: Any, expected: str) -> None:
    app = {"name": "store", "layers": ["app"], field: value}
    found = problem_of(stack(apps=[app]))
    assert expected in found
    assert "BEGIN PRIVATE KEY" not in found, "a plain key is never quoted"

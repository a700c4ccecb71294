"""Registered hosts in the stack file: how each is reached, and what such a stack refuses."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from opsflow.machines import hosts_to_attach, registered_hosts
from opsflow.spec import Provider, RegisteredHostSpec, StackSpec

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG0a7QxJ2k3Yp0CwqzYgYF2mhF9x8cdgQ6q5W7G7b7bX"


def host(**overrides: Any) -> dict[str, Any]:
    return {"host": "10.0.0.5", "key_file": "/keys/deploy", **overrides}


def stack(*instances: dict[str, Any], provider: str = "registered", **layer: Any) -> dict[str, Any]:
    return {
        "name": "legacy",
        "provider": provider,
        "layers": [{"name": "web", "instances": list(instances), **layer}],
    }


def test_a_registered_stack_names_each_host_with_opsworks_like_defaults() -> None:
    spec = StackSpec.model_validate(stack({"hostname": "web1", "ssh": host()}))
    ssh = spec.layers[0].instances[0].ssh
    assert spec.provider == Provider.REGISTERED
    assert ssh is not None
    assert (ssh.port, ssh.user, ssh.root, ssh.host_key) == (22, "root", "/", None)
    assert registered_hosts(spec) == {"web1": ssh}
    assert ssh.where() == "root@10.0.0.5:22"


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        (stack({"hostname": "web1"}), r"layers\[0\].instances\[0\].ssh: provider registered needs"),
        (
            stack({"hostname": "web1", "ssh": host()}, provider="local"),
            r"layers\[0\].instances\[0\].ssh: only for provider registered",
        ),
        (
            stack(
                {
                    "hostname": "web1",
                    "ssh": host(),
                    "scaling": "time",
                    "schedule": {"monday": "9-17"},
                }
            ),
            "provider registered cannot start or stop hosts",
        ),
        (
            stack({"hostname": "web1", "ssh": host()}, load_based_scaling={"max": 3}),
            r"layers\[0\].load_based_scaling: provider registered cannot",
        ),
        (stack({"hostname": "web1", "ssh": host(host="a b;rm")}), "host: 'a b;rm' is not"),
        (stack({"hostname": "web1", "ssh": host(user="Root Admin")}), "user: 'Root Admin'"),
        (stack({"hostname": "web1", "ssh": host(port=0)}), "greater than or equal to 1"),
        (stack({"hostname": "web1", "ssh": host(root="srv/x")}), "root: 'srv/x' must be"),
        (stack({"hostname": "web1", "ssh": host(root="/srv/../etc")}), "must be an absolute"),
        (stack({"hostname": "web1", "ssh": host(host_key="AAAA")}), "host_key: 'AAAA' is not"),
        (stack({"hostname": "web1", "ssh": {"host": "h"}}), "key_file"),
    ],
)
def test_bad_registered_hosts_are_refused_naming_the_field(
    document: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ValidationError, match=fragment):
        StackSpec.model_validate(document)


def test_only_new_or_changed_hosts_are_attached_and_a_learned_key_is_kept() -> None:
    declared = RegisteredHostSpec.model_validate(host())
    pinned = declared.model_copy(update={"host_key": KEY})
    assert hosts_to_attach({"web1": declared}, {}) == {"web1": declared}
    # The file names no key: the one learned at registration stays pinned.
    assert hosts_to_attach({"web1": declared}, {"web1": pinned}) == {}
    moved = declared.model_copy(update={"port": 2222})
    assert hosts_to_attach({"web1": moved}, {"web1": pinned}) == {"web1": moved}
    other_key = declared.model_copy(update={"host_key": KEY.replace("AAAAC3", "BBBBC3")})
    assert hosts_to_attach({"web1": other_key}, {"web1": pinned}) == {"web1": other_key}

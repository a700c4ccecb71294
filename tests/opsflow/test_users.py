"""Stack users on an instance: who it gets by its layers, on which events they are
converged, and the users file the remote step reads."""

from __future__ import annotations

from typing import Any

from opsflow import snapshots
from opsflow.messages import InstanceView
from opsflow.spec import StackSpec, UserSpec
from opsflow.users import instance_users, users_document, users_to_converge
from tests.opsflow.test_spec_users import public_key

ALICE_KEY = public_key("alice@laptop")
BOB_KEY = public_key("bob with spaces in the comment")


def spec(users: list[dict[str, Any]]) -> StackSpec:
    return StackSpec.model_validate(
        {
            "name": "s",
            "layers": [
                {"name": "a", "instances": [{"hostname": "a1"}]},
                {"name": "b", "instances": [{"hostname": "b1"}]},
                {"name": "c"},
            ],
            "users": users,
        }
    )


USERS = [
    {"name": "alice", "ssh_public_key": ALICE_KEY, "sudo": True},
    {"name": "bob", "ssh_public_key": BOB_KEY, "layers": ["b", "c"], "uid": 2001},
]


def names(users: list[UserSpec]) -> list[str]:
    return [u.name for u in users]


def test_a_user_without_layers_is_on_every_instance_and_one_with_layers_only_on_theirs() -> None:
    users = spec(USERS).users
    assert names(instance_users(users, ["a"])) == ["alice"]
    assert names(instance_users(users, ["b"])) == ["alice", "bob"]
    # An instance in several layers gets a user once, in the file's order.
    assert names(instance_users(users, ["c", "b", "a"])) == ["alice", "bob"]
    assert instance_users(users, []) == [users[0]]


def test_users_converge_on_setup_and_configure_only() -> None:
    users = spec(USERS).users
    for event in ("setup", "configure"):
        assert users_to_converge(event, users, runs_anyway=False) == users
    for event in ("deploy", "undeploy", "shutdown", "execute_recipes", "rollback"):
        assert users_to_converge(event, users, runs_anyway=True) is None


def test_a_stack_with_users_converges_even_to_none_and_without_recipes() -> None:
    """A user removed from the file (or from this instance's layers) must leave it, even
    when the layers have no configure recipe to run."""
    assert users_to_converge("configure", [], runs_anyway=False) == []


def test_a_stack_without_users_converges_to_none_only_in_a_run_that_happens_anyway() -> None:
    assert users_to_converge("configure", None, runs_anyway=True) == []
    assert users_to_converge("configure", None, runs_anyway=False) is None


def test_the_users_file_has_a_line_per_user_with_uid_sudo_and_the_whole_key() -> None:
    users = spec(USERS).users
    assert users_document(users) == (f"alice - 1 {ALICE_KEY}\nbob 2001 0 {BOB_KEY}\n")
    # The remote side splits on the first three blanks: the key keeps its own.
    for line, user in zip(users_document(users).splitlines(), users, strict=True):
        assert line.split(" ", 3)[3] == user.ssh_public_key
    assert users_document([]) == ""


def test_a_run_context_carries_its_instances_users_and_none_without_any() -> None:
    with_users = spec(USERS)
    snapshot = snapshots.configuration_snapshot(with_users, [], None, 1)
    a1 = InstanceView(hostname="a1", layers=["a"])
    b1 = InstanceView(hostname="b1", layers=["b"])
    context = snapshots.run_context(snapshot, a1, "configure")
    assert context.users is not None and names(context.users) == ["alice"]
    context = snapshots.run_context(snapshot, b1, "configure")
    assert context.users is not None and names(context.users) == ["alice", "bob"]
    # bob only: an instance none of whose users is left still says the stack has users.
    only_bob = spec(USERS[1:])
    context = snapshots.run_context(
        snapshots.configuration_snapshot(only_bob, [], None, 1), a1, "setup"
    )
    assert context.users == []
    without = snapshots.configuration_snapshot(spec([]), [], None, 1)
    assert snapshots.run_context(without, a1, "setup").users is None

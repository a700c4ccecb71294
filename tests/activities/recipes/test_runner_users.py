"""The runner's guard of the worker host's /etc: a local instance that is an sshd process
(not an isolated machine) shares it, so stack users are never converged there. (Users on
isolated machines: tests/integration/test_stack_users.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from opsflow.errors import ErrorType
from opsflow.messages import LaunchResult, RunContext
from opsflow.spec import ConfigurationManager, UserSpec
from tests.activities.conftest import Runner, run, runner_for, write_tree
from tests.opsflow.test_spec_users import public_key

pytestmark = pytest.mark.integration

ALICE = UserSpec(name="alice", ssh_public_key=public_key(), sudo=True)


def context(cookbooks: Path, users: list[UserSpec] | None) -> RunContext:
    return RunContext(
        configuration={},
        recipes=["web::mark"],
        configuration_manager=ConfigurationManager.SHELL,
        cookbooks_dir=str(cookbooks),
        users=users,
    )


@pytest.fixture
def cookbooks(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "cookbooks", {"web/mark.sh": "echo ran > marked.txt\n"})


async def test_users_on_an_instance_sharing_the_host_fail_the_run_before_anything_runs(
    cookbooks: Path, request_for: Runner, instance: LaunchResult
) -> None:
    assert instance.root != "/"  # an sshd process, not a machine
    passwd = Path("/etc/passwd").read_bytes()
    with pytest.raises(ApplicationError) as caught:
        await run(runner_for(context(cookbooks, [ALICE])), request_for("c1", event="configure"))
    assert caught.value.type == ErrorType.INVALID_INPUT and caught.value.non_retryable
    assert "shop/web1: users: this local instance is not an isolated machine" in str(caught.value)
    assert not (Path(instance.root) / "marked.txt").exists()
    assert not (Path(instance.root) / "var/lib/opsflow/runs/c1").exists()
    assert Path("/etc/passwd").read_bytes() == passwd


async def test_without_users_the_run_goes_on_with_no_user_step(
    cookbooks: Path, request_for: Runner, instance: LaunchResult
) -> None:
    """A stack with no users to give this instance: nothing to refuse, nothing touched."""
    for run_id, users in (("c2", []), ("c3", None)):
        result = await run(runner_for(context(cookbooks, users)), request_for(run_id))
        assert result.exit_code == 0
        assert "users:" not in result.log_tail
        assert (Path(instance.root) / "marked.txt").exists()
    assert not (Path(instance.root) / "var/lib/opsflow/users").exists()

"""Runs on hosts whose login user is not root (EC2 AMIs, registered hosts with --sudo) go
through `sudo -n`: the whole run, its wait and its report, over real SSH with real sudo."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.recipes.runner import RecipeActivities
from opsflow.errors import ErrorType
from opsflow.messages import LaunchResult, RunContext
from opsflow.spec import ConfigurationManager
from tests.activities.conftest import Runner, lines, run, runner_for, write_tree

pytestmark = pytest.mark.skipif(
    shutil.which("sudo") is None, reason="sudo is not installed (scripts/bootstrap.sh installs it)"
)

RECIPES = {
    "web/who.sh": 'echo "${SUDO_USER:-none} $(id -u)" > "$OPSFLOW_ROOT/who.txt"\necho ran\n',
    "web/fail.sh": "echo about to fail\nexit 4\n",
}


def acts(cookbooks: Path) -> RecipeActivities:
    return runner_for(
        RunContext(
            configuration={},
            recipes=[],
            configuration_manager=ConfigurationManager.SHELL,
            cookbooks_dir=str(cookbooks),
        )
    )


async def test_a_run_through_sudo_runs_as_root_and_reports_as_usual(
    tmp_path: Path, request_for: Runner, instance: LaunchResult
) -> None:
    cookbooks = write_tree(tmp_path / "cookbooks", RECIPES)
    through_sudo = instance.ssh.model_copy(update={"sudo": True})
    runner = acts(cookbooks)
    result = await run(
        runner, request_for("s1", ["web::who"]).model_copy(update={"ssh": through_sudo})
    )
    assert result.exit_code == 0 and "ran" in result.log_tail
    # sudo said who asked (SUDO_USER), and the recipe ran as uid 0.
    user = instance.ssh.user
    assert lines(Path(instance.root) / "who.txt") == [f"{user} 0"]

    with pytest.raises(ApplicationError) as failed:
        await run(runner, request_for("s2", ["web::fail"]).model_copy(update={"ssh": through_sudo}))
    assert failed.value.type == ErrorType.RECIPE_FAILED
    assert "recipe web::fail failed with exit code 4: about to fail" in failed.value.message

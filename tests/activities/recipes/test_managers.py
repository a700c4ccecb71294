"""Each manager's part of the run script (scripts/manager-*.sh) on its own: which tool it
finds and the exact command line it runs for one recipe, with fake tools on PATH (Chef is
not packaged for this Debian, so a real chef run is not tested here)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from activities import remote_script
from activities.recipes import managers
from activities.recipes.layout import Layout
from opsflow.spec import ConfigurationManager

LAYOUT = Layout(root="/srv/an instance", run_id="r1", digest="ab" * 16)
# A fake tool: prints its name and each argument on a line, exits with $FAKE_EXIT.
FAKE = """#!/bin/sh
echo "$(basename "$0")"; for a in "$@"; do echo "$a"; done
exit "${FAKE_EXIT:-0}"
"""


def run_part(
    manager: ConfigurationManager, bin_dir: Path, tools: list[str], exit_code: int = 0
) -> tuple[int, list[str]]:
    bin_dir.mkdir(exist_ok=True)
    for tool in tools:
        (bin_dir / tool).write_text(FAKE)
        (bin_dir / tool).chmod(0o755)
    values = {
        "OPSFLOW_RUN_DIR": LAYOUT.run,
        "OPSFLOW_COOKBOOKS": LAYOUT.cookbooks,
        **managers.script_values(manager, LAYOUT),
    }
    script = remote_script.compose(
        "activities.recipes", [f"scripts/{managers.SCRIPTS[manager]}"], values
    )
    # As run.sh does: tool once, then invoke in a subshell per recipe.
    script += '\ntool\n[ -z "$missing" ] || { echo "missing: $missing"; exit 127; }\n'
    script += '( invoke web::deploy "$OPSFLOW_COOKBOOKS/web/x" )\n'
    done = subprocess.run(
        ["sh", "-c", script],
        capture_output=True,
        text=True,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "FAKE_EXIT": str(exit_code)},
        check=False,
    )
    return done.returncode, done.stdout.splitlines()


def test_chef_prefers_cinc_client_in_local_mode_with_client_rb(tmp_path: Path) -> None:
    code, argv = run_part(
        ConfigurationManager.CHEF, tmp_path, ["cinc-client", "chef-client", "chef-solo"]
    )
    assert code == 0
    assert argv == [
        "cinc-client",
        *("-z", "--no-color", "-F", "doc", "-c", f"{LAYOUT.run}/client.rb"),
        *("-j", f"{LAYOUT.run}/node.json", "-o", "recipe[web::deploy]"),
    ]


def test_chef_solo_alone_runs_with_solo_rb(tmp_path: Path) -> None:
    code, argv = run_part(ConfigurationManager.CHEF, tmp_path, ["chef-solo"], exit_code=3)
    assert code == 3
    assert argv == [
        "chef-solo",
        *("--no-color", "-F", "doc", "-c", f"{LAYOUT.run}/solo.rb"),
        *("-j", f"{LAYOUT.run}/node.json", "-o", "recipe[web::deploy]"),
    ]


def test_without_chef_the_run_says_so(tmp_path: Path) -> None:
    code, said = run_part(ConfigurationManager.CHEF, tmp_path, [])
    assert code == 127
    assert said[0].startswith("missing: no chef-client, cinc-client or chef-solo found")


@pytest.mark.parametrize(("tool_exit", "step_exit"), [(0, 0), (2, 0), (1, 1), (4, 4)])
def test_puppet_applies_the_class_with_its_own_dirs_and_detailed_exit_codes(
    tmp_path: Path, tool_exit: int, step_exit: int
) -> None:
    code, argv = run_part(ConfigurationManager.PUPPET, tmp_path, ["puppet"], tool_exit)
    state = f"{LAYOUT.state}/puppet"
    assert code == step_exit
    assert argv == [
        "puppet",
        *("apply", "--detailed-exitcodes", "--color=false", f"--modulepath={LAYOUT.cookbooks}"),
        *(f"--confdir={state}/conf", f"--vardir={state}/var", f"--codedir={state}/code"),
        *(f"--logdir={state}/log", f"--rundir={state}/run", f"--publicdir={state}/public"),
        *(f"--hiera_config={LAYOUT.run}/hiera.yaml", "-e", "include web::deploy"),
    ]


def test_a_shell_recipe_runs_with_sh_unless_executable(tmp_path: Path) -> None:
    recipe = tmp_path / "x.sh"
    recipe.write_text('echo "ran with $0"\n')
    script = remote_script.body("activities.recipes", "scripts/manager-shell.sh")
    script += f'tool; ( invoke web::x "{recipe}" ); echo "missing=$missing"'
    said = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    assert said.stdout.splitlines() == [f"ran with {recipe}", "missing="]

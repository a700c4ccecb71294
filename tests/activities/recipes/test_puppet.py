"""Puppet recipes end to end: real `puppet apply` on a real local instance.

puppet apply takes seconds (Ruby, facter), so these tests are few and each applies once.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.recipes.runner import RecipeActivities
from opsflow.errors import ErrorType
from opsflow.messages import LaunchResult, RunContext
from opsflow.spec import ConfigurationManager
from runtime import run_logs
from tests.activities.conftest import STACK, Runner, lines, run, runner_for, write_tree

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("puppet") is None and not Path("/opt/puppetlabs/bin/puppet").exists(),
        reason="no puppet on this machine (scripts/bootstrap.sh installs puppet-agent)",
    ),
]

CONFIGURATION = {
    "opsflow": {
        "stack": {"name": STACK},
        "instance": {"hostname": "web1", "layers": ["web"]},
        "layers": {
            "web": {"name": "web", "instances": {"web2": {"status": "online"}, "web1": {}}},
        },
    },
    "shop": {"greeting": "hello 'there'"},
}

MANIFESTS = {
    "web/manifests/show.pp": """
class web::show {
  $hosts = join(sort(keys(lookup('opsflow.layers')['web']['instances'])), ',')
  file { "${facts['opsflow_root']}/show.txt":
    content => @("END"),
      hosts=${hosts}
      me=${lookup('opsflow.instance.hostname')}
      greeting=${lookup('shop.greeting')}
      facts=${facts['opsflow_stack']} ${facts['opsflow_instance']} ${facts['opsflow_event']}
      attributes=${facts['opsflow_attributes']}
      | END
  }
  exec { 'pwd > cwd.txt': provider => shell }
}
""",
    "web/manifests/init.pp": """
class web (String $greeting = 'main class') {
  file { "${facts['opsflow_root']}/init.txt": content => "${greeting}\n" }
}
""",
    "web/manifests/broken.pp": "class web::broken {\n  file { '/tmp/x'\n}\n",
    "web/manifests/fail.pp": "class web::fail {\n  exec { 'exit 1': provider => shell }\n}\n",
}


@pytest.fixture
def puppet(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "modules", MANIFESTS)


def activities_for(modules: Path) -> RecipeActivities:
    return runner_for(
        RunContext(
            configuration=CONFIGURATION,
            recipes=[],
            configuration_manager=ConfigurationManager.PUPPET,
            cookbooks_dir=str(modules),
        )
    )


async def test_a_manifest_reads_the_stack_configuration_through_hiera_and_facts(
    puppet: Path, request_for: Runner, instance: LaunchResult
) -> None:
    acts = activities_for(puppet)
    result = await run(acts, request_for("p1", ["web::show"], event="configure"))

    root = Path(instance.root)
    state = root / "var/lib/opsflow"
    assert result.exit_code == 0  # puppet said 2 (changes made): a success
    assert lines(root / "show.txt") == [
        "hosts=web1,web2",
        "me=web1",
        "greeting=hello 'there'",
        f"facts={STACK} web1 configure",
        f"attributes={state}/runs/p1/attributes.json",
    ]
    assert lines(root / "cwd.txt") == [instance.root]
    # Puppet's own state is this instance's, not the host's.
    assert (state / "puppet/var").is_dir() and (state / "puppet/public").is_dir()
    meta, text = run_logs.read_run_log(STACK, "web1", "p1")
    assert meta["configuration_manager"] == "puppet" and "Applied catalog" in text


async def test_a_syntax_error_fails_with_puppets_own_error_and_ends_the_run(
    puppet: Path, request_for: Runner, instance: LaunchResult
) -> None:
    acts = activities_for(puppet)
    with pytest.raises(ApplicationError) as raised:
        await run(acts, request_for("p1", ["web::broken", "web::show"]))
    error = raised.value
    assert error.type == ErrorType.RECIPE_FAILED and error.non_retryable
    assert error.message.startswith(
        f"{STACK}/web1: recipe web::broken failed with exit code 1: Error: "
    )
    assert "Syntax error at" in error.message and "broken.pp" in error.message
    assert not (Path(instance.root) / "show.txt").exists()


async def test_a_failing_resource_fails_the_recipe(puppet: Path, request_for: Runner) -> None:
    acts = activities_for(puppet)
    with pytest.raises(ApplicationError) as raised:
        await run(acts, request_for("p1", ["web::fail"]))
    # --detailed-exitcodes: 4 (or 6) means resources failed, even though it compiled
    assert "recipe web::fail failed with exit code 4: Error: " in raised.value.message
    assert "returned 1 instead of one of [0]" in raised.value.message


async def test_module_init_is_the_modules_main_class(
    puppet: Path, request_for: Runner, instance: LaunchResult
) -> None:
    result = await run(activities_for(puppet), request_for("p4", ["web::init"]))
    assert result.exit_code == 0
    assert lines(Path(instance.root) / "init.txt") == ["main class"]

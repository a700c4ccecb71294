"""Chef recipes: what the runner stages on the instance (always), and a real run (only
where chef-client, cinc-client or chef-solo exists: Chef is not packaged for Debian 12).

No fake chef binary: the staging test reads back, over SSH, exactly what a real chef
would be given.
"""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from activities.recipes.runner import RecipeActivities
from opsflow.attributes import stack_configuration
from opsflow.errors import ErrorType
from opsflow.messages import InstanceView, LaunchResult, RecipeRunResult, RunContext
from opsflow.spec import ConfigurationManager, StackSpec
from opsflow.status import InstanceStatus
from runtime import run_logs
from tests.activities.conftest import (
    STACK,
    Runner,
    lines,
    remote_file,
    run,
    runner_for,
    write_tree,
)

pytestmark = pytest.mark.integration

CHEF = next(
    (
        shutil.which(name)
        for name in ("cinc-client", "chef-client", "chef-solo")
        if shutil.which(name)
    ),
    None,
)

# The real document (opsflow.attributes) of a ported stack, whose custom JSON sets an
# `opsworks` key of its own: kept, merged over OpsWorks' document.
SPEC = StackSpec.model_validate(
    {
        "name": STACK,
        "configuration_manager": "chef",
        "custom_json": {"opsworks": {"ruby_version": "2.6"}},
        "layers": [{"name": "web"}],
        "apps": [{"name": "shop", "layers": ["web"], "deploy_to": "/srv/shop"}],
    }
)
WEB = [
    InstanceView(hostname=h, layers=["web"], status=InstanceStatus.ONLINE, root="/")
    for h in ("web1", "web2")
]
CONFIGURATION: dict[str, Any] = stack_configuration(SPEC, WEB, WEB[0], "deploy")

RECIPES = {
    "web/metadata.rb": "name 'web'\nversion '0.1.0'\n",
    "web/recipes/deploy.rb": """
hosts = node['opsworks']['layers']['web']['instances'].keys.sort.join(',')
file File.join(ENV['OPSFLOW_ROOT'], 'chef.txt') do
  me = node['opsworks']['instance']['hostname']
  content "#{hosts} #{me} #{node['deploy']['shop']['deploy_to']}\\n"
end
""",
    "web/recipes/fail.rb": "raise 'the disk is full'\n",
}


@pytest.fixture
def cookbooks(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "cookbooks", RECIPES)


def activities_for(cookbooks: Path) -> RecipeActivities:
    return runner_for(
        RunContext(
            configuration=CONFIGURATION,
            recipes=[],
            configuration_manager=ConfigurationManager.CHEF,
            cookbooks_dir=str(cookbooks),
        )
    )


async def test_what_the_chef_runner_stages_on_the_instance(
    cookbooks: Path, request_for: Runner, instance: LaunchResult
) -> None:
    outcome: RecipeRunResult | ApplicationError
    try:
        outcome = await run(activities_for(cookbooks), request_for("c1", ["web::deploy"]))
    except ApplicationError as failed:
        outcome = failed
    if CHEF is None:  # no chef here: a clear failure naming stack, instance and recipe
        assert isinstance(outcome, ApplicationError) and outcome.type == ErrorType.RECIPE_FAILED
        assert outcome.message.startswith(
            f"{STACK}/web1: recipe web::deploy failed with exit code 127: opsflow: no "
            "chef-client, cinc-client or chef-solo found on this instance"
        )
    else:
        assert isinstance(outcome, RecipeRunResult) and outcome.exit_code == 0

    state = f"{instance.root}/var/lib/opsflow"
    run_dir = f"{state}/runs/c1"
    node = json.loads(remote_file(instance, f"{run_dir}/node.json"))
    assert node["opsflow"] == CONFIGURATION["opsflow"]
    assert node["opsworks"] == CONFIGURATION["opsworks"]
    assert node["opsworks"]["ruby_version"] == "2.6"
    assert node["opsworks"]["instance"]["hostname"] == "web1"
    assert node["deploy"] == CONFIGURATION["deploy"]
    assert remote_file(instance, f"{run_dir}/recipes") == "web::deploy\n"

    (staged,) = Path(state, "cookbooks").iterdir()
    client = remote_file(instance, f"{run_dir}/client.rb").splitlines()
    assert "local_mode true" in client
    assert f"cookbook_path ['{staged}']" in client
    assert "node_name 'web1'" in client
    assert "log_location STDOUT" in client
    assert "chef_license 'accept-silent'" in client
    assert f"file_cache_path '{state}/chef/cache'" in client
    assert f"node_path '{run_dir}/chef-nodes'" in client
    solo = remote_file(instance, f"{run_dir}/solo.rb").splitlines()
    assert "local_mode true" not in solo and f"cookbook_path ['{staged}']" in solo
    assert (
        remote_file(instance, f"{staged}/web/recipes/deploy.rb") == RECIPES["web/recipes/deploy.rb"]
    )
    # the run list: one recipe per chef invocation (run.sh's header gives the recipes and
    # their files; the chef part invokes the tool once per recipe)
    script = remote_file(instance, f"{run_dir}/run.sh")
    assert f"OPSFLOW_COOKBOOKS={shlex.quote(str(staged))}\n" in script
    assert "OPSFLOW_RECIPES=web::deploy\nOPSFLOW_RECIPE_FILES=web/recipes/deploy.rb\n" in script
    assert '-o "recipe[$1]"' in script
    meta, _ = run_logs.read_run_log(STACK, "web1", "c1")
    assert meta["configuration_manager"] == "chef"


@pytest.mark.skipif(
    CHEF is None,
    reason="no chef-client, cinc-client or chef-solo on this machine "
    "(Chef is not packaged for Debian 12)",
)
async def test_chef_recipes_run_and_the_first_failure_ends_the_run(
    cookbooks: Path, request_for: Runner, instance: LaunchResult
) -> None:
    acts = activities_for(cookbooks)
    result = await run(acts, request_for("c1", ["web::deploy"]))
    assert result.exit_code == 0
    assert lines(Path(instance.root) / "chef.txt") == ["web1,web2 web1 /srv/shop"]

    with pytest.raises(ApplicationError) as raised:
        await run(acts, request_for("c2", ["web::fail", "web::deploy"]))
    assert "recipe web::fail failed" in raised.value.message
    assert "the disk is full" in str(raised.value.details[0])

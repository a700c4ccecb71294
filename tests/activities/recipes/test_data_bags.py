"""Chef 12 stacks: the data bags a run stages on the instance (`data_bags/BAG/ITEM.json`,
root-only, secure values revealed there and nowhere else) and `data_bag_path` in the
generated client.rb and solo.rb; read back over SSH from a real local instance.

Chef is not packaged for Debian 12, so no `search()` runs here: the files are compared
with what Chef's local-mode loader takes (one JSON object per item file, its `id` the
file's name), and a contract check with Debian's `ruby` loads each one with JSON.parse.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from activities import ssh
from activities.recipes.runner import RecipeActivities
from opsflow import settings
from opsflow.messages import LaunchResult, RunContext
from opsflow.secrets import MASK, encrypt
from opsflow.spec import ConfigurationManager
from runtime import run_logs
from tests.activities.conftest import STACK, Runner, remote_file, run, runner_for, write_tree

pytestmark = pytest.mark.integration

SECRET = "s3cr3t-data-bag-value"
BAGS_DIR = "data_bags"

RECIPES = {
    "web/metadata.rb": "name 'web'\nversion '0.1.0'\n",
    "web/recipes/deploy.rb": "search(:aws_opsworks_app, 'deploy:true').each { |a| log a['id'] }\n",
    # A careless shell recipe printing a whole item, secret and all.
    "web/show.sh": 'cat "$(dirname "$OPSFLOW_ATTRIBUTES")/data_bags/aws_opsworks_app/shop.json"\n',
}


def bags() -> dict[str, dict[str, dict[str, Any]]]:
    sealed = encrypt(settings.secret_key(), SECRET).model_dump()
    return {
        "aws_opsworks_app": {
            "shop": {"name": "shop", "deploy": True, "environment": {"TOKEN": sealed}},
            "blog": {"id": "blog", "name": "blog", "deploy": False},
        },
        "aws_opsworks_instance": {
            "web1": {"hostname": "web1", "self": True},
            "web2": {"hostname": "web2", "self": False},
        },
        "aws_opsworks_ecs_cluster": {},
    }


def activities_for(
    cookbooks: Path, manager: ConfigurationManager, data_bags: Any
) -> RecipeActivities:
    return runner_for(
        RunContext(
            configuration={"opsflow": {"stack": {"name": STACK}}},
            recipes=[],
            configuration_manager=manager,
            cookbooks_dir=str(cookbooks),
            data_bags=data_bags,
        )
    )


def modes(instance: LaunchResult, directory: str) -> dict[str, str]:
    """`relative path -> "mode owner"` of everything under `directory` on the instance."""
    command = f"cd {ssh.quote(directory)} && find . -exec stat -c '%n %a %U' {{}} +"
    code, out, err = ssh.run(instance.ssh, command)
    assert code == 0, err
    found = dict(line.split(" ", 1) for line in out.splitlines())
    return {name.removeprefix("./"): value for name, value in found.items()}


async def test_a_chef_12_run_stages_its_data_bags_root_only_and_points_chef_at_them(
    tmp_path: Path, request_for: Runner, instance: LaunchResult
) -> None:
    cookbooks = write_tree(tmp_path / "cookbooks", RECIPES)
    acts = activities_for(cookbooks, ConfigurationManager.CHEF, bags())
    try:  # without chef here the run fails (no chef-client): what it staged stays
        await run(acts, request_for("b1", ["web::deploy"]))
    except ApplicationError as failed:
        assert "no chef-client, cinc-client or chef-solo" in failed.message
        assert SECRET not in failed.message and SECRET not in str(failed.details)

    run_dir = f"{instance.root}/var/lib/opsflow/runs/b1"
    bags_dir = f"{run_dir}/{BAGS_DIR}"
    for name in ("client.rb", "solo.rb"):
        assert f"data_bag_path '{bags_dir}'" in remote_file(instance, f"{run_dir}/{name}")
    assert json.loads(remote_file(instance, f"{bags_dir}/aws_opsworks_app/shop.json")) == {
        "id": "shop",  # Chef's loader wants it: the item's file name
        "name": "shop",
        "deploy": True,
        "environment": {"TOKEN": SECRET},  # revealed on the instance only
    }
    assert json.loads(remote_file(instance, f"{bags_dir}/aws_opsworks_instance/web1.json")) == {
        "id": "web1",
        "hostname": "web1",
        "self": True,
    }
    assert modes(instance, bags_dir) == {
        ".": "700 root",
        "aws_opsworks_app": "700 root",
        "aws_opsworks_app/shop.json": "600 root",
        "aws_opsworks_app/blog.json": "600 root",
        "aws_opsworks_instance": "700 root",
        "aws_opsworks_instance/web1.json": "600 root",
        "aws_opsworks_instance/web2.json": "600 root",
        # An empty bag is an empty directory: Chef's local mode fails a search() of a bag
        # that does not exist, and OpsWorks always gave all nine.
        "aws_opsworks_ecs_cluster": "700 root",
    }
    meta, log = run_logs.read_run_log(STACK, "web1", "b1")
    assert SECRET not in log and meta["configuration_manager"] == "chef"


async def test_a_secret_a_recipe_prints_from_a_data_bag_is_redacted(
    tmp_path: Path, request_for: Runner, instance: LaunchResult
) -> None:
    cookbooks = write_tree(tmp_path / "cookbooks", RECIPES)
    acts = activities_for(cookbooks, ConfigurationManager.SHELL, bags())
    result = await run(acts, request_for("b2", ["web::show"]))
    assert SECRET not in result.log_tail
    assert f'"TOKEN": "{MASK}"' in result.log_tail
    _, log = run_logs.read_run_log(STACK, "web1", "b2")
    assert SECRET not in log and MASK in log
    # the shell run has the same files, but no chef configuration
    run_dir = f"{instance.root}/var/lib/opsflow/runs/b2"
    code, out, _ = ssh.run(instance.ssh, f"ls {ssh.quote(run_dir)}")
    assert code == 0 and BAGS_DIR in out.split() and "client.rb" not in out.split()


async def test_a_chef_11_run_has_no_data_bags(
    tmp_path: Path, request_for: Runner, instance: LaunchResult
) -> None:
    cookbooks = write_tree(tmp_path / "cookbooks", RECIPES)
    acts = activities_for(cookbooks, ConfigurationManager.CHEF, None)
    with pytest.raises(ApplicationError):  # no chef here
        await run(acts, request_for("b3", ["web::deploy"]))
    run_dir = f"{instance.root}/var/lib/opsflow/runs/b3"
    assert "data_bag_path" not in remote_file(instance, f"{run_dir}/client.rb")
    code, out, _ = ssh.run(instance.ssh, f"ls {ssh.quote(run_dir)}")
    assert code == 0 and BAGS_DIR not in out.split()


@pytest.mark.parametrize(
    ("bags", "problem"),
    [
        ({"../etc": {}}, "invalid data bag name '../etc'"),
        ({"aws_opsworks_app": {"a/b": {}}}, "invalid item id 'a/b'"),
        ({"aws_opsworks_app": {"shop": {"id": "blog"}}}, "item 'shop' has id 'blog'"),
    ],
)
async def test_bad_data_bag_names_are_refused_before_anything_runs(
    tmp_path: Path,
    request_for: Runner,
    instance: LaunchResult,
    bags: Any,
    problem: str,
) -> None:
    cookbooks = write_tree(tmp_path / "cookbooks", RECIPES)
    acts = activities_for(cookbooks, ConfigurationManager.CHEF, bags)
    with pytest.raises(ApplicationError, match=problem) as raised:
        await run(acts, request_for("b4", ["web::deploy"]))
    assert raised.value.non_retryable
    assert not Path(instance.root, "var/lib/opsflow/runs/b4").exists()


@pytest.mark.skipif(shutil.which("ruby") is None, reason="no ruby here (apt package ruby)")
async def test_contract_check_ruby_json_parse_loads_each_item_as_chef_local_mode_would(
    tmp_path: Path, request_for: Runner, instance: LaunchResult
) -> None:
    """Contract check (no Chef here): what Chef's local-mode data bag loader does with
    each file: JSON.parse into a Hash whose `id` is the file's name, in a directory named
    after the bag; run with Debian's ruby on the instance, over SSH."""
    cookbooks = write_tree(tmp_path / "cookbooks", RECIPES)
    acts = activities_for(cookbooks, ConfigurationManager.CHEF, bags())
    with pytest.raises(ApplicationError):  # no chef here
        await run(acts, request_for("b5", ["web::deploy"]))
    bags_dir = f"{instance.root}/var/lib/opsflow/runs/b5/{BAGS_DIR}"
    script = (
        "require 'json'; found = {}; "
        "Dir.children(ARGV[0]).sort.each { |bag| found[bag] = []; "
        "Dir.glob(File.join(ARGV[0], bag, '*.json')).sort.each { |f| "
        "item = JSON.parse(File.read(f)); raise 'not a Hash' unless item.is_a?(Hash); "
        "raise \"#{f}: id #{item['id']}\" unless item['id'] == File.basename(f, '.json'); "
        "found[bag] << item['id'] } }; "
        "puts JSON.generate(found)"
    )
    code, out, err = ssh.run(instance.ssh, f"ruby -e {ssh.quote(script)} {ssh.quote(bags_dir)}")
    assert code == 0, err
    assert json.loads(out) == {
        "aws_opsworks_app": ["blog", "shop"],
        "aws_opsworks_ecs_cluster": [],  # an empty bag: there, with no item
        "aws_opsworks_instance": ["web1", "web2"],
    }

"""Puppet recipes and git/archive cookbook sources through the real worker and CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from client.api import OpsflowClient
from tests.activities.cookbook_fixtures import git, http_server, write_tree
from tests.integration.conftest import REPO, opsflow_cli

pytestmark = pytest.mark.integration


@pytest.fixture
def address(dev_env: WorkflowEnvironment) -> str:
    return dev_env.client.service_client.config.target_host


async def test_the_puppet_example_comes_online_and_configures_from_hiera(
    opsflow: OpsflowClient, address: str, task_queue: str, tmp_path: Path, opsflow_home: Path
) -> None:
    if shutil.which("puppet") is None:
        pytest.fail("puppet is not installed: scripts/bootstrap.sh installs puppet-agent")
    stack_file = REPO / "examples" / "puppet-shop" / "stack.yml"
    applied = await opsflow_cli(
        ["stack", "apply", str(stack_file), "--wait"], address, task_queue, timeout=300
    )
    assert applied.returncode == 0, applied.stderr
    ran = await opsflow_cli(
        ["run", "puppet-shop", "configure", "--layer", "web", "--wait"], address, task_queue
    )
    assert ran.returncode == 0, ran.stderr
    roots = opsflow_home / "instances" / "puppet-shop"
    assert (roots / "web2" / "root/srv/www/index.html").read_text() == "hello from web2\n"
    assert (roots / "web1" / "root/etc/peers.txt").read_text() == "web: web1 web2\ndb: db1\n"
    assert (roots / "db1" / "root/var/lib/shopdb").is_dir()  # the shell layer ran too
    deleted = await opsflow_cli(["stack", "delete", "puppet-shop", "--wait"], address, task_queue)
    assert deleted.returncode == 0, deleted.stderr


BODY = """\
layers:
  - name: app
    recipes: {setup: [app::setup]}
    instances: [{hostname: app1}]
"""


def cookbook_repo(root: Path) -> Path:
    root.mkdir()
    git(root, "init", "--quiet", "--initial-branch=main")
    write_tree(root, {"cookbooks/app/setup.sh": "echo from v1 > fetched\n"})
    git(root, "add", "--all")
    git(root, "commit", "--quiet", "-m", "v1")
    git(root, "tag", "v1")
    write_tree(root, {"cookbooks/app/setup.sh": "echo from v2 > fetched\n"})
    git(root, "commit", "--quiet", "-am", "v2")
    return root


async def test_git_cookbooks_at_a_revision_and_a_revision_that_does_not_exist(
    opsflow: OpsflowClient, address: str, task_queue: str, tmp_path: Path, opsflow_home: Path
) -> None:
    repo = cookbook_repo(tmp_path / "repo")
    stack_file = tmp_path / "stack.yml"
    source = f"cookbooks: {{git: 'file://{repo}', revision: v1, path: cookbooks}}\n"
    stack_file.write_text("name: gitshop\n" + source + BODY)
    applied = await opsflow_cli(["stack", "apply", str(stack_file), "--wait"], address, task_queue)
    assert applied.returncode == 0, applied.stderr
    fetched = opsflow_home / "instances" / "gitshop" / "app1" / "root" / "fetched"
    assert fetched.read_text() == "from v1\n"

    stack_file.write_text("name: gitbad\n" + source.replace("v1", "v9") + BODY)
    refused = await opsflow_cli(["stack", "apply", str(stack_file), "--wait"], address, task_queue)
    assert refused.returncode == 1
    assert "stack gitbad: cannot fetch cookbooks from git file://" in refused.stderr
    assert "v9" in refused.stderr
    gone = await opsflow_cli(["stack", "describe", "gitbad"], address, task_queue)
    assert gone.returncode == 2, "a stack whose cookbooks cannot be fetched is not created"

    stack_file.write_text(
        "name: gitshop\n" + source.replace("revision: v1", "revision: main") + BODY
    )
    assert (
        await opsflow_cli(["stack", "apply", str(stack_file)], address, task_queue)
    ).returncode == 0
    updated = await opsflow_cli(
        ["run", "gitshop", "update_custom_cookbooks", "--wait"], address, task_queue
    )
    assert updated.returncode == 0, updated.stderr
    setup = await opsflow_cli(["run", "gitshop", "setup", "--wait"], address, task_queue)
    assert setup.returncode == 0, setup.stderr
    assert fetched.read_text() == "from v2\n"
    await opsflow_cli(["stack", "delete", "gitshop", "--wait"], address, task_queue)


async def test_an_archive_that_is_not_a_tar_gz_is_refused_with_exit_1(
    opsflow: OpsflowClient, address: str, task_queue: str, tmp_path: Path
) -> None:
    served = tmp_path / "served"
    served.mkdir()
    (served / "cookbooks.tar.gz").write_text("this is not an archive\n")
    with http_server(served) as url:
        stack_file = tmp_path / "stack.yml"
        stack_file.write_text(
            f"name: tarbad\ncookbooks: {{archive: '{url}/cookbooks.tar.gz'}}\n" + BODY
        )
        refused = await opsflow_cli(["stack", "apply", str(stack_file)], address, task_queue)
    assert refused.returncode == 1
    assert "stack tarbad: cannot fetch cookbooks from archive http://127.0.0.1:" in refused.stderr
    assert "not a .tar.gz" in refused.stderr

"""App deployments through the real CLI, worker, runner and sshd instances."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from client.api import OpsflowClient
from tests.integration.conftest import make_stack_dir, opsflow_cli

pytestmark = pytest.mark.integration

BODY = """\
layers:
  - name: web
    recipes: {setup: [app::setup], deploy: [app::deploy], undeploy: [app::undeploy]}
    instances: [{hostname: web1}, {hostname: web2}]
apps:
  - name: hello
    layers: [web]
    source: {source: ./app}
    environment:
      GREETING: hi
      TOKEN: {value: sup3rs3cret, secure: true}
"""
RECIPES = {
    "app::setup": "echo set up\n",
    "app::deploy": (
        'echo "deploying $OPSFLOW_RELEASE with token $TOKEN"\n'
        'cp "$OPSFLOW_RELEASE_PATH/index.html" served.html\n'
        'echo "$GREETING $OPSFLOW_RELEASE" >> deploys\n'
        'echo "$OPSFLOW_EVENT $OPSFLOW_RELEASE" >> events\n'
    ),
    "app::undeploy": "rm -f served.html\n",
}


@pytest.fixture
def address(dev_env: WorkflowEnvironment) -> str:
    return dev_env.client.service_client.config.target_host


async def test_deploy_twice_roll_back_list_describe_and_undeploy(
    opsflow: OpsflowClient, address: str, task_queue: str, tmp_path: Path, opsflow_home: Path
) -> None:
    stack_file = make_stack_dir(tmp_path, "deployshop", BODY, RECIPES)
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "index.html").write_text("v1\n")
    applied = await opsflow_cli(["stack", "apply", str(stack_file), "--wait"], address, task_queue)
    assert applied.returncode == 0, applied.stderr
    described = await opsflow_cli(
        ["stack", "describe", "deployshop", "-o", "json"], address, task_queue
    )
    assert "sup3rs3cret" not in described.stdout and "******" in described.stdout

    first = await opsflow_cli(
        ["deploy", "deployshop", "hello", "--wait", "-o", "json"], address, task_queue
    )
    assert first.returncode == 0, first.stderr
    (tmp_path / "app" / "index.html").write_text("v2\n")
    second = await opsflow_cli(
        [
            "deploy",
            "deployshop",
            "hello",
            "--strategy",
            "rolling",
            "--batch",
            "1",
            "--wait",
            "-o",
            "json",
        ],
        address,
        task_queue,
    )
    assert second.returncode == 0, second.stderr
    roots = opsflow_home / "instances" / "deployshop"
    for host in ("web1", "web2"):
        root = roots / host / "root"
        assert (root / "served.html").read_text() == "v2\n"
        current = (root / "srv/www/hello/current").resolve()
        assert (current / "index.html").read_text() == "v2\n"
        assert [line.split()[0] for line in (root / "deploys").read_text().splitlines()] == [
            "hi",
            "hi",
        ]

    listed = await opsflow_cli(
        ["deployments", "list", "deployshop", "-o", "json"], address, task_queue
    )
    deployments = json.loads(listed.stdout)
    assert [d["command"] for d in deployments[:2]] == ["deploy", "deploy"]
    assert deployments[0]["strategy"] == "rolling" and deployments[0]["status"] == "successful"
    assert {"id", "app", "command", "strategy", "status", "started_at", "finished_at"} <= set(
        deployments[0]
    )
    latest = deployments[0]["id"]
    detail = await opsflow_cli(
        ["deployments", "describe", latest, "-o", "json"], address, task_queue
    )
    instances = json.loads(detail.stdout)["instances"]
    assert [i["status"] for i in instances] == ["successful", "successful"]
    assert all(i["release"] == deployments[0]["release"] for i in instances)
    logs = await opsflow_cli(["deployments", "describe", latest, "--logs"], address, task_queue)
    assert logs.returncode == 0, logs.stderr
    assert "with token ******" in logs.stdout and "sup3rs3cret" not in logs.stdout

    # deployments carry stack, app and status search attributes: the UI filters on them
    query = "OpsflowStack = 'deployshop' AND OpsflowApp = 'hello' AND OpsflowStatus = 'successful'"
    found: set[str] = set()
    for _ in range(50):
        found = {w.id async for w in opsflow.temporal.list_workflows(query)}
        if len(found) >= 2:
            break
        await asyncio.sleep(0.2)
    assert {d["id"] for d in deployments[:2]} <= found

    release = deployments[0]["release"]
    restarted = await opsflow_cli(
        ["run", "deployshop", "restart", "--app", "hello", "--wait"], address, task_queue
    )
    assert restarted.returncode == 0, restarted.stderr
    events = (roots / "web1" / "root" / "events").read_text().splitlines()
    assert events[-1] == f"restart {release}"  # deploy recipes, current release, event set

    back = await opsflow_cli(["rollback", "deployshop", "hello", "--wait"], address, task_queue)
    assert back.returncode == 0, back.stderr
    for host in ("web1", "web2"):
        current = (roots / host / "root/srv/www/hello/current").resolve()
        assert (current / "index.html").read_text() == "v1\n"
    forward = await opsflow_cli(
        ["rollback", "deployshop", "hello", "--to", release, "--wait"], address, task_queue
    )
    assert forward.returncode == 0, forward.stderr
    assert (roots / "web2" / "root/srv/www/hello/current").resolve().name == release
    missing = await opsflow_cli(
        ["rollback", "deployshop", "hello", "--to", "0099-nope", "--wait"], address, task_queue
    )
    assert missing.returncode == 1 and "no release 0099-nope of hello on web1" in missing.stderr

    gone = await opsflow_cli(
        ["run", "deployshop", "undeploy", "--app", "hello", "--wait"], address, task_queue
    )
    assert gone.returncode == 0, gone.stderr
    assert not (roots / "web1" / "root/srv/www/hello").exists()
    assert not (roots / "web1" / "root/served.html").exists()

    for bad, message in (
        (["--batch", "0", "--strategy", "rolling"], "--batch"),
        (["--max-failures", "150%"], "--max-failures"),
    ):
        refused = await opsflow_cli(["deploy", "deployshop", "hello", *bad], address, task_queue)
        assert refused.returncode == 2 and message in refused.stderr
    unknown = await opsflow_cli(["deploy", "deployshop", "nope"], address, task_queue)
    assert unknown.returncode == 2 and "no app 'nope'" in unknown.stderr
    await opsflow_cli(["stack", "delete", "deployshop", "--wait"], address, task_queue)

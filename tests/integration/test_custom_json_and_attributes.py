"""A command's own custom JSON (`run --custom-json`) reaches its recipes over the stack's,
is kept with the deployment; `instance attributes` prints what a recipe sees, secrets
masked. Real dev server, worker, sshd and CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from client.api import OpsflowClient
from tests.integration.conftest import make_stack_dir, opsflow_cli

pytestmark = pytest.mark.integration

SECRET = "sup3rs3cret-attr"
BODY = f"""\
custom_json: {{shop: {{greeting: hi, who: stack}}}}
layers:
  - name: app
    recipes: {{setup: [app::noop], configure: [app::show]}}
    instances: [{{hostname: app1}}]
apps:
  - name: store
    layers: [app]
    environment:
      MODE: prod
      TOKEN: {{value: {SECRET}, secure: true}}
"""
RECIPES = {
    "app::noop": "true\n",
    # Each run keeps its own copy: an automatic configure cannot overwrite the one looked at.
    "app::show": 'cp "$OPSFLOW_ATTRIBUTES" "attributes-$OPSFLOW_RUN_ID.json"\n',
}


@pytest.fixture
def address(dev_env: WorkflowEnvironment) -> str:
    return dev_env.client.service_client.config.target_host


async def test_run_custom_json_is_seen_over_the_stacks_and_attributes_show_it_all(
    opsflow: OpsflowClient, address: str, task_queue: str, tmp_path: Path, opsflow_home: Path
) -> None:
    stack_file = make_stack_dir(tmp_path, "cjshop", BODY, RECIPES)
    applied = await opsflow_cli(["stack", "apply", str(stack_file), "--wait"], address, task_queue)
    assert applied.returncode == 0, applied.stderr
    root = opsflow_home / "instances" / "cjshop" / "app1" / "root"

    extra = {"x": {"y": 1}, "shop": {"greeting": "hej"}}
    ran = await opsflow_cli(
        ["run", "cjshop", "configure", "--custom-json", json.dumps(extra), "--wait", "-o", "json"],
        address,
        task_queue,
    )
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)
    seen = json.loads((root / f"attributes-{result['instances'][0]['run_id']}.json").read_text())
    assert seen["x"] == {"y": 1}
    assert seen["shop"] == {"greeting": "hej", "who": "stack"}  # over the stack's, key by key

    described = await opsflow_cli(
        ["deployments", "describe", result["id"], "-o", "json"], address, task_queue
    )
    assert described.returncode == 0, described.stderr
    assert json.loads(described.stdout)["custom_json"] == extra
    table = await opsflow_cli(["deployments", "describe", result["id"]], address, task_queue)
    assert 'custom json: {"shop": {"greeting": "hej"}, "x": {"y": 1}}' in table.stdout

    plain = await opsflow_cli(
        ["run", "cjshop", "configure", "--wait", "-o", "json"], address, task_queue
    )
    assert plain.returncode == 0, plain.stderr
    run_id = json.loads(plain.stdout)["instances"][0]["run_id"]
    seen = json.loads((root / f"attributes-{run_id}.json").read_text())
    assert "x" not in seen and seen["shop"] == {"greeting": "hi", "who": "stack"}

    refused = await opsflow_cli(
        ["run", "cjshop", "configure", "--custom-json", "[1]"], address, task_queue
    )
    assert refused.returncode == 2
    assert "--custom-json" in refused.stderr and "must be a JSON object" in refused.stderr

    # What a recipe on app1 sees: shell, so the attributes document.
    shown = await opsflow_cli(["instance", "attributes", "cjshop", "app1"], address, task_queue)
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert {"opsflow", "deploy", "shop"} <= set(document)
    assert document["opsflow"]["activity"] == "configure"
    assert document["opsflow"]["instance"]["hostname"] == "app1"

    deploy = await opsflow_cli(
        ["instance", "attributes", "cjshop", "app1", "--app", "store", "--format", "chef11"],
        address,
        task_queue,
    )
    assert deploy.returncode == 0, deploy.stderr
    node = json.loads(deploy.stdout)
    assert node["opsworks"]["activity"] == "deploy"
    assert node["deploy"]["store"]["environment"] == {"MODE": "prod", "TOKEN": "******"}
    assert SECRET not in deploy.stdout and "ciphertext" not in deploy.stdout

    for args, problem in [
        (["app9"], "stack cjshop has no instance 'app9'"),
        (["app1", "--format", "chef12"], "is not a Chef 12 stack"),
        (["app1", "--app", "nope"], "--app: stack cjshop has no app 'nope'"),
        (["app1", "--event", "reboot"], "Invalid value for '--event'"),
    ]:
        bad = await opsflow_cli(["instance", "attributes", "cjshop", *args], address, task_queue)
        assert bad.returncode == 2, (args, bad.stderr)
        assert problem in bad.stderr
        assert "Traceback" not in bad.stderr

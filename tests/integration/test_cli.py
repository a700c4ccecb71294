"""The `opsflow` console script against the real dev server: output, exit codes, bad input."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from client.api import OpsflowClient
from client.stackfile import load_stack_file
from opsflow.errors import OperationFailed
from tests.integration.conftest import REPO, cli_env, make_stack_dir, opsflow_cli

pytestmark = pytest.mark.integration

BODY = """\
layers:
  - name: web
    recipes: {setup: [web::setup], configure: [web::configure], shutdown: [web::shutdown]}
    instances: [{hostname: web1}]
  - name: db
    recipes: {setup: [db::setup]}
    instances: [{hostname: db1}]
"""


@pytest.fixture
def address(dev_env: WorkflowEnvironment) -> str:
    return dev_env.client.service_client.config.target_host


async def test_apply_list_run_and_delete_through_the_cli(
    opsflow: OpsflowClient, address: str, task_queue: str, tmp_path: Path
) -> None:
    stack_file = make_stack_dir(tmp_path, "clishop", "custom_json: {shop: {greeting: hi}}\n" + BODY)

    plan = await opsflow_cli(["stack", "plan", str(stack_file), "-o", "json"], address, task_queue)
    assert plan.returncode == 0, plan.stderr
    assert "create stack clishop (provider local)" in json.loads(plan.stdout)

    applied = await opsflow_cli(["stack", "apply", str(stack_file), "--wait"], address, task_queue)
    assert applied.returncode == 0, applied.stderr
    assert "web1" in applied.stdout and "online" in applied.stdout

    listed = await opsflow_cli(["instance", "list", "clishop", "-o", "json"], address, task_queue)
    assert listed.returncode == 0, listed.stderr
    instances = {i["hostname"]: i for i in json.loads(listed.stdout)}
    assert set(instances) == {"web1", "db1"}
    web1 = instances["web1"]
    assert web1["layers"] == ["web"] and web1["status"] == "online" and web1["provider"] == "local"
    assert Path(web1["root"]).is_dir()
    assert set(web1["ssh"]) >= {"host", "port", "user", "key_file"}
    assert web1["ssh"]["host"] == "127.0.0.1" and Path(web1["ssh"]["key_file"]).is_file()

    again = await opsflow_cli(["stack", "plan", str(stack_file)], address, task_queue)
    assert again.returncode == 0 and "no changes" in again.stdout

    ran = await opsflow_cli(
        ["run", "clishop", "configure", "--layer", "web", "--wait", "-o", "json"],
        address,
        task_queue,
    )
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)
    assert result["status"] == "successful"
    assert [i["hostname"] for i in result["instances"]] == ["web1"]

    stacks = await opsflow_cli(["stack", "list", "-o", "json"], address, task_queue)
    assert stacks.returncode == 0, stacks.stderr
    clishop = {"name": "clishop", "provider": "local", "layers": 2, "instances": 2, "online": 2}
    assert clishop | {"problem": None} in json.loads(stacks.stdout)

    stopped = await opsflow_cli(
        ["instance", "stop", "clishop", "db1", "--wait"], address, task_queue
    )
    assert stopped.returncode == 0, stopped.stderr
    assert "db1: stopped" in stopped.stdout

    deleted = await opsflow_cli(["stack", "delete", "clishop", "--wait"], address, task_queue)
    assert deleted.returncode == 0, deleted.stderr
    gone = await opsflow_cli(["stack", "describe", "clishop"], address, task_queue)
    assert gone.returncode == 2 and "no stack named clishop" in gone.stderr


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("colour: blue\n" + BODY, "stack.yml: colour: unknown key"),
        (BODY.replace("web::configure", "web::nope"), "recipe 'web::nope' does not exist"),
        (BODY.replace("name: db", "name: web"), "layer name 'web' is used twice"),
        (BODY.replace("hostname: db1", "hostname: DB_1"), "is not a valid hostname"),
    ],
)
async def test_bad_stack_files_exit_2_and_start_nothing(
    opsflow: OpsflowClient, address: str, task_queue: str, tmp_path: Path, body: str, message: str
) -> None:
    stack_file = make_stack_dir(tmp_path, "badshop", body)
    for verb in ("plan", "apply"):
        result = await opsflow_cli(
            ["stack", verb, str(stack_file), "--wait"][: 3 + (verb == "apply")], address, task_queue
        )
        assert result.returncode == 2, result.stderr
        assert message in result.stderr
        assert str(stack_file) in result.stderr
    described = await opsflow_cli(["stack", "describe", "badshop"], address, task_queue)
    assert described.returncode == 2 and "no stack named badshop" in described.stderr


async def test_a_failed_setup_exits_1_with_the_log_tail_and_the_run_link(
    opsflow: OpsflowClient, address: str, task_queue: str, tmp_path: Path
) -> None:
    body = "layers:\n  - name: app\n    recipes: {setup: [app::setup]}\n"
    body += "    instances: [{hostname: app1}]\n"
    stack_file = make_stack_dir(
        tmp_path, "clifail", body, {"app::setup": "echo 'cannot bind :80' >&2\nexit 3\n"}
    )
    applied = await opsflow_cli(["stack", "apply", str(stack_file), "--wait"], address, task_queue)
    assert applied.returncode == 1
    assert "app1: setup_failed" in applied.stderr
    assert "cannot bind :80" in applied.stderr
    assert "see: http://" in applied.stderr and "instance%3Aclifail%3Aapp1" in applied.stderr
    refused = await opsflow_cli(["run", "clifail", "configure"], address, task_queue)
    assert refused.returncode == 2 and "no online instance" in refused.stderr
    await opsflow_cli(["stack", "delete", "clifail", "--wait"], address, task_queue)


async def test_unreachable_temporal_exits_1_and_says_what_to_do(task_queue: str) -> None:
    result = await opsflow_cli(["stack", "list"], "127.0.0.1:1", task_queue, timeout=60)
    assert result.returncode == 1
    assert "cannot reach Temporal at 127.0.0.1:1" in result.stderr
    assert "opsflow dev up" in result.stderr


async def test_instances_added_started_stopped_and_deleted_through_the_cli(
    opsflow: OpsflowClient, address: str, task_queue: str, tmp_path: Path
) -> None:
    body = "layers:\n  - name: app\n    recipes: {setup: [app::setup]}\n"
    stack_file = make_stack_dir(tmp_path, "cliadd", body, {"app::setup": "echo up\n"})
    assert (
        await opsflow_cli(["stack", "apply", str(stack_file)], address, task_queue)
    ).returncode == 0

    added = await opsflow_cli(
        ["instance", "add", "cliadd", "--layer", "app", "--hostname", "extra", "--start", "--wait"],
        address,
        task_queue,
    )
    assert added.returncode == 0, added.stderr
    assert "extra: online" in added.stdout
    bad_layer = await opsflow_cli(
        ["instance", "add", "cliadd", "--layer", "nope", "--hostname", "x"], address, task_queue
    )
    assert bad_layer.returncode == 2 and "has no layer 'nope' (layers: app)" in bad_layer.stderr
    bad_name = await opsflow_cli(
        ["instance", "add", "cliadd", "--layer", "app", "--hostname", "X;rm"], address, task_queue
    )
    assert bad_name.returncode == 2 and "--hostname" in bad_name.stderr

    for verb, expected in (("stop", "stopped"), ("start", "online")):
        result = await opsflow_cli(
            ["instance", verb, "cliadd", "extra", "--wait"], address, task_queue
        )
        assert result.returncode == 0, result.stderr
        assert f"extra: {expected}" in result.stdout
    again = await opsflow_cli(["instance", "start", "cliadd", "extra"], address, task_queue)
    assert again.returncode == 2 and "it is online" in again.stderr

    deleted = await opsflow_cli(
        ["instance", "delete", "cliadd", "extra", "--wait"], address, task_queue
    )
    assert deleted.returncode == 0, deleted.stderr
    assert "extra: deleted" in deleted.stdout
    listed = await opsflow_cli(["instance", "list", "cliadd", "-o", "json"], address, task_queue)
    assert json.loads(listed.stdout) == []
    await opsflow_cli(["stack", "delete", "cliadd", "--wait"], address, task_queue)


async def test_a_failing_configure_run_exits_1_with_each_failure(
    opsflow: OpsflowClient, address: str, task_queue: str, tmp_path: Path
) -> None:
    body = "layers:\n  - name: app\n    recipes: {configure: [app::configure]}\n"
    body += "    instances: [{hostname: app1}]\n"
    script = 'echo "reading $OPSFLOW_ATTRIBUTES"\necho "no upstream" >&2\nexit 4\n'
    stack_file = make_stack_dir(tmp_path, "cliconf", body, {"app::configure": script})
    applied = await opsflow_cli(["stack", "apply", str(stack_file), "--wait"], address, task_queue)
    assert applied.returncode == 0, applied.stderr
    ran = await opsflow_cli(["run", "cliconf", "configure", "--wait"], address, task_queue)
    assert ran.returncode == 1
    assert "configure failed on 1 instance(s)" in ran.stderr
    assert "app1: cliconf/app1: recipe app::configure failed with exit code 4" in ran.stderr
    assert "no upstream" in ran.stderr
    assert "see: http://" in ran.stderr and "deployment%3Acliconf%3A" in ran.stderr
    await opsflow_cli(["stack", "delete", "cliconf", "--wait"], address, task_queue)


async def test_no_worker_gives_a_clear_error_instead_of_hanging(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    stack_file = make_stack_dir(tmp_path, "orphan", "layers: [{name: app}]\n", {})
    lonely = OpsflowClient(
        dev_env.client,
        task_queue="nobody-polls-this",
        update_timeout=timedelta(seconds=2),
        query_timeout=timedelta(seconds=2),
    )
    try:
        with pytest.raises(OperationFailed, match="worker polling task queue nobody-polls-this"):
            await lonely.apply(load_stack_file(stack_file))
        with pytest.raises(OperationFailed, match="no answer from stack:orphan within 2s"):
            await lonely.describe("orphan")
        # A listing still lists the stacks that answer, and says which one did not.
        listed = {s.name: s for s in await lonely.list_stacks()}
        assert listed["orphan"].problem is not None
        assert "no answer from stack:orphan" in listed["orphan"].problem
    finally:
        await dev_env.client.get_workflow_handle("stack:orphan").terminate()


async def test_opsflow_worker_runs_the_worker_until_sigterm(
    dev_env: WorkflowEnvironment, address: str, task_queue: str, tmp_path: Path
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "client.cli",
        "worker",
        env=cli_env(address, task_queue),
        cwd=REPO,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        # An apply is an update: only a worker polling the task queue answers it.
        stack_file = make_stack_dir(tmp_path, "cliworker", "layers: [{name: app}]\n", {})
        client = OpsflowClient(dev_env.client, task_queue=task_queue)
        applied = await client.apply(load_stack_file(stack_file))
        assert "create stack cliworker (provider local)" in applied.changes
        await client.delete_stack("cliworker")
        await client.wait_stack_deleted("cliworker", timeout=60)
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert f"worker polling task queue {task_queue}" in err.decode()


MULTI = """\
layers:
  - name: a
    recipes: {setup: [a::setup]}
    instances: [{hostname: s1}]
  - name: b
    recipes: {setup: [b::setup]}
"""
# Each setup recipe appends its layer's name to a file in the instance's root.
MULTI_RECIPES = {
    "a::setup": "echo a >> setup-order\n",
    "b::setup": "echo b >> setup-order\n",
}


async def test_an_instance_in_two_layers_runs_both_setups_and_plan_shows_a_new_layer(
    opsflow: OpsflowClient, address: str, task_queue: str, tmp_path: Path
) -> None:
    stack_file = make_stack_dir(tmp_path, "climulti", MULTI, MULTI_RECIPES)
    applied = await opsflow_cli(["stack", "apply", str(stack_file), "--wait"], address, task_queue)
    assert applied.returncode == 0, applied.stderr

    added = await opsflow_cli(
        ["instance", "add", "climulti", "h1", "--layer", "a", "--layer", "b"], address, task_queue
    )
    assert added.returncode == 0, added.stderr
    assert "instance h1 added to layers a, b (stopped)" in added.stdout
    started = await opsflow_cli(
        ["instance", "start", "climulti", "h1", "--wait"], address, task_queue
    )
    assert started.returncode == 0, started.stderr
    listed = await opsflow_cli(["instance", "list", "climulti"], address, task_queue)
    rows = [[cell.strip() for cell in line.split("│")] for line in listed.stdout.splitlines()]
    assert ["h1", "a,b", "online"] in [row[:3] for row in rows], listed.stdout
    roots = {v.hostname: Path(v.root or "") for v in (await opsflow.describe("climulti")).instances}
    # One setup run: layer a's recipe, then layer b's.
    assert (roots["h1"] / "setup-order").read_text() == "a\nb\n"

    # s1 stopped, the file puts it in a and b: plan shows it, apply sets it up in both.
    stopped = await opsflow_cli(
        ["instance", "stop", "climulti", "s1", "--wait"], address, task_queue
    )
    assert stopped.returncode == 0, stopped.stderr
    both = MULTI.replace("    instances: [{hostname: s1}]\n", "")
    both += "instances: [{hostname: s1, layers: [a, b]}]\n"
    stack_file.write_text(stack_file.read_text().replace(MULTI, both))
    plan = await opsflow_cli(["stack", "plan", str(stack_file)], address, task_queue)
    assert plan.returncode == 0, plan.stderr
    assert "change instance s1 layers a -> a, b" in plan.stdout
    assert "start instance s1 (now stopped)" in plan.stdout
    applied = await opsflow_cli(["stack", "apply", str(stack_file), "--wait"], address, task_queue)
    assert applied.returncode == 0, applied.stderr
    assert (roots["s1"] / "setup-order").read_text() == "a\na\nb\n"
    listed = await opsflow_cli(["instance", "list", "climulti", "-o", "json"], address, task_queue)
    layers = {i["hostname"]: i["layers"] for i in json.loads(listed.stdout)}
    assert layers == {"h1": ["a", "b"], "s1": ["a", "b"]}

    # An unknown layer is refused naming it, nothing added.
    refused = await opsflow_cli(
        ["instance", "add", "climulti", "h2", "--layer", "a", "--layer", "x"], address, task_queue
    )
    assert refused.returncode == 2 and "no layer 'x'" in refused.stderr
    deleted = await opsflow_cli(["stack", "delete", "climulti", "--wait"], address, task_queue)
    assert deleted.returncode == 0, deleted.stderr

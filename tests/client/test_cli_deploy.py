"""CLI parsing of the app-deployment commands (deploy, approve/abort, rollback, undeploy,
deployments), with no server.

`FakeApi` is a fake of client.api.OpsflowClient for these CLI parsing tests only: it
records which API call the CLI makes with which arguments, and answers with recorded
values. It says nothing about what the workflows do; tests/integration covers that.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner, Result

from client.cli import cli, session
from opsflow.messages import (
    AppAction,
    AppCommandInput,
    DeployInput,
    DeploymentDetail,
    DeploymentEnd,
    DeploymentResult,
    DeploymentStatus,
    DeploymentSummary,
    InstanceDeployment,
    InstanceDeployStatus,
    RunCommandResult,
)
from opsflow.spec import HealthCheckSpec, StackSpec

STARTED = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
DEPLOYMENT_ID = "deployment:shop:7"


class FakeApi:
    """Records each call as (method, args); answers with canned values."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.app_source: dict[str, str] = {"git": "repo"}
        self.summaries: list[DeploymentSummary] = []
        self.end_detail: DeploymentDetail | None = None  # what the end says, if not `detail`
        self.detail = DeploymentDetail(
            id=DEPLOYMENT_ID,
            stack="shop",
            app="store",
            command="deploy",
            strategy="rolling",
            status="successful",
            started_at=STARTED,
            batches=[["web1"], ["web2"]],
            instances=[
                InstanceDeployment(
                    hostname="web1", batch=0, status=InstanceDeployStatus.SUCCESSFUL, release="r1"
                ),
                InstanceDeployment(
                    hostname="web2", batch=1, status=InstanceDeployStatus.SUCCESSFUL, release="r1"
                ),
            ],
        )

    def _started(self) -> RunCommandResult:
        return RunCommandResult(deployment_id=DEPLOYMENT_ID, targets=["web1", "web2"])

    async def describe(self, stack: str) -> Any:
        # The CLI reads the app's source first (a directory here is packed again); git:
        # nothing to pack. Not recorded: the calls below are what these tests compare.
        spec = StackSpec.model_validate(
            {
                "name": stack,
                "layers": [{"name": "web"}],
                "apps": [{"name": "store", "layers": ["web"], "source": self.app_source}],
            }
        )
        return SimpleNamespace(spec=spec)  # all the CLI reads of a StackDescription

    async def deploy(self, stack: str, request: DeployInput) -> RunCommandResult:
        self.calls.append(("deploy", (stack, request)))
        return self._started()

    async def app_command(self, stack: str, request: AppCommandInput) -> RunCommandResult:
        self.calls.append(("app_command", (stack, request)))
        return self._started()

    async def approve(self, deployment_id: str) -> None:
        self.calls.append(("approve", (deployment_id,)))

    async def abort(self, deployment_id: str) -> None:
        self.calls.append(("abort", (deployment_id,)))

    async def deployments(self, stack: str) -> list[DeploymentSummary]:
        self.calls.append(("deployments", (stack,)))
        return self.summaries

    async def deployment_detail(self, deployment_id: str) -> DeploymentDetail:
        self.calls.append(("deployment_detail", (deployment_id,)))
        return self.detail

    async def deployment_end(self, deployment_id: str) -> DeploymentEnd:
        self.calls.append(("deployment_end", (deployment_id,)))
        result = DeploymentResult(
            id=deployment_id, command="deploy", status=DeploymentStatus.SUCCESSFUL
        )
        return DeploymentEnd(result=result, detail=self.end_detail or self.detail)


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    fake = FakeApi()

    async def connect() -> FakeApi:
        return fake

    monkeypatch.setattr(session, "open_client", connect)
    return fake


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def only_call(api: FakeApi, method: str) -> tuple[Any, ...]:
    assert [name for name, _ in api.calls] == [method], api.calls
    return api.calls[0][1]


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--batch", "0"], "--batch"),
        (["--batch", "150%"], "--batch"),
        (["--batch", "three"], "--batch"),
        (["--max-failures", "150%"], "--max-failures"),
        (["--max-failures", "-1"], "--max-failures"),
        (["--strategy", "rolling", "--bake", "30"], "--bake"),
        (["--batch", "2"], "--batch"),  # all-at-once has one batch
        (["--strategy", "blue-green"], "--strategy"),
        (["--health-check", "http://{nope}/"], "--health-check"),
    ],
)
def test_bad_deploy_options_exit_2_before_any_request(
    api: FakeApi, args: list[str], option: str
) -> None:
    result = invoke("deploy", "shop", "store", *args)
    assert result.exit_code == 2, result.output
    assert option in result.output
    assert api.calls == []


def test_deploy_sends_the_options_as_given(api: FakeApi) -> None:
    result = invoke(
        "deploy", "shop", "store", "--revision", "v2", "--strategy", "rolling",
        "--batch", "25%", "--max-failures", "0", "--health-check", "http://{private_ip}:8080/up",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    stack, request = only_call(api, "deploy")
    assert stack == "shop"
    assert request == DeployInput(
        app="store",
        revision="v2",
        strategy="rolling",
        batch="25%",
        max_failures="0",
        health_check=HealthCheckSpec(url="http://{private_ip}:8080/up"),
    )
    assert DEPLOYMENT_ID in result.output


def test_options_may_come_before_stack_and_app(api: FakeApi) -> None:
    result = invoke("deploy", "--strategy", "canary", "--bake", "30", "shop", "store")
    assert result.exit_code == 0, result.output
    _, request = only_call(api, "deploy")
    assert request.strategy == "canary" and request.canary_bake_seconds == 30


def test_a_canary_without_batch_uses_one_instance(api: FakeApi) -> None:
    result = invoke("deploy", "shop", "store", "--strategy", "canary")
    assert result.exit_code == 0, result.output
    _, request = only_call(api, "deploy")
    assert request.batch == "1" and request.canary_bake_seconds is None
    assert f"opsflow deploy approve|abort {DEPLOYMENT_ID}" in result.output


def test_health_check_command(api: FakeApi) -> None:
    result = invoke("deploy", "shop", "store", "--health-check", "test -f x")
    assert result.exit_code == 0, result.output
    _, request = only_call(api, "deploy")
    assert request.health_check is not None
    assert request.health_check.command == "test -f x" and request.health_check.url is None


@pytest.mark.parametrize("verb", ["approve", "abort"])
def test_deploy_approve_and_abort_route_to_their_api_call(api: FakeApi, verb: str) -> None:
    result = invoke("deploy", verb, "deployment:shop:3")
    assert result.exit_code == 0, result.output
    assert only_call(api, verb) == ("deployment:shop:3",)


@pytest.mark.parametrize(
    "args", [["deploy", "approve"], ["deploy", "abort"], ["deployments", "describe"]]
)
def test_what_is_no_deployment_id_exits_2_before_any_request(api: FakeApi, args: list[str]) -> None:
    result = invoke(*args, "shop:3")
    assert result.exit_code == 2, result.output
    assert "'shop:3' is not a deployment id (deployment:STACK:N)" in result.output
    assert api.calls == []


def test_a_stack_named_approve_can_still_be_deployed_after_dashdash(api: FakeApi) -> None:
    result = invoke("deploy", "--", "approve", "store")
    assert result.exit_code == 0, result.output
    stack, request = only_call(api, "deploy")
    assert stack == "approve" and request.app == "store"


def test_deploy_help_shows_both_forms(api: FakeApi) -> None:
    result = invoke("deploy", "--help")
    assert result.exit_code == 0
    assert "deploy [OPTIONS] STACK APP" in result.output
    assert "approve|abort DEPLOYMENT_ID" in result.output
    assert "--strategy" in result.output and "approve" in result.output
    assert api.calls == []


def test_rollback_sends_an_app_command(api: FakeApi) -> None:
    result = invoke("rollback", "shop", "store")
    assert result.exit_code == 0, result.output
    assert only_call(api, "app_command") == (
        "shop",
        AppCommandInput(app="store", action=AppAction.ROLLBACK),
    )


def test_run_undeploy_needs_app(api: FakeApi) -> None:
    result = invoke("run", "shop", "undeploy")
    assert result.exit_code == 2
    assert "--app" in result.output
    assert api.calls == []


@pytest.mark.parametrize(
    "args",
    [
        ["run", "shop", "configure", "--app", "store"],
        ["run", "shop", "undeploy", "--app", "store", "--layer", "web"],
    ],
)
def test_app_only_goes_with_undeploy(api: FakeApi, args: list[str]) -> None:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert api.calls == []


def test_run_undeploy_sends_an_app_command(api: FakeApi) -> None:
    result = invoke("run", "shop", "undeploy", "--app", "store", "-o", "json")
    assert result.exit_code == 0, result.output
    assert only_call(api, "app_command") == (
        "shop",
        AppCommandInput(app="store", action=AppAction.UNDEPLOY),
    )
    assert json.loads(result.output) == {
        "deployment_id": DEPLOYMENT_ID,
        "targets": ["web1", "web2"],
    }


def test_deploy_wait_prints_a_line_per_instance_and_the_result(api: FakeApi) -> None:
    result = invoke("deploy", "shop", "store", "--wait")
    assert result.exit_code == 0, result.output
    assert api.calls[0][0] == "deploy"
    assert ("deployment_end", (DEPLOYMENT_ID,)) in api.calls
    assert "web1: successful  batch 1  release r1" in result.output
    assert "web2: successful  batch 2  release r1" in result.output
    assert result.output.rstrip().endswith(f"{DEPLOYMENT_ID}: successful")


def test_deploy_wait_shows_the_last_detail_from_the_end_without_querying_again(
    api: FakeApi,
) -> None:
    api.end_detail = api.detail
    running = [
        i.model_copy(update={"status": InstanceDeployStatus.RUNNING}) for i in api.detail.instances
    ]
    api.detail = api.detail.model_copy(update={"status": "running", "instances": running})
    result = invoke("deploy", "shop", "store", "--wait")
    assert result.exit_code == 0, result.output
    assert "web1: running  batch 1  release r1" in result.output  # polled while it ran
    assert "web2: successful  batch 2  release r1" in result.output  # from the end
    assert [name for name, _ in api.calls].count("deployment_detail") == 1


def test_deployments_list_json(api: FakeApi) -> None:
    api.summaries = [
        DeploymentSummary(
            id=DEPLOYMENT_ID,
            stack="shop",
            app="store",
            command="deploy",
            strategy="canary",
            status="awaiting_approval",
            revision="v2",
            started_at=STARTED,
        ),
        DeploymentSummary(
            id="deployment:shop:6",
            stack="shop",
            command="configure",
            status="successful",
            started_at=STARTED,
            finished_at=STARTED,
        ),
    ]
    result = invoke("deployments", "list", "shop", "-o", "json")
    assert result.exit_code == 0, result.output
    assert only_call(api, "deployments") == ("shop",)
    found = json.loads(result.output)
    assert [d["id"] for d in found] == [DEPLOYMENT_ID, "deployment:shop:6"]
    for row in found:
        assert {"id", "app", "command", "strategy", "status", "started_at", "finished_at"} <= set(
            row
        )
    assert found[0]["app"] == "store" and found[0]["finished_at"] is None
    assert found[1]["app"] is None and found[1]["strategy"] == "all-at-once"
    assert found[0]["started_at"] == "2025-01-02T03:04:05Z"


def test_deployments_describe(api: FakeApi) -> None:
    result = invoke("deployments", "describe", DEPLOYMENT_ID)
    assert result.exit_code == 0, result.output
    assert only_call(api, "deployment_detail") == (DEPLOYMENT_ID,)
    assert "web1" in result.output and "r1" in result.output
    as_json = invoke("deployments", "describe", DEPLOYMENT_ID, "-o", "json")
    assert json.loads(as_json.output)["instances"][1]["hostname"] == "web2"


def test_deployments_describe_refuses_what_is_not_a_deployment_id(api: FakeApi) -> None:
    result = invoke("deployments", "describe", "shop")
    assert result.exit_code == 2
    assert "deployment:STACK:N" in result.output
    assert api.calls == []


def test_an_app_directory_here_is_packed_again_for_each_deploy(
    api: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runtime.artifacts import open_store
    from runtime.packing import tree_digest

    monkeypatch.setenv("OPSFLOW_ARTIFACTS", str(tmp_path / "store"))
    code = tmp_path / "site"
    code.mkdir()
    (code / "index.html").write_text("v2\n")
    api.app_source = {"source": str(code)}
    result = invoke("deploy", "shop", "store")
    assert result.exit_code == 0, result.output
    _, request = only_call(api, "deploy")
    assert request.artifact == tree_digest(code)
    assert open_store(str(tmp_path / "store")).has(request.artifact)

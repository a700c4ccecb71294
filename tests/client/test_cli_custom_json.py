"""`--custom-json JSON|@FILE` on `deploy` and `run`: parsed and sent, or refused (exit 2,
naming the option and the problem) before any request. Uses the API fake of
test_cli_deploy (it records calls; the workflows are tested elsewhere)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsflow.messages import DeploymentDetail, RunCommandInput, RunCommandResult
from tests.client.test_cli_deploy import DEPLOYMENT_ID, FakeApi, invoke, only_call


class RunApi(FakeApi):
    async def run_command(self, stack: str, request: RunCommandInput) -> RunCommandResult:
        self.calls.append(("run_command", (stack, request)))
        return self._started()


@pytest.fixture
def run_api(monkeypatch: pytest.MonkeyPatch) -> RunApi:
    from client.cli import session

    fake = RunApi()

    async def connect() -> RunApi:
        return fake

    monkeypatch.setattr(session, "open_client", connect)
    return fake


def test_deploy_sends_the_custom_json(run_api: RunApi) -> None:
    result = invoke("deploy", "shop", "store", "--custom-json", '{"x": {"y": 1}}')
    assert result.exit_code == 0, result.output
    _, request = only_call(run_api, "deploy")
    assert request.custom_json == {"x": {"y": 1}}


def test_run_sends_the_custom_json_from_a_file(run_api: RunApi, tmp_path: Path) -> None:
    extra = tmp_path / "extra.json"
    extra.write_text('{\n  "shop": {"greeting": "hej"}\n}\n')
    result = invoke("run", "shop", "configure", "--custom-json", f"@{extra}")
    assert result.exit_code == 0, result.output
    stack, request = only_call(run_api, "run_command")
    assert stack == "shop"
    assert request == RunCommandInput(
        command="configure", recipes=[], custom_json={"shop": {"greeting": "hej"}}
    )


def test_an_app_command_of_run_sends_it_too(run_api: RunApi) -> None:
    result = invoke("run", "shop", "restart", "--app", "store", "--custom-json", '{"a": 1}')
    assert result.exit_code == 0, result.output
    _, request = only_call(run_api, "app_command")
    assert request.custom_json == {"a": 1}


def test_without_the_option_nothing_is_sent(run_api: RunApi) -> None:
    assert invoke("run", "shop", "setup").exit_code == 0
    _, request = only_call(run_api, "run_command")
    assert request.custom_json is None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("[1, 2]", "must be a JSON object ({...}), not a list"),
        ("{x: 1}", "not valid JSON: Expecting property name enclosed in double quotes"),
        ("@missing.json", "cannot read missing.json: No such file or directory"),
        ('{"k": "' + "a" * 70_000 + '"}', "over the limit of 65536 bytes"),
    ],
)
@pytest.mark.parametrize("command", [["deploy", "shop", "store"], ["run", "shop", "configure"]])
def test_bad_custom_json_exits_2_naming_the_option_before_any_request(
    run_api: RunApi,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
    value: str,
    problem: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke(*command, "--custom-json", value)
    assert result.exit_code == 2, result.output
    assert "--custom-json" in result.output
    assert problem in result.output
    assert run_api.calls == []


def test_a_file_that_is_not_json_is_named(run_api: RunApi, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    result = invoke("run", "shop", "configure", "--custom-json", f"@{bad}")
    assert result.exit_code == 2
    assert f"{bad}: must be a JSON object" in result.output
    assert run_api.calls == []


def test_deployments_describe_shows_the_custom_json(run_api: RunApi) -> None:
    run_api.detail = DeploymentDetail(
        **{**run_api.detail.model_dump(), "custom_json": {"x": {"y": 1}}}
    )
    table = invoke("deployments", "describe", DEPLOYMENT_ID)
    assert table.exit_code == 0, table.output
    assert 'custom json: {"x": {"y": 1}}' in table.output
    as_json = invoke("deployments", "describe", DEPLOYMENT_ID, "-o", "json")
    assert json.loads(as_json.output)["custom_json"] == {"x": {"y": 1}}

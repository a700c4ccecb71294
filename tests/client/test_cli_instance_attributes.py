"""`opsflow instance attributes STACK HOST`: arguments and refusals (exit 2, nothing
asked of the stack's run context), with a fake API that records calls and answers with
canned values; the integration test asks a real stack."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner, Result

from client.cli import cli, session
from client.cli.instance import ATTRIBUTE_EVENTS, ATTRIBUTE_FORMATS
from opsflow import recipe_view
from opsflow.errors import OpsflowError
from opsflow.messages import ConfigurationQuery, InstanceView, RunContext
from opsflow.secrets import MASK, SecureValue
from opsflow.spec import ConfigurationManager, StackSpec

SEALED = SecureValue(ciphertext="v2.sealed").model_dump()


class FakeApi:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.manager = ConfigurationManager.SHELL

    async def describe(self, stack: str) -> Any:
        spec = StackSpec.model_validate(
            {
                "name": stack,
                "layers": [{"name": "web"}, {"name": "db"}],
                "apps": [
                    {"name": "store", "layers": ["web"]},
                    {"name": "reports", "layers": ["db"]},
                ],
            }
        )
        views = [InstanceView(hostname="web1", layers=["web"], root="/m/web1")]
        return SimpleNamespace(spec=spec, instances=views)

    async def run_context(self, stack: str, request: ConfigurationQuery) -> RunContext:
        self.calls.append(("run_context", (stack, request)))
        return RunContext(
            configuration={"opsflow": {"activity": request.event}, "env": {"TOKEN": SEALED}},
            recipes=[],
            configuration_manager=self.manager,
            cookbooks_dir=None,
        )


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    fake = FakeApi()

    async def connect() -> FakeApi:
        return fake

    monkeypatch.setattr(session, "open_client", connect)
    return fake


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, ["instance", "attributes", *args])


def refusal(result: Result) -> tuple[int, str]:
    """The exit code and message `opsflow` gives: an OpsflowError raised through click
    is mapped by client.cli.main (its exit_code), a click error by click."""
    if isinstance(result.exception, OpsflowError):
        return result.exception.exit_code, str(result.exception)
    return result.exit_code, result.output


def test_the_choices_are_those_of_recipe_view() -> None:
    assert ATTRIBUTE_FORMATS == recipe_view.FORMATS
    assert set(ATTRIBUTE_EVENTS) == set(recipe_view.EVENTS)


def test_prints_the_attributes_of_configure_masked(api: FakeApi) -> None:
    result = invoke("shop", "web1")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "opsflow": {"activity": "configure"},
        "env": {"TOKEN": MASK},
    }
    assert api.calls == [
        ("run_context", ("shop", ConfigurationQuery(hostname="web1", event="configure")))
    ]


def test_with_an_app_the_event_is_deploy(api: FakeApi) -> None:
    result = invoke("shop", "web1", "--app", "store", "--format", "chef11")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["deploy"]["store"]["action"] == "deploy"
    assert shown["opsworks"]["activity"] == "deploy"  # chef11: the alias of opsflow
    (_, (_, query)), = api.calls  # fmt: skip
    assert query.event == "deploy"


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["nohost"], "stack shop has no instance 'nohost' (instances: web1)"),
        (["web1", "--event", "boot"], "Invalid value for '--event'"),
        (["web1", "--format", "yaml"], "Invalid value for '--format'"),
        (["web1", "--app", "nope"], "--app: stack shop has no app 'nope'"),
        (["web1", "--app", "reports"], "--app: app reports is deployed to layer(s) db"),
    ],
)
def test_bad_arguments_exit_2_before_the_run_context_is_asked(
    api: FakeApi, args: list[str], problem: str
) -> None:
    code, message = refusal(invoke("shop", *args))
    assert code == 2, message
    assert problem in message
    assert api.calls == []


def test_chef12_on_a_chef_11_stack_exits_2_saying_why(api: FakeApi) -> None:
    api.manager = ConfigurationManager.CHEF
    code, message = refusal(invoke("shop", "web1", "--format", "chef12"))
    assert code == 2
    assert "--format chef12: stack shop is not a Chef 12 stack" in message

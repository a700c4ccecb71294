"""`stack events` and `instance kill`: what is refused before anything is asked or killed
(no server). Their behaviour against a real stack is in
tests/integration/test_cli_events_kill.py.
"""

from __future__ import annotations

import importlib
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner, Result

from client.api import OpsflowClient
from client.cli import cli, render, session
from opsflow.errors import InvalidInput
from opsflow.messages import InstanceView, StackDescription, StackEvent
from opsflow.spec import Provider
from tests.helpers import one_instance_stack


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    async def connect() -> OpsflowClient:
        raise AssertionError("the CLI connected before checking its arguments")

    monkeypatch.setattr(session, "open_client", connect)


@pytest.mark.parametrize("limit", ["0", "-3", "many"])
def test_a_limit_below_one_exits_2_before_connecting(no_server: None, limit: str) -> None:
    result = invoke("stack", "events", "shop", "--limit", limit)
    assert result.exit_code == 2, result.output
    assert "--limit" in result.output


class StackOfOneEc2Instance(OpsflowClient):
    """A real OpsflowClient whose stack (the describe query) holds one ec2 instance."""

    def __init__(self) -> None:
        super().__init__(client=None)  # type: ignore[arg-type]  # never reaches Temporal

    async def describe(self, stack: str) -> StackDescription:
        view = InstanceView(hostname="web1", layers=["web"], provider=Provider.EC2)
        return one_instance_stack(stack, view)


@pytest.mark.parametrize(
    "args",
    [
        ["instance", "kill", "shop", "web1"],
        ["instance", "kill", "--network", "shop", "web1"],
        ["instance", "restore-network", "shop", "web1"],
    ],
)
def test_drills_refuse_an_instance_that_is_not_local(
    monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    async def connect() -> OpsflowClient:
        return StackOfOneEc2Instance()

    monkeypatch.setattr(session, "open_client", connect)
    result = CliRunner().invoke(cli, args)
    assert isinstance(result.exception, InvalidInput)
    assert result.exception.exit_code == 2
    assert "web1 is an instance of provider ec2; drills are for local instances" in str(
        result.exception
    )


def test_an_events_check_output_is_shown_indented_under_its_message() -> None:
    event = StackEvent(
        at=datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        kind="heal_started",
        message="replacing web1",
        hostname="web1",
        details={"layer": "web", "check": "curl: (7) refused\nexit 7"},
    )
    assert render.utc(event.at) == "2025-01-02T03:04:05Z"
    assert render.event_message(event) == ("replacing web1\n  check: curl: (7) refused\n    exit 7")
    plain = event.model_copy(update={"details": {"layer": "web"}})
    assert render.event_message(plain) == "replacing web1"


def test_stack_apply_says_in_one_line_when_local_instances_cannot_be_isolated(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from runtime import local_network

    # The module, not the `stack` group that client.cli exports under the same name.
    stack_commands = importlib.import_module("client.cli.stack")

    monkeypatch.setenv("OPSFLOW_ISOLATION", "auto")
    monkeypatch.setattr(local_network, "isolation_problem", lambda: "not root (test)")
    stack_commands._say_if_not_isolated()
    assert capsys.readouterr().err == (
        "note: local instances are not isolated here (not root (test)): they run as sshd "
        "processes sharing this host's files\n"
    )
    monkeypatch.setattr(local_network, "isolation_problem", lambda: None)
    stack_commands._say_if_not_isolated()
    assert capsys.readouterr().err == ""

"""`stack plan` and `stack apply` of a local stack with `users:` where local instances are
not isolated machines: refused (exit 2, naming `users` and why), since the instances would
share this host's /etc; nothing is sent."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import client.cli
from client.cli import cli, session
from opsflow.errors import InvalidInput
from runtime import local_network
from tests.client.test_cli_plan import closed_port
from tests.opsflow.test_spec_users import public_key

STACK = (
    "name: withusers\nprovider: local\ncookbooks: {source: ./cookbooks}\n"
    "layers:\n  - name: app\n    instances: [{hostname: app1}]\n"
)


def stack_file(tmp_path: Path, users: bool = True) -> Path:
    (tmp_path / "cookbooks").mkdir(exist_ok=True)
    path = tmp_path / "stack.yml"
    text = STACK
    if users:
        text += f"users:\n  - name: alice\n    ssh_public_key: {public_key()}\n    sudo: true\n"
    path.write_text(text)
    return path


class _NothingSent:
    """A client whose every call fails the test: the refusal comes before any."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the CLI called {name} on Temporal after all")


@pytest.fixture(autouse=True)
def no_temporal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPSFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TEMPORAL_ADDRESS", f"127.0.0.1:{closed_port()}")

    async def connect() -> _NothingSent:
        return _NothingSent()

    monkeypatch.setattr(session, "open_client", connect)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, ["stack", *args])


def refusal(result: Result) -> str:
    """The InvalidInput the command raised (the console script prints it, exit 2)."""
    assert isinstance(result.exception, InvalidInput), result.output
    assert result.exception.exit_code == 2
    return str(result.exception)


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_users_on_a_local_stack_without_isolation_are_refused(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSFLOW_ISOLATION", "none")
    path = stack_file(tmp_path)
    message = refusal(invoke(command, str(path)))
    assert message.startswith(f"{path}: users: local instances are not isolated machines here")
    assert "OPSFLOW_ISOLATION=none" in message


def test_the_console_script_exits_2_with_the_message_and_no_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPSFLOW_ISOLATION", "none")
    path = stack_file(tmp_path)
    monkeypatch.setattr("sys.argv", ["opsflow", "stack", "apply", str(path)])
    assert client.cli._main() == 2
    err = capsys.readouterr().err
    assert f"{path}: users: local instances are not isolated machines here" in err
    assert "Traceback" not in err


def test_users_are_refused_where_this_host_cannot_make_machines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSFLOW_ISOLATION", "auto")
    monkeypatch.setattr(local_network, "isolation_problem", lambda: "not root (test)")
    message = refusal(invoke("plan", str(stack_file(tmp_path))))
    assert "users: local instances are not isolated machines here (not root (test))" in message


def test_a_local_stack_without_users_or_with_isolation_is_not_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSFLOW_ISOLATION", "none")
    result = invoke("plan", str(stack_file(tmp_path, users=False)))
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("OPSFLOW_ISOLATION", "auto")
    monkeypatch.setattr(local_network, "isolation_problem", lambda: None)
    result = invoke("plan", str(stack_file(tmp_path)))
    assert result.exit_code == 0, result.output
    assert "validated offline" in result.output

"""`opsflow stack plan FILE`: the file is validated first; it is compared with the stack
only when Temporal answers, and the output says which was done."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from client.cli import cli, session
from opsflow.errors import SpecError, Unreachable
from opsflow.spec import StackSpec
from runtime import connection

STACK = "name: planned\ncookbooks: {source: ./cookbooks}\nlayers:\n  - name: app\n"


def stack_file(tmp_path: Path, text: str = STACK) -> Path:
    (tmp_path / "cookbooks").mkdir()
    path = tmp_path / "stack.yml"
    path.write_text(text)
    return path


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> str:
    """TEMPORAL_ADDRESS where nothing listens; connecting at all fails the test."""
    address = f"127.0.0.1:{closed_port()}"
    monkeypatch.setenv("TEMPORAL_ADDRESS", address)

    async def connect() -> None:
        raise AssertionError("plan connected to a Temporal that did not answer")

    monkeypatch.setattr(session, "open_client", connect)
    return address


def plan(*args: str) -> Result:
    return CliRunner().invoke(cli, ["stack", "plan", *args])


def test_a_valid_file_is_validated_offline_and_exits_0(offline: str, tmp_path: Path) -> None:
    result = plan(str(stack_file(tmp_path)))
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"validated offline: Temporal at {offline} did not answer, nothing compared\n"
    )


def test_a_file_with_secure_values_is_planned_without_any_key(
    offline: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stack repository's CI checks its files with no worker and no secret key."""
    monkeypatch.setenv("OPSFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OPSFLOW_SECRET_KEY", raising=False)
    monkeypatch.delenv("OPSFLOW_ARTIFACTS", raising=False)
    (tmp_path / "site").mkdir()
    secure = (
        "apps:\n  - name: site\n    layers: [app]\n    source: {source: ./site}\n"
        "    environment: {TOKEN: {value: s3cret, secure: true}}\n"
    )
    result = plan(str(stack_file(tmp_path, STACK + secure)))
    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.output
    assert not (tmp_path / "home" / "secret.key").exists()


def test_offline_json_is_null_with_the_note_on_stderr(offline: str, tmp_path: Path) -> None:
    result = plan(str(stack_file(tmp_path)), "-o", "json")
    assert result.exit_code == 0, result.output
    assert result.stdout == "null\n"
    assert f"validated offline: Temporal at {offline} did not answer" in result.stderr


def test_a_bad_file_exits_2_offline_too(offline: str, tmp_path: Path) -> None:
    result = plan(str(stack_file(tmp_path, STACK + "colour: blue\n")))
    assert isinstance(result.exception, SpecError)
    assert result.exception.exit_code == 2
    assert "colour: unknown key" in str(result.exception)


class Planner:
    """Stands in for OpsflowClient.plan: records the spec it was asked about."""

    def __init__(self) -> None:
        self.specs: list[StackSpec] = []

    async def plan(self, spec: StackSpec) -> list[str]:
        self.specs.append(spec)
        return [f"create stack {spec.name} (provider local)"]


def test_when_temporal_answers_the_file_is_compared_with_the_stack(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    planner = Planner()

    async def connect() -> Planner:
        return planner

    monkeypatch.setattr(connection, "answers", lambda address: True)
    monkeypatch.setattr(session, "open_client", connect)
    result = plan(str(stack_file(tmp_path)))
    assert result.exit_code == 0, result.output
    assert result.stdout == "  + create stack planned (provider local)\n"
    assert [spec.name for spec in planner.specs] == ["planned"]


def test_a_port_that_answers_but_is_no_temporal_is_offline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async def connect() -> None:
        raise Unreachable("cannot reach Temporal at somewhere: not a gRPC server")

    monkeypatch.setenv("TEMPORAL_ADDRESS", "somewhere:7233")
    monkeypatch.setattr(connection, "answers", lambda address: True)
    monkeypatch.setattr(session, "open_client", connect)
    result = plan(str(stack_file(tmp_path)))
    assert result.exit_code == 0, result.output
    assert "validated offline: Temporal at somewhere:7233 did not answer" in result.stdout

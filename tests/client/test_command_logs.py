"""Finding saved run logs for `opsflow command list|log`: by run id or by command, newest
first, each metadata typed (RunLogMeta)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from client import command_logs
from opsflow.errors import InvalidInput, NotFound
from opsflow.run_logs import RunLogMeta
from runtime import run_logs


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPSFLOW_HOME", str(tmp_path))
    return tmp_path


def save(hostname: str, run_id: str, finished: str, **fields: Any) -> None:
    meta = {"stack": "shop", "hostname": hostname, "run_id": run_id, "finished": finished}
    run_logs.save_run_log({**meta, "exit_code": 0, **fields}, f"log of {run_id}\n")


def test_recent_runs_are_every_instances_newest_first() -> None:
    save("web1", "a", "2025-01-01T00:00:01Z")
    save("web2", "b", "2025-01-01T00:00:03Z")
    save("web1", "c", "2025-01-01T00:00:02Z")
    runs = command_logs.recent_runs("shop")
    assert all(isinstance(r, RunLogMeta) for r in runs)
    assert [r.run_id for r in runs] == ["b", "c", "a"]
    assert [r.run_id for r in command_logs.recent_runs("shop", "web1")] == ["c", "a"]


def test_a_commands_logs_are_its_run_on_each_instance() -> None:
    save("web2", "w2", "2025-01-01T00:00:01Z", command_id="deployment:shop:4:web2")
    save("web1", "w1", "2025-01-01T00:00:02Z", command_id="deployment:shop:4:web1")
    save("web1", "other", "2025-01-01T00:00:03Z", command_id="deployment:shop:5:web1")
    found = command_logs.logs_of("shop", "deployment:shop:4")
    assert [(meta.hostname, meta.run_id, text) for meta, text in found] == [
        ("web1", "w1", "log of w1\n"),
        ("web2", "w2", "log of w2\n"),
    ]
    [(meta, _)] = command_logs.logs_of("shop", "other")
    assert meta.command_id == "deployment:shop:5:web1"


def test_a_metadata_file_that_is_no_run_is_skipped(home: Path) -> None:
    save("web1", "good", "2025-01-01T00:00:01Z")
    bad = home / "logs" / "runs" / "shop" / "web1" / "bad.json"
    bad.write_text('{"stack": "shop", "hostname": "web1", "run_id": "bad", "exit_code": "x"}')
    assert [r.run_id for r in command_logs.recent_runs("shop")] == ["good"]


def test_nothing_saved_and_bad_names_are_clear() -> None:
    with pytest.raises(NotFound, match="no saved log for 'nope-1' on shop"):
        command_logs.logs_of("shop", "nope-1")
    with pytest.raises(InvalidInput, match="invalid stack name"):
        command_logs.recent_runs("../etc")

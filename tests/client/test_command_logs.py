"""Finding saved run logs for `opsflow command list|log`: by run id or by command, newest
first, each metadata typed (RunLogMeta), in the artifact store wherever the worker was."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from client import command_logs
from opsflow.errors import InvalidInput, NotFound
from opsflow.run_logs import RunLogMeta
from runtime import run_logs
from tests.aws.conftest import AwsEnv, free_port


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
    bad = home / "logs" / "runs" / "shop" / "web1" / "bad.json"  # saved before the store
    bad.parent.mkdir(parents=True)
    bad.write_text('{"stack": "shop", "hostname": "web1", "run_id": "bad", "exit_code": "x"}')
    assert [r.run_id for r in command_logs.recent_runs("shop")] == ["good"]


def test_nothing_saved_and_bad_names_are_clear() -> None:
    with pytest.raises(NotFound, match="no saved log for 'nope-1' on shop"):
        command_logs.logs_of("shop", "nope-1")
    with pytest.raises(InvalidInput, match="invalid stack name"):
        command_logs.recent_runs("../etc")


def test_runs_a_worker_saved_elsewhere_are_found_through_the_shared_store(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = home / "shared-store"
    monkeypatch.setenv("OPSFLOW_ARTIFACTS", str(shared))
    monkeypatch.setenv("OPSFLOW_HOME", str(home / "worker"))
    save("web1", "w1", "2025-01-01T00:00:01Z", command_id="deployment:shop:4:web1")
    monkeypatch.setenv("OPSFLOW_HOME", str(home / "cli"))  # the CLI's machine
    assert [r.run_id for r in command_logs.recent_runs("shop")] == ["w1"]
    [(meta, text)] = command_logs.logs_of("shop", "deployment:shop:4")
    assert (meta.run_id, text) == ("w1", "log of w1\n")
    monkeypatch.setenv("OPSFLOW_ARTIFACTS", str(home / "another-store"))
    with pytest.raises(NotFound, match=f"artifact store {home / 'another-store'}"):
        command_logs.logs_of("shop", "w1")


def test_many_instances_are_read_at_once_and_keep_their_order() -> None:
    for number in range(40):
        save(f"web{number}", f"r{number}", f"2025-01-01T00:00:{number:02d}Z")
    assert [r.run_id for r in command_logs.recent_runs("shop")] == [
        f"r{n}" for n in reversed(range(40))
    ]
    found = command_logs.logs_of("shop", "r7")
    assert [(m.hostname, text) for m, text in found] == [("web7", "log of r7\n")]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "client.cli", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
        check=False,
    )


def test_the_cli_reads_an_s3_store_and_names_one_it_cannot_reach(
    aws_env: AwsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = boto3.client("s3", endpoint_url=aws_env.moto_url, region_name=aws_env.region)
    s3.create_bucket(Bucket="shared-runs")
    monkeypatch.setenv("OPSFLOW_ARTIFACTS", "s3://shared-runs/team")
    save("web1", "w1", "2025-01-01T00:00:01Z")
    shown = cli("command", "log", "shop", "w1")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[1:] == ["log of w1"]

    monkeypatch.setenv("OPSFLOW_ARTIFACTS", "s3://no-such-bucket/team")
    for args in (("command", "list", "shop"), ("command", "log", "shop", "w1")):
        refused = cli(*args)
        assert refused.returncode == 1 and "no-such-bucket" in refused.stderr
        assert "Traceback" not in refused.stderr
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nobody there
    monkeypatch.setenv("OPSFLOW_ARTIFACTS", "s3://shared-runs/team")
    unreachable = cli("command", "list", "shop")
    assert unreachable.returncode == 1 and "shared-runs" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr

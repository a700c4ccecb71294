"""Run logs kept on the worker: saving, pruning to the newest runs, reading them back;
only metadata a reader can read (RunLogMeta) is saved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opsflow.errors import InvalidInput, NotFound
from opsflow.run_logs import RunLogMeta
from runtime import run_logs


def meta(run_id: str, hostname: str = "web1", **fields: Any) -> dict[str, Any]:
    return {"stack": "shop", "hostname": hostname, "run_id": run_id, "exit_code": 0, **fields}


def test_a_saved_run_reads_back(opsflow_home: Path) -> None:
    path = run_logs.save_run_log(meta("r1", event="setup"), "2024-01-01T00:00:00Z hi\n")
    assert path == opsflow_home / "logs/runs/shop/web1/r1.log"
    assert run_logs.read_run_log("shop", "web1", "r1") == (
        meta("r1", event="setup"),
        "2024-01-01T00:00:00Z hi\n",
    )
    assert not list(path.parent.glob(".*"))  # nothing left aside


def test_only_the_newest_runs_of_an_instance_are_kept(opsflow_home: Path) -> None:
    assert run_logs.KEEP_RUNS == 30
    for number in range(1, 6):
        run_logs.save_run_log(meta(f"r{number}"), f"log {number}\n", keep=3)
    run_logs.save_run_log(meta("other", hostname="web2"), "", keep=3)  # another instance
    assert [m["run_id"] for m in run_logs.list_run_logs("shop", "web1")] == ["r5", "r4", "r3"]
    kept = sorted(p.name for p in run_logs.instance_dir("shop", "web1").iterdir())
    assert kept == ["r3.json", "r3.log", "r4.json", "r4.log", "r5.json", "r5.log"]
    assert [m["run_id"] for m in run_logs.list_run_logs("shop", "web2")] == ["other"]
    # saving a run again (a retry re-attached) makes it the newest
    run_logs.save_run_log(meta("r3", attached=True), "log 3\n", keep=3)
    assert [m["run_id"] for m in run_logs.list_run_logs("shop", "web1")] == ["r3", "r5", "r4"]


def test_a_run_is_found_on_whichever_instance_ran_it(opsflow_home: Path) -> None:
    run_logs.save_run_log(meta("web2-setup-1", hostname="web2"), "")
    assert [m["hostname"] for m in run_logs.find_run_logs("shop", "web2-setup-1")] == ["web2"]
    assert run_logs.find_run_logs("shop", "nope") == []
    assert run_logs.find_run_logs("other", "nope") == []
    assert run_logs.list_run_logs("shop", "web9") == []


def test_missing_runs_and_bad_names_are_clear(opsflow_home: Path) -> None:
    with pytest.raises(NotFound, match="no saved log of run r1 on shop/web1"):
        run_logs.read_run_log("shop", "web1", "r1")
    for stack, hostname, run_id in [
        ("../x", "web1", "r1"),
        ("shop", "web1/..", "r1"),
        ("shop", "web1", "../r1"),
        ("shop", "web1", ".r1"),
    ]:
        with pytest.raises(InvalidInput):
            run_logs.read_run_log(stack, hostname, run_id)
    with pytest.raises(InvalidInput):
        run_logs.save_run_log(meta("a/b"), "")


def test_fields_no_reader_could_read_are_not_saved(opsflow_home: Path) -> None:
    with pytest.raises(ValueError, match="exit_code"):
        run_logs.save_run_log(meta("r1", exit_code="crashed"), "")
    with pytest.raises(ValueError, match="run_id"):
        run_logs.save_run_log({"stack": "shop", "hostname": "web1"}, "")
    assert run_logs.list_run_logs("shop", "web1") == []


def test_a_run_log_meta_is_saved_with_every_field(opsflow_home: Path) -> None:
    typed = RunLogMeta(stack="shop", hostname="web1", run_id="r1", exit_code=3, recipes=["a::b"])
    run_logs.save_run_log(typed, "boom\n")
    fields, text = run_logs.read_run_log("shop", "web1", "r1")
    assert RunLogMeta.model_validate(fields) == typed and text == "boom\n"
    assert set(fields) == set(RunLogMeta.model_fields)

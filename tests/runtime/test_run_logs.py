"""Run logs in the artifact store: saving, pruning to the newest runs, reading them back,
the same against a directory store and a real moto S3 server; only metadata a reader can
read (RunLogMeta) is saved; logs saved on disk before the store are still read."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import boto3
import pytest

from opsflow.errors import InvalidInput, NotFound
from opsflow.run_logs import RunLogMeta, parse_index
from runtime import run_logs
from runtime.artifacts import ArtifactStore, StoreUnavailable, digest_of, open_store
from tests.aws.conftest import AwsEnv


@pytest.fixture(params=["directory", "s3"])
def store(request: pytest.FixtureRequest, opsflow_home: Path) -> ArtifactStore:
    """The store every default open_store() opens: a directory, or a bucket on moto."""
    if request.param == "directory":
        return open_store()
    aws: AwsEnv = request.getfixturevalue("aws_env")
    boto3.client("s3", endpoint_url=aws.moto_url, region_name=aws.region).create_bucket(
        Bucket="runs-test"
    )
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    monkeypatch.setenv("OPSFLOW_ARTIFACTS", "s3://runs-test/opsflow")
    return open_store()


def meta(run_id: str, hostname: str = "web1", **fields: Any) -> dict[str, Any]:
    return {"stack": "shop", "hostname": hostname, "run_id": run_id, "exit_code": 0, **fields}


def everything(**given: Any) -> dict[str, Any]:
    """A run's fields as read back: every RunLogMeta field, defaults where not given."""
    return RunLogMeta.model_validate(given).model_dump(mode="json")


def test_a_saved_run_reads_back_from_the_store(store: ArtifactStore) -> None:
    digest = run_logs.save_run_log(meta("r1", event="setup"), "2024-01-01T00:00:00Z hi\n")
    assert digest == digest_of(b"2024-01-01T00:00:00Z hi\n") and store.has(digest)
    assert run_logs.read_run_log("shop", "web1", "r1") == (
        everything(**meta("r1", event="setup")),
        "2024-01-01T00:00:00Z hi\n",
    )
    # one index per instance, naming the log's blob
    assert store.list_named("runs/") == ["runs/shop/web1.json"]
    [saved] = parse_index(store.read_named("runs/shop/web1.json") or b"")
    assert saved.log == digest and saved.meta.event == "setup"


def test_only_the_newest_runs_of_an_instance_are_kept(store: ArtifactStore) -> None:
    assert run_logs.KEEP_RUNS == 30
    for number in range(1, 6):
        run_logs.save_run_log(meta(f"r{number}"), f"log {number}\n", keep=3)
    run_logs.save_run_log(meta("other", hostname="web2"), "", keep=3)  # another instance
    assert [m["run_id"] for m in run_logs.list_run_logs("shop", "web1")] == ["r5", "r4", "r3"]
    assert [m["run_id"] for m in run_logs.list_run_logs("shop", "web2")] == ["other"]
    with pytest.raises(NotFound, match="no saved log of run r2 on shop/web1"):
        run_logs.read_run_log("shop", "web1", "r2")
    # a cut run's blob is left to the store's pruning (another run may be the same bytes)
    assert store.has(digest_of(b"log 2\n"))
    # saving a run again (a retry re-attached) makes it the newest, once
    run_logs.save_run_log(meta("r3", attached=True), "log 3\n", keep=3)
    assert [m["run_id"] for m in run_logs.list_run_logs("shop", "web1")] == ["r3", "r5", "r4"]
    assert run_logs.read_run_log("shop", "web1", "r3")[0]["attached"] is True


def test_a_run_is_found_on_whichever_instance_ran_it(store: ArtifactStore) -> None:
    run_logs.save_run_log(meta("web2-setup-1", hostname="web2"), "")
    run_logs.save_run_log(meta("web1-setup-1", hostname="web1"), "")
    assert run_logs.hostnames("shop") == ["web1", "web2"]
    assert [m["hostname"] for m in run_logs.find_run_logs("shop", "web2-setup-1")] == ["web2"]
    assert run_logs.find_run_logs("shop", "nope") == []
    assert run_logs.find_run_logs("other", "nope") == []
    assert run_logs.list_run_logs("shop", "web9") == []
    assert run_logs.hostnames("sho") == []  # a prefix of a stack's name is not that stack


def test_secure_values_reach_the_store_only_as_the_runner_redacted_them(
    store: ArtifactStore,
) -> None:
    # The runner hands over the log already redacted; what is saved is exactly that text.
    run_logs.save_run_log(meta("r1"), "2024-01-01T00:00:00Z password=******\n")
    [name] = store.list_named("runs/")
    index = store.read_named(name) or b""
    assert b"password" not in index  # the index carries metadata only
    assert run_logs.read_run_log("shop", "web1", "r1")[1].endswith("password=******\n")


def test_missing_runs_and_bad_names_are_clear(store: ArtifactStore) -> None:
    with pytest.raises(NotFound, match=f"no saved log of run r1 on shop/web1.*{store.location}"):
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
    assert store.list_named("runs/") == []


def test_fields_no_reader_could_read_are_not_saved(store: ArtifactStore) -> None:
    with pytest.raises(ValueError, match="exit_code"):
        run_logs.save_run_log(meta("r1", exit_code="crashed"), "")
    with pytest.raises(ValueError, match="run_id"):
        run_logs.save_run_log({"stack": "shop", "hostname": "web1"}, "")
    assert run_logs.list_run_logs("shop", "web1") == []


def test_a_run_log_meta_is_saved_with_every_field(store: ArtifactStore) -> None:
    typed = RunLogMeta(stack="shop", hostname="web1", run_id="r1", exit_code=3, recipes=["a::b"])
    run_logs.save_run_log(typed, "boom\n")
    fields, text = run_logs.read_run_log("shop", "web1", "r1")
    assert RunLogMeta.model_validate(fields) == typed and text == "boom\n"
    assert set(fields) == set(RunLogMeta.model_fields)


def test_an_index_entry_that_is_no_run_hides_only_itself(store: ArtifactStore) -> None:
    run_logs.save_run_log(meta("good"), "fine\n")
    name = run_logs.index_name("shop", "web1")
    document = json.loads(store.read_named(name) or b"")
    document["runs"].append({"meta": meta("bad", exit_code="x"), "log": "0" * 64})
    store.write_named(name, json.dumps(document).encode())
    assert [m["run_id"] for m in run_logs.list_run_logs("shop", "web1")] == ["good"]
    store.write_named(name, b"not json")
    assert run_logs.list_run_logs("shop", "web1") == []


def write_old_run(home: Path, run_id: str, text: str, mtime_ns: int, **fields: Any) -> None:
    """A run as the worker saved it before the store: two files on its disk."""
    directory = home / "logs" / "runs" / "shop" / "web1"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{run_id}.log").write_text(text)
    info = directory / f"{run_id}.json"
    info.write_text(json.dumps(meta(run_id, **fields), indent=2, sort_keys=True))
    os.utime(info, ns=(mtime_ns, mtime_ns))


def test_logs_saved_on_disk_before_the_store_are_still_read_after_the_stores(
    store: ArtifactStore, opsflow_home: Path
) -> None:
    write_old_run(opsflow_home, "old1", "first\n", 1_000_000_000_000_000_000)
    write_old_run(opsflow_home, "old2", "second\n", 1_000_000_000_000_000_001, event="setup")
    (opsflow_home / "logs/runs/shop/web1/junk.json").write_text("{")
    assert run_logs.hostnames("shop") == ["web1"]
    run_logs.save_run_log(meta("new"), "third\n")
    assert [m["run_id"] for m in run_logs.list_run_logs("shop", "web1")] == ["new", "old2", "old1"]
    assert run_logs.read_run_log("shop", "web1", "old2") == (
        meta("old2", event="setup"),
        "second\n",
    )
    # the store's copy wins over an old file of the same run; nothing is written on disk
    run_logs.save_run_log(meta("old1", attached=True), "first, again\n")
    assert run_logs.read_run_log("shop", "web1", "old1")[1] == "first, again\n"
    assert sorted(p.name for p in run_logs.instance_dir("shop", "web1").iterdir()) == [
        "junk.json",
        "old1.json",
        "old1.log",
        "old2.json",
        "old2.log",
    ]


def test_a_store_that_cannot_be_reached_is_named(
    aws_env: AwsEnv, opsflow_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSFLOW_ARTIFACTS", "s3://no-such-bucket/logs")
    with pytest.raises(StoreUnavailable, match="no-such-bucket"):
        run_logs.save_run_log(meta("r1"), "text\n")
    with pytest.raises(StoreUnavailable, match="no-such-bucket"):
        run_logs.list_run_logs("shop", "web1")

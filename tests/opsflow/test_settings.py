"""Where the artifact store is: OPSFLOW_ARTIFACTS, normalised so machines agree; the
worker's id (per OPSFLOW_HOME) and its own task queue."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsflow import settings
from opsflow.errors import InvalidInput


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPSFLOW_HOME", str(tmp_path))
    monkeypatch.delenv("OPSFLOW_ARTIFACTS", raising=False)
    return tmp_path


def test_unset_is_a_directory_under_the_home(home: Path) -> None:
    assert settings.artifacts_location() == str(home / "artifacts")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/srv/store/", "/srv/store"),
        ("/srv//store/./x/..", "/srv/store"),
        ("s3://bucket", "s3://bucket"),
        ("s3://my.bucket-1/", "s3://my.bucket-1"),
        ("s3://bucket//team/opsflow/", "s3://bucket/team/opsflow"),
    ],
)
def test_values_are_normalised(
    home: Path, monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    monkeypatch.setenv("OPSFLOW_ARTIFACTS", value)
    assert settings.artifacts_location() == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("relative/dir", "absolute path"),
        ("s3://", "does not name an S3 bucket"),
        ("s3://Upper", "does not name an S3 bucket"),
        ("gs://bucket/x", "neither an absolute path"),
    ],
)
def test_bad_values_name_the_setting(
    home: Path, monkeypatch: pytest.MonkeyPatch, value: str, problem: str
) -> None:
    monkeypatch.setenv("OPSFLOW_ARTIFACTS", value)
    with pytest.raises(InvalidInput, match="OPSFLOW_ARTIFACTS") as err:
        settings.artifacts_location()
    assert problem in str(err.value)


def test_the_worker_id_is_written_once_per_home_and_kept(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPSFLOW_WORKER_ID", raising=False)
    first = settings.worker_id()
    assert first == settings.worker_id() == (home / "worker.id").read_text().strip()
    monkeypatch.setenv("OPSFLOW_HOME", str(home / "other"))
    assert settings.worker_id() != first  # another home is another worker
    monkeypatch.setenv("OPSFLOW_WORKER_ID", "web-box.1")
    assert settings.worker_id() == "web-box.1"
    assert settings.worker_queue("opsflow", "web-box.1") == "opsflow@web-box.1"
    assert settings.worker_queue("opsflow@old", "web-box.1") == "opsflow@web-box.1"


@pytest.mark.parametrize("value", ["-x", "a b", "x" * 65, "a@b"])
def test_a_bad_worker_id_names_the_setting(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("OPSFLOW_WORKER_ID", value)
    with pytest.raises(InvalidInput, match="OPSFLOW_WORKER_ID"):
        settings.worker_id()

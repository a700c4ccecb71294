"""Where the artifact store is: OPSFLOW_ARTIFACTS, normalised so machines agree."""

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

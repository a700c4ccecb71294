"""Fixtures for the shared runtime modules."""

from __future__ import annotations

from pathlib import Path

import boto3  # type: ignore[import-untyped, unused-ignore]
import pytest

from runtime.artifacts import ArtifactStore, open_store

# The real moto server and fault proxy of tests/aws, for the S3 artifact store's tests.
from tests.aws.conftest import AwsEnv, aws_env, fault_proxy, moto_reset, moto_server

__all__ = ["aws_env", "fault_proxy", "moto_reset", "moto_server"]

BUCKET = "opsflow-artifacts"
S3_LOCATION = f"s3://{BUCKET}/team/a"


@pytest.fixture
def s3_store(aws_env: AwsEnv) -> ArtifactStore:
    """An artifact store in a real moto server's bucket, behind the fault proxy."""
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    return open_store(S3_LOCATION)


@pytest.fixture
def dir_store(tmp_path: Path) -> ArtifactStore:
    return open_store(str(tmp_path / "store"))


@pytest.fixture(params=["directory", "s3"])
def store(request: pytest.FixtureRequest) -> ArtifactStore:
    """Each test that takes it runs against both backends."""
    fixture = "dir_store" if request.param == "directory" else "s3_store"
    found: ArtifactStore = request.getfixturevalue(fixture)
    return found


@pytest.fixture
def opsflow_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "opsflow home"  # a space: every path must be quoted on its way
    monkeypatch.setenv("OPSFLOW_HOME", str(home))
    return home

"""The artifact store's contract, run against a directory and a real moto S3 server (behind
the fault proxy), then what only one backend can show: files on disk, S3's failures."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import boto3  # type: ignore[import-untyped, unused-ignore]
import pytest

from opsflow.errors import InvalidInput, NotFound
from runtime import artifacts_s3
from runtime.artifacts import ArtifactStore, StoreCorrupt, StoreUnavailable, open_store
from tests.aws.conftest import AwsEnv, free_port
from tests.runtime.conftest import BUCKET, S3_LOCATION


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def corrupt_blob(store: ArtifactStore, digest: str, data: bytes) -> None:
    """Replace the blob's bytes behind the store's back."""
    if store.location.startswith("s3://"):
        key = f"team/a/blobs/sha256/{digest}"
        boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=data)
        return
    path = Path(store.location, "blobs", "sha256", digest[:2], digest)
    path.chmod(0o644)
    path.write_bytes(data)


# -- the contract, on both backends -----------------------------------------------------


def test_a_blob_is_named_by_its_sha256_and_comes_back(store: ArtifactStore) -> None:
    data = b"cookbooks tree\x00\xff"
    digest = store.put(data)
    assert digest == sha(data)
    assert store.has(digest)
    assert store.get(digest) == data
    assert store.put(data) == digest  # the same content, the same name


def test_files_are_streamed_in_and_out(store: ArtifactStore, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # more than one chunk
    source = tmp_path / "tree.tar.gz"
    source.write_bytes(data)
    digest = store.put_file(source)
    assert digest == sha(data)
    target = tmp_path / "out" / "copy.tar.gz"
    store.get_to(digest, target)
    assert target.read_bytes() == data
    assert sorted(p.name for p in target.parent.iterdir()) == ["copy.tar.gz"]


def test_a_missing_blob_is_not_found_naming_digest_and_store(store: ArtifactStore) -> None:
    digest = sha(b"never stored")
    assert not store.has(digest)
    with pytest.raises(NotFound) as caught:
        store.get(digest)
    assert digest in str(caught.value) and store.location in str(caught.value)


def test_a_corrupt_blob_is_refused_never_returned(store: ArtifactStore, tmp_path: Path) -> None:
    digest = store.put(b"the real bytes")
    corrupt_blob(store, digest, b"other bytes")
    with pytest.raises(StoreCorrupt) as caught:
        store.get(digest)
    assert digest in str(caught.value) and store.location in str(caught.value)
    target = tmp_path / "fetched"
    with pytest.raises(StoreCorrupt):
        store.get_to(digest, target)
    assert list(tmp_path.glob("*fetched*")) == []  # nothing half-written left behind


def test_deleting_a_blob_removes_it_and_absent_is_fine(store: ArtifactStore) -> None:
    digest = store.put(b"old tree")
    store.delete(digest)
    assert not store.has(digest)
    store.delete(digest)


def test_named_objects_are_replaced_listed_and_deleted(store: ArtifactStore) -> None:
    assert store.read_named("runs/s1/a.json") is None
    store.write_named("runs/s1/a.json", b"one")
    store.write_named("runs/s1/a.json", b"two")
    store.write_named("runs/s1/b@2:x.json", b"b")
    store.write_named("runs/s2/c.json", b"c")
    store.write_named("keys/public.pem", b"k")
    store.put(b"a blob is not a named object")
    assert store.read_named("runs/s1/a.json") == b"two"
    assert store.list_named("runs/s1/") == ["runs/s1/a.json", "runs/s1/b@2:x.json"]
    assert store.list_named("runs/") == ["runs/s1/a.json", "runs/s1/b@2:x.json", "runs/s2/c.json"]
    assert store.list_named("runs/s1/b") == ["runs/s1/b@2:x.json"]
    assert store.list_named("") == [
        "keys/public.pem",
        "runs/s1/a.json",
        "runs/s1/b@2:x.json",
        "runs/s2/c.json",
    ]
    assert store.list_named("nothing/") == []
    store.delete_named("runs/s1/a.json")
    store.delete_named("runs/s1/a.json")
    assert store.read_named("runs/s1/a.json") is None
    assert store.list_named("runs/s1/") == ["runs/s1/b@2:x.json"]


@pytest.mark.parametrize("name", ["", "/abs", "a/../b", "..", "a//b", "a b", "a/", "é", "./a"])
def test_bad_names_are_refused(store: ArtifactStore, name: str) -> None:
    with pytest.raises(InvalidInput, match="artifact name"):
        store.write_named(name, b"x")
    with pytest.raises(InvalidInput, match="artifact name"):
        store.read_named(name)


@pytest.mark.parametrize("digest", ["", "abc", "A" * 64, "../" + "a" * 61])
def test_bad_digests_are_refused(store: ArtifactStore, digest: str) -> None:
    with pytest.raises(InvalidInput, match="sha256"):
        store.get(digest)


# -- the directory backend --------------------------------------------------------------


def test_directory_blobs_are_read_only_files_by_digest(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "store"))
    digest = store.put(b"x")
    path = tmp_path / "store" / "blobs" / "sha256" / digest[:2] / digest
    assert path.read_bytes() == b"x"
    assert path.stat().st_mode & 0o777 == 0o444
    store.write_named("a/b", b"y")
    assert (tmp_path / "store" / "named" / "a" / "b").read_bytes() == b"y"
    assert list((tmp_path / "store" / "tmp").iterdir()) == []  # written aside, renamed


def test_the_default_store_is_settings_location(
    opsflow_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPSFLOW_ARTIFACTS", raising=False)
    store = open_store()
    assert store.location == str(opsflow_home / "artifacts")
    store.put(b"z")
    assert (opsflow_home / "artifacts" / "blobs").is_dir()


def test_an_unwritable_directory_is_unavailable_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    store = open_store(str(blocker / "store"))
    with pytest.raises(StoreUnavailable, match=str(blocker / "store")):
        store.put(b"x")


def test_a_directory_store_never_imports_boto3(tmp_path: Path) -> None:
    code = (
        "import sys; from runtime.artifacts import open_store; "
        f"open_store({str(tmp_path / 's')!r}).put(b'x'); "
        "print('boto3' in sys.modules, 'botocore' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == "False False"


# -- the S3 backend ---------------------------------------------------------------------


def test_the_same_content_is_uploaded_once(s3_store: ArtifactStore, aws_env: AwsEnv) -> None:
    s3_store.put(b"same")
    s3_store.put(b"same")
    assert aws_env.proxy.count("PutObject") == 1
    assert aws_env.proxy.count("HeadObject") == 2


def test_s3_keys_are_under_the_prefix(s3_store: ArtifactStore) -> None:
    digest = s3_store.put(b"k")
    s3_store.write_named("n/1", b"v")
    listed = boto3.client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]
    assert sorted(item["Key"] for item in listed) == [
        f"team/a/blobs/sha256/{digest}",
        "team/a/named/n/1",
    ]


def test_throttling_is_retried_and_succeeds(s3_store: ArtifactStore, aws_env: AwsEnv) -> None:
    aws_env.proxy.throttle("PutObject", times=2)
    aws_env.proxy.throttle("GetObject", times=1)
    digest = s3_store.put(b"busy")
    assert s3_store.get(digest) == b"busy"
    assert aws_env.proxy.count("PutObject") == 3
    assert aws_env.proxy.count("GetObject") == 2


def test_throttling_that_never_ends_is_unavailable_naming_the_store(
    s3_store: ArtifactStore, aws_env: AwsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(artifacts_s3, "MAX_ATTEMPTS", 2)
    store = open_store(S3_LOCATION)
    aws_env.proxy.fail("PutObject", "SlowDown", "Please reduce your request rate.", 503)
    with pytest.raises(StoreUnavailable) as caught:
        store.put(b"never")
    assert S3_LOCATION in str(caught.value) and "SlowDown" in str(caught.value)
    assert aws_env.proxy.count("PutObject") == 3  # the first try and 2 retries


def test_a_missing_bucket_names_the_bucket(aws_env: AwsEnv) -> None:
    store = open_store("s3://no-such-bucket/x")
    expected = "bucket no-such-bucket does not exist (OPSFLOW_ARTIFACTS=s3://no-such-bucket/x)"
    with pytest.raises(StoreUnavailable, match=expected.replace("(", r"\(").replace(")", r"\)")):
        store.put(b"x")
    with pytest.raises(StoreUnavailable, match="no-such-bucket does not exist"):
        store.get(sha(b"x"))


def test_access_denied_is_unavailable_naming_the_store(
    s3_store: ArtifactStore, aws_env: AwsEnv
) -> None:
    digest = s3_store.put(b"secret-free")
    aws_env.proxy.fail("GetObject", "AccessDenied", "Access Denied", 403)
    with pytest.raises(StoreUnavailable, match="access denied") as caught:
        s3_store.get(digest)
    assert S3_LOCATION in str(caught.value)


def test_an_unreachable_endpoint_is_unavailable_naming_the_store(
    aws_env: AwsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(artifacts_s3, "MAX_ATTEMPTS", 2)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nobody there
    store = open_store(S3_LOCATION)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        store.get(sha(b"x"))
    assert S3_LOCATION in str(caught.value) and "127.0.0.1" in str(caught.value)
    assert time.monotonic() - started < 15


def test_no_credentials_is_unavailable_naming_the_store(
    aws_env: AwsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    with pytest.raises(StoreUnavailable, match="no AWS credentials") as caught:
        open_store(S3_LOCATION).has(sha(b"x"))
    assert S3_LOCATION in str(caught.value)

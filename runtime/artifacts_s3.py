"""The artifact store on an S3 API (AWS S3, MinIO, Ceph, moto): see runtime/artifacts.py.

boto3's standard configuration (AWS_ENDPOINT_URL, AWS_REGION, credentials from the
environment, profile or instance role), standard retries (throttling, SlowDown, 5xx and
connection errors back off and retry) and short timeouts, so an unreachable store fails in
seconds with StoreUnavailable naming `s3://bucket/prefix` and what failed.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, cast

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from runtime.artifacts import (
    CHUNK,
    StoreUnavailable,
    check_digest,
    check_name,
    check_prefix,
    copy_verified,
    corrupt,
    digest_of,
    file_digest,
    missing,
)

MAX_ATTEMPTS = 5  # retries after the first try (botocore counts max_attempts so)
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
_ABSENT = frozenset({"404", "NoSuchKey", "NotFound"})
_DENIED = frozenset(
    {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"}
)


class S3Store:
    """A store under `s3://bucket/prefix`."""

    def __init__(self, location: str) -> None:
        self.location = location
        bucket, _, prefix = location.removeprefix("s3://").partition("/")
        self.bucket = bucket
        self._prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        config = Config(
            retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
        )
        self._s3: Any = boto3.client("s3", config=config)

    def _blob(self, digest: str) -> str:
        return f"{self._prefix}blobs/sha256/{check_digest(digest)}"

    def _named(self, name: str) -> str:
        return f"{self._prefix}named/{check_name(name)}"

    @contextlib.contextmanager
    def _calls(self, doing: str) -> Iterator[None]:
        """boto3's failures, after its retries, as StoreUnavailable naming the store."""
        try:
            yield
        except NoCredentialsError as err:
            raise StoreUnavailable(
                f"artifact store {self.location}: cannot {doing}: no AWS credentials "
                "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile or an instance role)"
            ) from err
        except ClientError as err:
            code = str(err.response.get("Error", {}).get("Code", ""))
            if code == "NoSuchBucket":
                raise StoreUnavailable(
                    f"artifact store {self.location}: bucket {self.bucket} does not exist "
                    f"(OPSFLOW_ARTIFACTS={self.location})"
                ) from err
            if code in _DENIED:
                raise StoreUnavailable(
                    f"artifact store {self.location}: cannot {doing}: access denied ({code})"
                ) from err
            message = err.response.get("Error", {}).get("Message", "")
            raise StoreUnavailable(
                f"artifact store {self.location}: cannot {doing}: S3 refused "
                f"{err.operation_name}: {code}: {message}".rstrip(": ")
            ) from err
        except BotoCoreError as err:
            raise StoreUnavailable(
                f"artifact store {self.location}: cannot {doing}: {err}"
            ) from err

    def _head(self, key: str) -> bool:
        try:
            self._s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as err:
            if str(err.response.get("Error", {}).get("Code", "")) in _ABSENT:
                return False
            raise
        return True

    def _get_body(self, key: str) -> BinaryIO | None:
        try:
            response = self._s3.get_object(Bucket=self.bucket, Key=key)
        except ClientError as err:
            if str(err.response.get("Error", {}).get("Code", "")) in _ABSENT:
                return None
            raise
        return cast(BinaryIO, response["Body"])

    def has(self, digest: str) -> bool:
        key = self._blob(digest)
        with self._calls(f"look for blob {digest}"):
            return self._head(key)

    def put(self, data: bytes) -> str:
        digest = digest_of(data)
        key = self._blob(digest)
        with self._calls(f"store blob {digest}"):
            if not self._head(key):
                self._s3.put_object(Bucket=self.bucket, Key=key, Body=data)
        return digest

    def put_file(self, path: Path) -> str:
        # Hashed first (the key is the digest), then streamed up unless already there.
        try:
            digest = file_digest(path)
        except OSError as err:
            raise StoreUnavailable(
                f"artifact store {self.location}: cannot read {path}: {err.strerror or err}"
            ) from err
        key = self._blob(digest)
        with self._calls(f"store blob {digest}"):
            if not self._head(key):
                with path.open("rb") as body:
                    self._s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        return digest

    def get(self, digest: str) -> bytes:
        key = self._blob(digest)
        with self._calls(f"read blob {digest}"):
            body = self._get_body(key)
            if body is None:
                raise missing(digest, self.location)
            hasher = hashlib.sha256()
            chunks: list[bytes] = []
            while chunk := body.read(CHUNK):
                hasher.update(chunk)
                chunks.append(chunk)
        if hasher.hexdigest() != digest:
            raise corrupt(digest, self.location, hasher.hexdigest())
        return b"".join(chunks)

    def get_to(self, digest: str, path: Path) -> None:
        key = self._blob(digest)
        with self._calls(f"read blob {digest}"):
            body = self._get_body(key)
            if body is None:
                raise missing(digest, self.location)
            try:
                copy_verified(body, path, digest, self.location)
            except OSError as err:
                raise StoreUnavailable(
                    f"artifact store {self.location}: cannot write {path}: {err.strerror or err}"
                ) from err

    def delete(self, digest: str) -> None:
        key = self._blob(digest)
        with self._calls(f"delete blob {digest}"):
            self._s3.delete_object(Bucket=self.bucket, Key=key)

    def list_blobs(self) -> dict[str, datetime]:
        """Every blob's digest and when it was stored (for pruning)."""
        top = f"{self._prefix}blobs/sha256/"
        found: dict[str, datetime] = {}
        with self._calls("list blobs"):
            pages = self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=top
            )
            for page in pages:
                for item in page.get("Contents", []):
                    found[item["Key"].removeprefix(top)] = item["LastModified"]
        return found

    def write_named(self, name: str, data: bytes) -> None:
        key = self._named(name)
        with self._calls(f"write {name}"):
            self._s3.put_object(Bucket=self.bucket, Key=key, Body=data)

    def read_named(self, name: str) -> bytes | None:
        key = self._named(name)
        with self._calls(f"read {name}"):
            body = self._get_body(key)
            return None if body is None else body.read()

    def list_named(self, prefix: str) -> list[str]:
        top = f"{self._prefix}named/"
        found: list[str] = []
        with self._calls(f"list {prefix or 'named objects'}"):
            pages = self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=top + check_prefix(prefix)
            )
            for page in pages:
                found.extend(item["Key"].removeprefix(top) for item in page.get("Contents", []))
        return sorted(found)

    def delete_named(self, name: str) -> None:
        key = self._named(name)
        with self._calls(f"delete {name}"):
            self._s3.delete_object(Bucket=self.bucket, Key=key)

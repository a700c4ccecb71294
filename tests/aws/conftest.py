"""AWS tests: a real moto server process, and a fault proxy between boto3 and it.

Fixtures:

- `moto_server` (session): the base URL of `moto_server -H 127.0.0.1 -p PORT`.
- `moto_reset`: resets all of moto's state (POST /moto-api/reset) before the test.
- `fault_proxy`: a started `FaultProxy` in front of a freshly reset moto; stopped after.
- `aws_env`: the environment boto3 reads, pointed at the proxy (AWS_ENDPOINT_URL, test
  credentials, us-east-1, no profile or config file): plain `boto3.client("ec2")` works.
- `instances_pending_for`: `instances_pending_for(seconds)` makes instances launched from
  then on look `pending` for that long (see `FaultProxy.instances_pending_for`).

Only 127.0.0.1 is ever connected to.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import boto3  # type: ignore[import-untyped, unused-ignore]
import pytest
from botocore.retries.standard import ExponentialBackoff  # type: ignore[import-untyped, unused-ignore]

from tests.aws.fault_proxy import LOOPBACK, FaultProxy

MOTO_START_TIMEOUT = 30.0


def moto_server_binary() -> str:
    found = Path(sys.executable).parent / "moto_server"
    if not found.exists():
        pytest.fail("moto_server is not installed: run `make test` (it installs the dev extras)")
    return str(found)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def moto_api(
    base_url: str, method: str, path: str, payload: object | None = None, *, timeout: float = 10
) -> tuple[int, bytes]:
    """A call to moto's own API (`/moto-api/...`) on `base_url` (a 127.0.0.1 URL)."""
    parts = urlsplit(base_url)
    if parts.hostname != LOOPBACK or parts.port is None:
        raise ValueError(f"not a {LOOPBACK} URL: {base_url!r}")
    conn = http.client.HTTPConnection(LOOPBACK, parts.port, timeout=timeout)
    try:
        body = None if payload is None else json.dumps(payload).encode()
        headers = {} if body is None else {"Content-Type": "application/json"}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def reset_moto(base_url: str) -> None:
    status, body = moto_api(base_url, "POST", "/moto-api/reset")
    if status != 200:
        raise RuntimeError(f"moto reset failed: HTTP {status}: {body[:500]!r}")


def _log_tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_until_up(process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    deadline = time.monotonic() + MOTO_START_TIMEOUT
    last_error = ""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"moto_server exited with {process.returncode} at start; log {log}:\n"
                + _log_tail(log)
            )
        try:
            status, _ = moto_api(base_url, "GET", "/moto-api/", timeout=2)
            if status == 200:
                return
            last_error = f"HTTP {status}"
        except OSError as exc:
            last_error = str(exc)
        time.sleep(0.1)
    raise RuntimeError(
        f"moto_server did not answer at {base_url} within {MOTO_START_TIMEOUT:.0f}s "
        f"({last_error}); log {log}:\n" + _log_tail(log)
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def start_moto(log: Path, attempts: int = 3) -> tuple[subprocess.Popen[bytes], str]:
    """A started moto server process and its base URL; a port taken meanwhile is retried."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("AWS_")}
    env["NO_PROXY"] = env["no_proxy"] = LOOPBACK
    for attempt in range(1, attempts + 1):
        port = free_port()
        base_url = f"http://{LOOPBACK}:{port}"
        with log.open("ab") as out:
            out.write(f"--- moto_server on {base_url} (attempt {attempt})\n".encode())
            out.flush()
            process = subprocess.Popen(
                [moto_server_binary(), "-H", LOOPBACK, "-p", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        try:
            _wait_until_up(process, base_url, log)
            return process, base_url
        except RuntimeError:
            _stop(process)
            in_use = "Address already in use" in _log_tail(log, 10)
            if attempt == attempts or not in_use:
                raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL (http://127.0.0.1:PORT) of a real moto server process, for the session."""
    log = tmp_path_factory.mktemp("moto") / "moto_server.log"
    process, base_url = start_moto(log)
    try:
        yield base_url
    finally:
        _stop(process)


@pytest.fixture
def moto_reset(moto_server: str) -> str:
    """moto with no state left by earlier tests; its base URL."""
    reset_moto(moto_server)
    return moto_server


@pytest.fixture
def fault_proxy(moto_reset: str) -> Iterator[FaultProxy]:
    """A fault proxy in front of a freshly reset moto, on its own port; stopped after."""
    with FaultProxy(moto_reset) as proxy:
        yield proxy


@dataclass(frozen=True)
class AwsEnv:
    endpoint_url: str  # what AWS_ENDPOINT_URL is: the proxy
    moto_url: str  # moto itself, to look behind the proxy's back
    proxy: FaultProxy
    region: str = "us-east-1"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, fault_proxy: FaultProxy, tmp_path: Path) -> AwsEnv:
    """boto3's environment, pointed at the fault proxy in front of moto."""
    for name in list(os.environ):
        if name.upper().startswith(("AWS_ENDPOINT_URL_", "AWS_SESSION_", "AWS_SECURITY_")):
            monkeypatch.delenv(name)
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_REGION",
        "AWS_RETRY_MODE",
        "AWS_MAX_ATTEMPTS",
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
        "AWS_CA_BUNDLE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", fault_proxy.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # No user config or credentials file, no instance metadata, no HTTP proxy.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("NO_PROXY", "no_proxy"):
        current = os.environ.get(name, "")
        monkeypatch.setenv(name, f"{current},{LOOPBACK}" if current else LOOPBACK)
    # boto3's default session caches credentials and config files: start a fresh one.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    # The retries still happen (tests count them); only botocore's jittered backoff between
    # them (up to 1 + 2 + 4 + 8 s for throttling) is cut short: it asserts nothing here.
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda _self, _context: 0.01)
    return AwsEnv(endpoint_url=fault_proxy.url, moto_url=fault_proxy.upstream, proxy=fault_proxy)


@pytest.fixture
def instances_pending_for(fault_proxy: FaultProxy) -> Callable[[float], None]:
    """`instances_pending_for(seconds)`: instances launched (or started) through the proxy
    from then on stay `pending` for `seconds` before showing `running`.

    moto 5 has no state-manager model for EC2 instances (POST
    /moto-api/state-manager/set-transition with model `ec2::instance` is accepted and
    ignored: they are `running` at once), so the proxy shows the state instead: describe
    through the proxy (AWS_ENDPOINT_URL) to see it.
    """
    return fault_proxy.instances_pending_for

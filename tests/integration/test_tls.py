"""mTLS for real: nginx requiring a client certificate in front of the dev server
(tests/tls_proxy.py). With the right certificate, through variables or a TOML profile,
the `opsflow` CLI and a real worker process work through it; without one, or with a
certificate file that is not there, they exit saying so, without a traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.conftest import binary
from tests.integration.conftest import REPO, cli_env, make_stack_dir, opsflow_cli, start_worker
from tests.tls_proxy import Certificates, clear_temporal_settings, make_certificates, mtls_proxy

pytestmark = pytest.mark.integration

ONE_INSTANCE = "layers:\n  - name: web\n    instances: [{hostname: web1}]\n"
API_KEY = "integration-api-key-never-printed"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def proxy(
    dev_env: WorkflowEnvironment, certs: Certificates, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    upstream = dev_env.client.service_client.config.target_host
    with mtls_proxy(upstream, certs, tmp_path_factory.mktemp("nginx")) as address:
        yield address


@pytest.fixture(autouse=True)
def no_ambient_temporal_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The processes see only the TEMPORAL_* a test gives them, and no user profile."""
    clear_temporal_settings(monkeypatch, tmp_path)


def client_cert_env(certs: Certificates) -> dict[str, str]:
    return {
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(certs.ca),
        "TEMPORAL_TLS_CLIENT_CERT_PATH": str(certs.client.cert),
        "TEMPORAL_TLS_CLIENT_KEY_PATH": str(certs.client.key),
    }


def stop(worker: subprocess.Popen[bytes]) -> None:
    os.killpg(worker.pid, signal.SIGTERM)
    try:
        worker.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


async def test_cli_and_worker_work_through_mtls_with_certificate_variables(
    proxy: str, certs: Certificates, task_queue: str, tmp_path: Path
) -> None:
    extra = client_cert_env(certs)
    stack_file = make_stack_dir(tmp_path, "tlsvars", ONE_INSTANCE, recipes={})
    log = tmp_path / "worker.log"
    worker = start_worker(proxy, task_queue, log, extra=extra)
    try:
        # The stack workflow, its instance's workflow and the local provider's activities
        # all run on the worker, which reaches Temporal only through nginx.
        args = ["stack", "apply", str(stack_file), "--wait"]
        applied = await opsflow_cli(args, proxy, task_queue, extra=extra)
        assert applied.returncode == 0, applied.stderr + log.read_text()
        assert "web1" in applied.stdout and "online" in applied.stdout
        listed = await opsflow_cli(["stack", "list", "-o", "json"], proxy, task_queue, extra=extra)
        assert listed.returncode == 0, listed.stderr
        assert "tlsvars" in [s["name"] for s in json.loads(listed.stdout)]
        args = ["stack", "delete", "tlsvars", "--wait"]
        deleted = await opsflow_cli(args, proxy, task_queue, extra=extra)
        assert deleted.returncode == 0, deleted.stderr
    finally:
        stop(worker)
    polling = next(line for line in log.read_text().splitlines() if "worker polling" in line)
    assert f"worker polling task queue {task_queue} and its own {task_queue}@" in polling
    assert f" on {proxy} " in polling


async def test_cli_and_worker_work_through_mtls_with_a_profile(
    proxy: str, certs: Certificates, task_queue: str, tmp_path: Path
) -> None:
    profiles = tmp_path / "temporal.toml"
    profiles.write_text(
        '[profile.default]\naddress = "127.0.0.1:1"\n\n'
        f'[profile.secured]\naddress = "{proxy}"\napi_key = "{API_KEY}"\n'
        "[profile.secured.tls]\n"
        f'server_ca_cert_path = "{certs.ca}"\n'
        f'client_cert_path = "{certs.client.cert}"\n'
        f'client_key_path = "{certs.client.key}"\n'
    )
    # TEMPORAL_ADDRESS empty counts as unset: the profile says where.
    extra = {"TEMPORAL_CONFIG_FILE": str(profiles), "TEMPORAL_PROFILE": "secured"}
    stack_file = make_stack_dir(tmp_path, "tlsprofile", "layers:\n  - name: web\n", recipes={})
    log = tmp_path / "worker.log"
    worker = start_worker("", task_queue, log, extra=extra)
    try:
        applied = await opsflow_cli(
            ["stack", "apply", str(stack_file), "--wait"], "", task_queue, extra=extra
        )
        assert applied.returncode == 0, applied.stderr + log.read_text()
        listed = await opsflow_cli(["stack", "list", "-o", "json"], "", task_queue, extra=extra)
        assert listed.returncode == 0, listed.stderr
        assert "tlsprofile" in [s["name"] for s in json.loads(listed.stdout)]
        deleted = await opsflow_cli(
            ["stack", "delete", "tlsprofile", "--wait"], "", task_queue, extra=extra
        )
        assert deleted.returncode == 0, deleted.stderr
    finally:
        stop(worker)
    worker_log = log.read_text()
    assert f"on {proxy}" in worker_log
    # The same settings work for the `temporal` CLI (opsflow dev's readiness checks use it).
    env = {k: v for k, v in cli_env("", task_queue, extra).items() if k != "TEMPORAL_ADDRESS"}
    temporal = subprocess.run(
        [binary("temporal"), "workflow", "list", "--limit", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert temporal.returncode == 0, temporal.stderr
    for output in (applied.stdout, applied.stderr, listed.stderr, deleted.stderr, worker_log):
        assert API_KEY not in output


async def test_without_a_client_certificate_cli_and_worker_exit_1_naming_the_address(
    proxy: str, certs: Certificates, task_queue: str, tmp_path: Path
) -> None:
    extra = {"TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(certs.ca)}
    refused = f"Temporal at {proxy} refused the TLS handshake: a client certificate is required"
    listed = await opsflow_cli(["stack", "list"], proxy, task_queue, extra=extra)
    assert listed.returncode == 1
    assert refused in listed.stderr
    assert "Traceback" not in listed.stderr
    worker = run_worker(proxy, task_queue, extra)
    assert worker.returncode == 1
    assert refused in worker.stderr
    assert "Traceback" not in worker.stderr


async def test_a_certificate_file_that_is_not_there_exits_2_naming_it(
    proxy: str, certs: Certificates, task_queue: str, tmp_path: Path
) -> None:
    missing = tmp_path / "client.pem"
    extra = {**client_cert_env(certs), "TEMPORAL_TLS_CLIENT_CERT_PATH": str(missing)}
    named = f"TEMPORAL_TLS_CLIENT_CERT_PATH: {missing} does not exist"
    listed = await opsflow_cli(["stack", "list"], proxy, task_queue, extra=extra)
    assert (listed.returncode, listed.stdout) == (2, "")
    assert named in listed.stderr
    worker = run_worker(proxy, task_queue, extra)
    assert worker.returncode == 2
    assert named in worker.stderr
    assert "Traceback" not in worker.stderr


def run_worker(
    address: str, task_queue: str, extra: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """`python -m worker` when it is expected to exit at once."""
    return subprocess.run(
        [sys.executable, "-m", "worker"],
        cwd=REPO,
        env=cli_env(address, task_queue, extra),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

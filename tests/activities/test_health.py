"""check_health against real parts: an http.server on 127.0.0.1 and a local sshd instance."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import health, ssh
from opsflow.errors import ErrorType
from opsflow.messages import HealthCheckInput, HealthCheckResult, LaunchResult, SshEndpoint
from opsflow.spec import HealthCheckSpec
from tests.activities.conftest import STACK

# Short waits between attempts; an attempt itself may take a few seconds, as an SSH
# handshake does on a loaded 2-core machine running the tests in parallel processes.
FAST = {"timeout": 5.0, "interval": 0.05}
UNUSED_SSH = SshEndpoint(
    host="127.0.0.1", port=1, user="nobody", key_file="/nonexistent", host_key="ssh-ed25519 AA=="
)


class Server:
    """A real HTTP server: 503 for the first `failures` requests, then `status`."""

    def __init__(self) -> None:
        self.failures = 0
        self.status = 200
        self.location = ""
        self.paths: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.paths.append(self.path)
                status = 503 if len(server.paths) <= server.failures else server.status
                self.send_response(status)
                if server.location:
                    self.send_header("Location", server.location)
                body = b"x" * 100_000  # more than the probe reads
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/health"


@pytest.fixture
def server() -> Iterator[Server]:
    served = Server()
    thread = threading.Thread(target=served.httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield served
    finally:
        served.httpd.shutdown()
        served.httpd.server_close()
        thread.join()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound but not listening: connections to it are refused, and no one else can
    take it meanwhile."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def url_check(
    url: str,
    deadline: float = 2.0,
    private_ip: str | None = "127.0.0.1",
    hostname: str = "web1",
) -> HealthCheckInput:
    return HealthCheckInput(
        stack=STACK,
        hostname=hostname,
        private_ip=private_ip,
        ssh=UNUSED_SSH,
        check=HealthCheckSpec(url=url, deadline=deadline, **FAST),
    )


def command_check(
    instance: LaunchResult, command: str, deadline: float = 2.0, **ssh_fields: Any
) -> HealthCheckInput:
    return HealthCheckInput(
        stack=STACK,
        hostname="web1",
        private_ip=instance.private_ip,
        ssh=instance.ssh.model_copy(update=ssh_fields),
        check=HealthCheckSpec(command=command, deadline=deadline, **FAST),
    )


async def check(request: HealthCheckInput, env: ActivityEnvironment | None = None) -> Any:
    result: HealthCheckResult = await (env or ActivityEnvironment()).run(
        health.check_health, request
    )
    return result


# ---- URL probes -------------------------------------------------------------------------


async def test_healthy_after_some_503s_heartbeating_after_each_probe(server: Server) -> None:
    server.failures = 2
    beats: list[Any] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details)

    result = await check(url_check(server.url), env)

    assert result.healthy
    assert result.attempts == 3
    assert result.detail == "HTTP 200 OK"
    assert beats == [
        (1, "HTTP 503 Service Unavailable"),
        (2, "HTTP 503 Service Unavailable"),
        (3, "HTTP 200 OK"),
    ]


async def test_never_healthy_within_the_deadline_is_a_result_not_an_error(
    server: Server,
) -> None:
    server.failures = 1_000

    result = await check(url_check(server.url, deadline=0.4))

    assert not result.healthy
    assert result.detail == "HTTP 503 Service Unavailable"
    assert result.attempts > 1
    assert result.attempts == len(server.paths)


async def test_a_client_error_is_unhealthy(server: Server) -> None:
    server.status = 404

    result = await check(url_check(server.url, deadline=0.1))

    assert (result.healthy, result.detail) == (False, "HTTP 404 Not Found")


async def test_a_redirect_is_healthy_and_not_followed(server: Server) -> None:
    server.status = 302
    server.location = "http://elsewhere.invalid/"

    result = await check(url_check(server.url))

    assert (result.healthy, result.attempts, result.detail) == (True, 1, "HTTP 302 Found")
    assert server.paths == ["/health"]


async def test_connection_refused(closed_port: int) -> None:
    result = await check(url_check(f"http://127.0.0.1:{closed_port}/", deadline=1.0))

    assert not result.healthy
    assert result.detail == "connection refused"
    assert result.attempts > 1


async def test_a_slow_answer_times_out() -> None:
    with socket.socket() as sock:  # listening, never answering
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        request = url_check(f"http://127.0.0.1:{port}/", deadline=0.3)
        request.check.timeout = 0.2

        result = await check(request)

    assert not result.healthy
    assert result.detail == "timed out after 0.2s"


async def test_the_url_template_is_filled_with_private_ip_and_hostname(server: Server) -> None:
    template = f"http://{{private_ip}}:{server.port}/status/{{hostname}}?from={{private_ip}}"

    result = await check(url_check(template, hostname="db-2"))

    assert result.healthy
    assert server.paths == ["/status/db-2?from=127.0.0.1"]


async def test_an_unknown_private_ip_is_localhost(server: Server) -> None:
    template = f"http://{{private_ip}}:{server.port}/{{hostname}}"

    result = await check(url_check(template, private_ip=None))

    assert result.healthy
    assert server.paths == ["/web1"]


@pytest.mark.parametrize(
    ("url", "command"),
    [
        ("ftp://{private_ip}/", None),
        ("http://{private_ip}:port/", None),
        ("http://{private_ip}/", "true"),
        (None, None),
    ],
)
async def test_a_check_that_cannot_be_probed_is_invalid_input(
    url: str | None, command: str | None
) -> None:
    # model_construct: as if it came from elsewhere than a validated stack file
    spec = HealthCheckSpec.model_construct(
        url=url, command=command, timeout=1.0, interval=0.05, deadline=1.0
    )
    request = HealthCheckInput.model_construct(
        stack=STACK, hostname="web1", private_ip=None, ssh=UNUSED_SSH, check=spec
    )

    with pytest.raises(ApplicationError) as raised:
        await check(request)

    assert raised.value.type == ErrorType.INVALID_INPUT
    assert raised.value.non_retryable


async def test_cancellation_stops_probing_promptly(server: Server) -> None:
    server.failures = 1_000
    env = ActivityEnvironment()
    probing = asyncio.ensure_future(check(url_check(server.url, deadline=60.0), env))
    for _ in range(200):  # until it has probed a few times
        if len(server.paths) >= 2:
            break
        await asyncio.sleep(0.05)
    seen = len(server.paths)
    assert seen >= 2

    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(probing, 30)  # not left probing until its 60 s deadline
    seen = len(server.paths)
    await asyncio.sleep(0.2)
    assert len(server.paths) <= seen + 1


# ---- command probes (a real sshd) -------------------------------------------------------


@pytest.mark.integration
async def test_a_command_probe_is_healthy_once_the_file_exists(instance: LaunchResult) -> None:
    ready = Path(instance.root) / "ready"
    threading.Timer(0.3, ready.touch).start()

    result = await check(command_check(instance, f"test -f {ssh.quote(str(ready))}"))

    assert result.healthy
    assert result.detail == "exit 0"


@pytest.mark.integration
async def test_a_command_probe_answers_with_its_last_output_line(instance: LaunchResult) -> None:
    result = await check(
        command_check(instance, "echo starting; echo 'not ready yet'; echo; exit 3", deadline=0.3)
    )

    assert not result.healthy
    assert result.detail == "not ready yet"


@pytest.mark.integration
async def test_a_failing_command_answers_with_stderr_first(instance: LaunchResult) -> None:
    result = await check(command_check(instance, "echo out; echo boom >&2; exit 1", 0.1))

    assert (result.healthy, result.detail) == (False, "boom")


@pytest.mark.integration
async def test_a_silent_failing_command_answers_with_its_exit_code(
    instance: LaunchResult,
) -> None:
    result = await check(command_check(instance, "exit 4", deadline=0.1))

    assert (result.healthy, result.detail) == (False, "exit 4")


@pytest.mark.integration
async def test_an_unreachable_instance_is_unhealthy(
    instance: LaunchResult, closed_port: int
) -> None:
    result = await check(command_check(instance, "true", deadline=1.0, port=closed_port))

    assert not result.healthy
    assert "SSH failed" in result.detail
    assert result.attempts > 1


@pytest.mark.integration
async def test_another_host_key_is_raised_not_probed_again(launch: Any) -> None:
    web1, web2 = launch("web1"), launch("web2")

    with pytest.raises(ApplicationError) as raised:
        await check(command_check(web1, "true", host_key=web2.ssh.host_key))

    assert raised.value.type == ErrorType.HOST_KEY_MISMATCH
    assert raised.value.non_retryable

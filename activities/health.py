"""Health checks: does an instance serve after a deployment batch?

`check_health` probes one instance with its layer's HealthCheckSpec until a probe passes or
`check.deadline` seconds have passed (monotonic clock), `check.interval` seconds apart:

- a URL probe GETs `check.url` with `{private_ip}` (127.0.0.1 when unknown; an IPv6 address
  is bracketed) and `{hostname}` filled in. 2xx and 3xx are healthy; a redirect is never
  followed (it may lead to another host), proxies from the environment are not used, and at
  most 64 KiB of a body are read;
- a command probe runs `check.command` over SSH (pinned host key, pooled connection, in the
  login directory). Exit 0 is healthy.

Each probe is limited to `check.timeout` seconds. No probe starts past the deadline (nor
when the next interval would end past it), but one started before it runs its course: a
whole check lasts at most `deadline + timeout` seconds, and the activity's start-to-close
timeout must allow that.

What can go wrong, as the caller (a deployment workflow) sees it:
- the instance never becomes healthy: not an error. The result says healthy=False, how many
  probes ran and the last probe's answer ("HTTP 503 Service Unavailable", "connection
  refused", "timed out after 5s", the command's last output line, "exit 1", or an SSH
  failure such as an unreachable host or a refused key): the workflow decides what to do;
- the URL cannot be used once filled in (not http(s), no host, a bad port), or the check has
  neither or both of url and command: ApplicationError InvalidInput, non-retryable;
- the host presents another key than the one pinned at launch: ApplicationError
  HostKeyMismatch, non-retryable (re-raised from activities.ssh);
- cancellation stops probing at once (a probe already running in its thread ends on its own
  timeout; its answer is dropped).
"""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, NamedTuple, TypeVar

import paramiko
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import names, ssh
from activities.heartbeat import heartbeat, heartbeating
from opsflow.errors import ErrorType
from opsflow.messages import HealthCheckInput, HealthCheckResult, SshEndpoint
from opsflow.spec import HealthCheckSpec
from workflows.failures import invalid

BODY_LIMIT = 64 * 1024
DETAIL_LIMIT = 500
DEFAULT_PRIVATE_IP = "127.0.0.1"

_T = TypeVar("_T")


class Probe(NamedTuple):
    healthy: bool
    detail: str


@activity.defn(name=names.CHECK_HEALTH)
async def check_health(request: HealthCheckInput) -> HealthCheckResult:
    """Probe until healthy or past the deadline; see the module docstring."""
    check = request.check
    url = probe_url(check, request.hostname, request.private_ip)
    started = time.monotonic()
    attempts = 0
    details: tuple[int, str] = (0, "")  # heartbeat details: probes so far, last answer
    while True:
        attempts += 1
        if url is not None:
            answer = await heartbeating(asyncio.to_thread(probe_http, url, check.timeout), *details)
        else:
            assert check.command is not None  # probe_url checked: exactly one of the two
            answer = await heartbeating(
                asyncio.to_thread(probe_command, request.ssh, check.command, check.timeout),
                *details,
            )
        details = (attempts, answer.detail)
        heartbeat(*details)
        elapsed = time.monotonic() - started
        if answer.healthy or elapsed + check.interval >= check.deadline:
            return HealthCheckResult(
                healthy=answer.healthy,
                attempts=attempts,
                seconds=round(elapsed, 3),
                detail=answer.detail,
            )
        await heartbeating(asyncio.sleep(check.interval), *details)


def probe_url(check: HealthCheckSpec, hostname: str, private_ip: str | None) -> str | None:
    """The URL to probe, filled in and checked; None for a command check. InvalidInput if
    the check cannot be probed."""
    if (check.url is None) == (check.command is None):
        raise invalid("health_check: give exactly one of `url` or `command`")
    if check.url is None:
        return None
    ip = private_ip or DEFAULT_PRIVATE_IP
    if ":" in ip and not ip.startswith("["):
        ip = f"[{ip}]"  # IPv6, in a URL's host
    try:
        url = check.url.format(private_ip=ip, hostname=hostname)
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a bad port
    except (KeyError, IndexError, ValueError) as err:
        raise invalid(f"health_check.url {check.url!r} cannot be filled in: {err}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid(f"health_check.url: {url!r} is not an http(s) URL with a host")
    return url


# ---- probes (blocking, run in threads) ---------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Never follow a redirect: a 3xx answer is itself healthy."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def probe_http(url: str, timeout: float) -> Probe:
    """One GET of `url`: healthy on 2xx and 3xx."""
    request = urllib.request.Request(url, headers={"User-Agent": "opsflow-health-check"})
    try:
        with _opener.open(request, timeout=timeout) as response:
            response.read(BODY_LIMIT)
            status, reason = response.status, response.reason
    except urllib.error.HTTPError as err:  # 4xx, 5xx, and 3xx since redirects are not followed
        with err:
            status, reason = err.code, err.reason
    except (urllib.error.URLError, OSError, ValueError) as err:  # ValueError: http.client's
        return Probe(False, _failure(err, timeout))
    return Probe(200 <= status < 400, _clip(f"HTTP {status} {reason}".rstrip()))


def probe_command(endpoint: SshEndpoint, command: str, timeout: float) -> Probe:
    """Run `command` on the instance: healthy on exit 0. SSH failures are unhealthy answers,
    except a host key mismatch (re-raised)."""
    try:
        code, out, err = ssh.run(endpoint, command, timeout=timeout)
    except ApplicationError as error:
        if error.type == ErrorType.HOST_KEY_MISMATCH:
            raise
        return Probe(False, _clip(error.message))
    except (paramiko.SSHException, EOFError, OSError) as error:
        return Probe(False, _clip(f"SSH failed: {error or type(error).__name__}"))
    # On failure the reason is more often on stderr; on success, on stdout.
    streams = (out, err) if code == 0 else (err, out)
    line = next((last for text in streams if (last := _last_line(text))), None)
    return Probe(code == 0, _clip(line or f"exit {code}"))


def _failure(err: BaseException, timeout: float) -> str:
    reason: object = err.reason if isinstance(err, urllib.error.URLError) else err
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, TimeoutError | socket.timeout):
        return f"timed out after {timeout:g}s"
    if isinstance(reason, socket.gaierror):
        return f"name not resolved: {reason.strerror or reason}"
    if isinstance(reason, BaseException):
        text = str(reason) or type(reason).__name__
        return _clip(text if isinstance(reason, OSError) else f"{type(reason).__name__}: {text}")
    return _clip(str(reason))


def _last_line(text: str) -> str:
    return next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "")


def _clip(text: str) -> str:
    return text if len(text) <= DETAIL_LIMIT else text[: DETAIL_LIMIT - 1] + "…"


# ---- activity plumbing --------------------------------------------------------------------

"""The healing loops' check: is each online instance of a layer alive?

`probe_layer` reads the layer's instances from the stack workflow (a query, so the loop
always sees the stack's current view), then checks at once every instance that is due
(opsflow.healing.due_for_check) or that the loop asks to recheck:

- SSH reachability, always: one round trip on the worker's pooled connection
  (activities.ssh.ping: a session channel opened and closed; no process starts on the
  instance, so checking hundreds of instances every few seconds costs them nothing);
- then the layer's URL (2xx/3xx) or command (exit 0), if it has one (activities.health).

A local instance is checked by the worker that launched it (its own task queue, where
the healing loop sends one probe per worker; `request.task_queue`); the shared-queue probe
checks the rest.

A failed check is an answer, not an error: the outcome says what was seen ("SSH failed:
connection refused", "HTTP 503 ...", "timed out after 3s", the command's last line). Only
a stack that no longer exists is an error (NotFound, non-retryable: the loop ends).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import paramiko
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities import health, names, ssh
from activities.stack_context import healing_instances
from opsflow.healing import due_for_check
from opsflow.messages import InstanceView, LayerProbeReport, ProbeLayerInput, ProbeOutcome
from opsflow.spec import HealthCheckSpec, LayerHealthCheckSpec

# Probes block on sockets; many layers check many instances at the same moment.
_PROBE_THREADS = ThreadPoolExecutor(max_workers=64, thread_name_prefix="opsflow-probe")


class LivenessActivities:
    def __init__(self, client: Client) -> None:
        self._client = client

    @activity.defn(name=names.PROBE_LAYER)
    async def probe_layer(self, request: ProbeLayerInput) -> LayerProbeReport:
        views = await healing_instances(self._client, request.stack, request.layer)
        now = datetime.now(UTC)
        # Only the instances on this worker's host (or, on the shared queue, the unbound).
        due = [
            v
            for v in views
            if v.task_queue == request.task_queue
            and (due_for_check(v, now, request.check) or v.hostname in request.recheck)
        ]
        loop = asyncio.get_running_loop()
        outcomes = await asyncio.gather(
            *(loop.run_in_executor(_PROBE_THREADS, probe, v, request.check) for v in due)
        )
        return LayerProbeReport(instances=views, outcomes=list(outcomes))


def probe(view: InstanceView, check: LayerHealthCheckSpec) -> ProbeOutcome:
    """Check one instance: SSH first; then the URL or command, if the layer has one."""
    assert view.ssh is not None
    try:
        ssh.ping(view.ssh, check.timeout)
    except ApplicationError as err:  # cannot connect, or the host key does not match
        return _unhealthy(view, err.message, reachable=False)
    except (paramiko.SSHException, EOFError, OSError) as err:
        reason = str(err) or type(err).__name__
        return _unhealthy(view, f"SSH did not answer in {check.timeout:g}s: {reason}", False)
    if check.url is not None:
        spec = HealthCheckSpec(url=check.url, timeout=check.timeout)
        try:
            url = health.probe_url(spec, view.hostname, view.private_ip)
        except ApplicationError as err:
            return _unhealthy(view, err.message, reachable=True)
        assert url is not None
        answer = health.probe_http(url, check.timeout)
        where = url
    elif check.command is not None:
        answer = health.probe_command(view.ssh, check.command, check.timeout)
        where = f"command {check.command!r}"
    else:
        return ProbeOutcome(hostname=view.hostname, healthy=True, reachable=True, detail="ok")
    return ProbeOutcome(
        hostname=view.hostname,
        healthy=answer.healthy,
        reachable=True,
        detail=f"{where}: {answer.detail}",
    )


def _unhealthy(view: InstanceView, detail: str, reachable: bool) -> ProbeOutcome:
    return ProbeOutcome(hostname=view.hostname, healthy=False, reachable=reachable, detail=detail)

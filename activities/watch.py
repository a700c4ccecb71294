"""The healing loop's watch: failures seen in about a second, between its periodic checks.

`watch_layer` holds one SSH connection to each instance it is given (the worker's pooled
connection, the one probes and recipe runs use too) and returns as soon as one is lost:

- a crash: the connection drops (FIN, RST or EOF: paramiko's reader thread ends, the
  transport goes inactive), and the instance's sshd does not take a new TCP connection
  within the check's timeout. A drop whose sshd still answers is a blip, not a loss: the
  watch reconnects and goes on, so a healthy machine is never replaced for it.
- a partition: a keepalive that wants an answer (the `keepalive@openssh.com` global
  request with want_reply, which OpenSSH answers with REQUEST_FAILURE: still an answer)
  goes unanswered for the check's timeout. Nothing else would notice: a silent link, or a
  machine whose kernel still ACKs but whose sshd does not run, sends no RST. The verdict
  stays on the connection (its Link), which stays in the pool: a watch started meanwhile
  (the loop replaces watches whenever the layer's membership changes, and a replaced one
  is only told on its next heartbeat) finds it at once instead of connecting anew to a
  host that does not answer. An answer that comes late lifts it (the machine is back, on
  the same connection); a heal's terminate ends the connection.

Keepalives go out every `keepalive_interval`, one at a time per connection (a Link, shared
by every watch that holds the connection: a cancelled watch may run on a few seconds beside
its successor, two layers may hold one instance, and two `global_request`s in flight on one
transport would steal each other's answer), from a small thread pool. paramiko's
`global_request(wait=True)` has no timeout: the watch keeps its own, from the moment the
request was sent, and closing the connection ends the wait. The activity's own loop only
reads flags every TICK: no thread per connection of our own, so watching 200 instances
costs little. The lost come back with the stack's current view of the layer, as a probe's
report does (an instance stopped meanwhile is not lost).

It returns after `max_seconds` with nothing lost, and ends at once when cancelled (the
loop restarts it when the layer's membership changes). An instance it cannot connect to
at its start is lost as a dropped one whose sshd refuses is: the loop asks to watch only
instances its checks found healthy, and a crash that lands while one watch hands over to
the next must not wait for the periodic check (the bench saw one: 5.3 s).
"""

from __future__ import annotations

import asyncio
import socket
import time
import weakref
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import paramiko
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import names, ssh
from activities.heartbeat import heartbeat, heartbeating
from opsflow.messages import (
    InstanceView,
    LayerProbeReport,
    ProbeOutcome,
    WatchLayerInput,
    WatchTarget,
)

# The stack's current view of a layer's healing (stack_context.healing_instances on a client).
LayerReader = Callable[[str, str], Awaitable[list[InstanceView]]]

KEEPALIVE = "keepalive@openssh.com"
# How often the watch looks at its connections: the delay a crash adds at most.
TICK = 0.25
# Heartbeats (the SDK sends at most one per 0.8 x the heartbeat timeout, 8 s): a cancelled
# watch hears it on the next one.
BEAT = 1.0
# Keepalives wait on answers, connects on hosts: blocking calls, many at once.
_THREADS = ThreadPoolExecutor(max_workers=64, thread_name_prefix="opsflow-watch")


@dataclass
class Link:
    """One pooled connection's keepalive in flight, and the verdict once it went silent.
    Changed on the event loop only, but for `asked`, set by the thread that sends."""

    transport: paramiko.Transport
    due: float = 0.0  # monotonic time of the next keepalive
    asked: float | None = None  # when the keepalive in flight was sent
    answer: Future[object] | None = None
    silent: str | None = None  # no answer in time: why it counts as lost

    def ask(self) -> None:
        """Send a keepalive and wait for its answer (run in a thread)."""
        self.asked = time.monotonic()
        self.transport.global_request(KEEPALIVE, wait=True)


_links: weakref.WeakKeyDictionary[paramiko.Transport, Link] = weakref.WeakKeyDictionary()


def link(transport: paramiko.Transport) -> Link:
    found = _links.get(transport)
    if found is None:
        found = _links[transport] = Link(transport)
    return found


@dataclass
class Watched:
    target: WatchTarget
    transport: paramiko.Transport


class WatchActivities:
    def __init__(self, layer: LayerReader) -> None:
        self._layer = layer

    @activity.defn(name=names.WATCH_LAYER)
    async def watch_layer(self, request: WatchLayerInput) -> LayerProbeReport:
        loop = asyncio.get_running_loop()
        connecting = asyncio.gather(
            *(loop.run_in_executor(_THREADS, connect, t) for t in request.instances)
        )
        opened = await heartbeating(connecting, "connecting")
        watched = [w for w in opened if isinstance(w, Watched)]
        refused = [w for w in opened if isinstance(w, ProbeOutcome)]
        if refused:
            views = await self._layer(request.stack, request.layer)
            return LayerProbeReport(instances=views, outcomes=refused)
        end = time.monotonic() + request.max_seconds
        heartbeat("watching", len(watched))  # what a describe of the loop shows
        beat = time.monotonic()
        while time.monotonic() < end:
            now = time.monotonic()
            # Plain calls on the common path (200 connections, 4 ticks a second); only the
            # dropped ones await their reconnect, side by side.
            looked: list[ProbeOutcome | None] = []
            dropped: list[Watched] = []
            for w in watched:
                if w.transport.is_active():
                    looked.append(self._look(w, request, now))
                else:
                    dropped.append(w)
            looked += await asyncio.gather(*(self._reconnect(w, request) for w in dropped))
            lost = [outcome for outcome in looked if outcome is not None]
            if lost:
                views = await self._layer(request.stack, request.layer)
                return LayerProbeReport(instances=views, outcomes=lost)
            if time.monotonic() - beat >= BEAT:
                heartbeat("watching", len(watched))
                beat = time.monotonic()
            await asyncio.sleep(TICK)
        return LayerProbeReport(instances=[], outcomes=[])

    async def _reconnect(self, w: Watched, request: WatchLayerInput) -> ProbeOutcome | None:
        """A dropped connection: lost, unless its sshd takes a new one (then watched)."""
        held = link(w.transport)
        if held.silent is not None:
            return _lost(w.target, held.silent)  # silent before it dropped
        reason = _why(w.transport)
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(_THREADS, reconnect, w.target, request.answer_within)
        if isinstance(found, str):
            return _lost(
                w.target, f"{_where(w.target)}: SSH connection dropped ({reason}); {found}"
            )
        w.transport = found
        return None

    def _look(self, w: Watched, request: WatchLayerInput, now: float) -> ProbeOutcome | None:
        """One tick for one live connection: its loss, or None (a keepalive sent if due)."""
        held = link(w.transport)
        if held.silent is not None and not (held.answer and held.answer.done()):
            return _lost(w.target, held.silent)  # found by this watch or another
        if held.answer is not None and held.answer.done():
            held.answer, held.asked, held.silent = None, None, None
        elif held.asked is not None and now - held.asked > request.answer_within:
            budget = request.answer_within
            held.silent = f"{_where(w.target)}: SSH keepalive unanswered for {budget:g}s"
            return _lost(w.target, held.silent)
        if held.answer is None and now >= held.due:
            held.due = now + request.keepalive_interval
            held.answer = _THREADS.submit(held.ask)
        return None


def connect(target: WatchTarget) -> Watched | ProbeOutcome:
    """The instance's pooled connection, watched; lost when it cannot be had."""
    try:
        return Watched(target, ssh.transport(target.ssh))
    except ApplicationError as err:
        return _lost(target, f"{err.message}: no connection to watch")
    except (paramiko.SSHException, EOFError, OSError) as err:
        reason = str(err) or type(err).__name__
        return _lost(target, f"{_where(target)}: SSH failed: {reason}: no connection to watch")


def reconnect(target: WatchTarget, timeout: float) -> paramiko.Transport | str:
    """After a drop: a new connection if the instance's sshd still takes one, else why not.
    A TCP connect first, bounded by `timeout`: a host that went silent must not hold the
    verdict for the SSH connect's own 10 s."""
    try:
        socket.create_connection((target.ssh.host, target.ssh.port), timeout).close()
    except OSError as err:
        return f"a new connection failed: {err or type(err).__name__}"
    try:
        return ssh.transport(target.ssh)
    except ApplicationError as err:
        return err.message
    except (paramiko.SSHException, EOFError, OSError) as err:
        return f"a new connection failed: {err or type(err).__name__}"


def _why(transport: paramiko.Transport) -> str:
    err = getattr(transport, "saved_exception", None)  # what ended its reader thread
    if err is None or isinstance(err, EOFError):
        return "closed by the instance"
    return str(err) or type(err).__name__


def _lost(target: WatchTarget, detail: str) -> ProbeOutcome:
    return ProbeOutcome(
        hostname=target.hostname, healthy=False, reachable=False, detail=detail, decisive=True
    )


def _where(target: WatchTarget) -> str:
    return f"{target.ssh.user}@{target.ssh.host}:{target.ssh.port}"

"""The demo shop (examples/shop, what `make demo` applies) for real: HAProxy on an isolated
machine in front of three web machines, the app deployed as releases, driven by the real
CLI. A bounded request loop against the load balancer sees a rolling deploy go from v1 to
v2, a web instance killed and healed, and one stopped and started, without one failed
request; the lb's configure recipe lists the online web instances only."""

from __future__ import annotations

import asyncio
import http.client
import ipaddress
import itertools
import json
import re
import shutil
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from activities.local_machine import machine_of
from client.api import OpsflowClient
from opsflow.messages import InstanceView
from tests.helpers import wait_for_event
from tests.integration.conftest import REPO, opsflow_cli
from tests.integration.isolated import machines, on_machine

pytestmark = pytest.mark.integration
__all__ = ["machines"]  # the fixture, used by name

PAGE = re.compile(r"The opsflow shop, (\S+)</h1>\s*<p>Served by <b>([a-z0-9-]+)</b>")
# What `make demo` applies; copied, so the test edits its app's VERSION as a user would.
SHOP = REPO / "examples" / "shop"


@dataclass
class Seen:
    """What a request loop saw, in order: (version, host) per answer, and each failure."""

    answers: list[tuple[str, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def __str__(self) -> str:
        versions = {v: self.count(v) for v in ("v1", "v2") if self.count(v)}
        return f"{versions} in {self.seconds:.1f} s, {len(self.failures)} failed"

    def count(self, version: str) -> int:
        return sum(1 for v, _ in self.answers if v == version)

    def hosts(self, since: int = 0) -> set[str]:
        return {host for _, host in self.answers[since:]}


def request_loop(url: str, seen: Seen, stop: threading.Event, seconds: float, most: int) -> None:
    """GET `url` every 20 ms, a new connection each (as curl in a shell loop), until `stop`
    is set, `seconds` pass or `most` requests were made: it always ends by itself."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy
    deadline = time.monotonic() + seconds
    for _ in range(most):
        if stop.is_set() or time.monotonic() > deadline:
            return
        try:
            with opener.open(url, timeout=10) as response:
                page = response.read().decode()
            match = PAGE.search(page)
            if match is None:
                seen.failures.append(f"unexpected page: {page!r}")
            else:
                seen.answers.append((match[1], match[2]))
        except (OSError, http.client.HTTPException) as err:  # refused, reset, cut short, 503...
            seen.failures.append(repr(err))
        time.sleep(0.02)


async def with_requests(
    url: str, during: Callable[[Seen], Awaitable[None]], seconds: float = 240
) -> Seen:
    """A bounded request loop against `url` in a thread while `during` runs."""
    seen, stop = Seen(), threading.Event()
    started = time.monotonic()
    loop = asyncio.create_task(asyncio.to_thread(request_loop, url, seen, stop, seconds, 20_000))
    try:
        await during(seen)
        await asyncio.sleep(1)  # a few answers after it, too
    finally:
        stop.set()
        await loop
        seen.seconds = time.monotonic() - started
    return seen


async def until(
    check: Callable[[], bool | Awaitable[bool]], what: str, timeout: float = 120
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        done = check()
        if done if isinstance(done, bool) else await done:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout:.0f}s: {what}")
        await asyncio.sleep(0.2)


@pytest.fixture
def address(dev_env: WorkflowEnvironment) -> str:
    return dev_env.client.service_client.config.target_host


async def test_the_shop_answers_every_request_through_a_rolling_deploy_a_kill_and_a_stop(
    opsflow: OpsflowClient, address: str, task_queue: str, tmp_path: Path, machines: str
) -> None:
    shop = Path(shutil.copytree(SHOP, tmp_path / "shop"))

    async def cli(*args: str) -> str:
        done = await opsflow_cli(list(args), address, task_queue, 300)
        assert done.returncode == 0, f"opsflow {' '.join(args)}: {done.stderr}"
        return done.stdout

    await cli("stack", "apply", str(shop / "stack.yml"), "--wait")
    await cli("deploy", "shop", "store", "--wait")
    rows = {
        r["hostname"]: r for r in json.loads(await cli("instance", "list", "shop", "-o", "json"))
    }
    assert sorted(rows) == ["lb1", "web1", "web2", "web3"]
    assert all(r["status"] == "online" and r["root"] == "/" for r in rows.values())
    lb_ip = rows["lb1"]["private_ip"]
    assert ipaddress.IPv4Address(lb_ip) in ipaddress.IPv4Network(machines)
    url = f"http://{lb_ip}/"

    # v1 from every web instance, once HAProxy's checks have seen them up (about a second).
    async def all_three(seen: Seen) -> None:
        try:
            await until(lambda: seen.hosts() == {"web1", "web2", "web3"}, "3 web instances", 30)
        except AssertionError as err:
            raise AssertionError(f"{err}; the last failures: {seen.failures[-3:]}") from None

    warm = await with_requests(url, all_three, seconds=60)
    assert {v for v, _ in warm.answers} == {"v1"}, warm.failures[-3:]

    # A rolling deploy of v2, one instance at a time, under a steady stream of requests.
    (shop / "app" / "VERSION").write_text("v2\n")

    async def deploy_v2(seen: Seen) -> None:
        await until(lambda: len(seen.answers) >= 5, "first answers", 30)
        await cli("deploy", "shop", "store", "--strategy", "rolling", "--batch", "1", "--wait")

    rolled = await with_requests(url, deploy_v2)
    counts = {v: rolled.count(v) for v in ("v1", "v2")}
    print(f"rolling deploy: {rolled}")
    assert rolled.failures == [], rolled.failures[:5]
    assert rolled.answers[0][0] == "v1" and rolled.answers[-1][0] == "v2", counts
    assert counts["v1"] > 0 and counts["v2"] > 0
    assert {v for v, _ in rolled.answers[-10:]} == {"v2"}

    # web2 killed: HAProxy's checks and retries keep every request answered while the
    # healing loop replaces it; then the lb's configure recipe lists it again.
    lb_log = machine_of("shop", "lb1").inside("/var/log/shop-lb.log")
    lb = await view(opsflow, "lb1")
    inside = await asyncio.to_thread(on_machine, lb, "cat /var/log/shop-lb.log")
    assert inside == lb_log.read_text() and inside.endswith(" backends: web1 web2 web3\n")

    async def backends() -> list[str]:
        """Each backend set lb1's recipe wrote, read from the machine's disk on this host
        (polled: no SSH login each time)."""
        return [line.partition(" backends: ")[2] for line in lb_log.read_text().splitlines()]

    async def lists(names: str, after: int) -> bool:
        return names in (await backends())[after:]

    lines, events = len(await backends()), len((await opsflow.describe("shop")).events)

    async def kill_web2(seen: Seen) -> None:
        await until(lambda: len(seen.answers) >= 5, "first answers", 30)
        await cli("instance", "kill", "shop", "web2")
        await wait_for_event(opsflow, "shop", "healed", "web2", timeout=180)
        await until(lambda: lists("web1 web2 web3", lines), "web2 among the backends again", 60)
        # At the same address (and MAC: the lb's ARP cache stays right), so HAProxy's checks
        # find it up within a second.
        healed_from = len(seen.answers)
        await until(lambda: "web2" in seen.hosts(healed_from), "web2 answering again", 10)

    killed = await with_requests(url, kill_web2)
    print(f"kill drill: {killed}")
    assert killed.failures == [], killed.failures[:5]
    assert {v for v, _ in killed.answers} == {"v2"}  # the healed web2 got the current release
    # Every configure round that ran while web2 was lost (3 of 4 online) left it out. A heal
    # faster than the round's 2 s of quiet gives none: its leaving and return coalesce.
    rounds = [
        e.message for e in (await opsflow.describe("shop")).events[events:] if e.kind == "configure"
    ]
    without = sum(1 for message in rounds if "on 3 online" in message)
    assert (await backends())[lines:].count("web1 web3") == without, rounds

    # web2 stopped, then started: configure drops it from the backends, then adds it back,
    # and no request fails meanwhile (its shutdown recipe stops its server first).
    lines = len(await backends())

    async def stop_and_start_web2(seen: Seen) -> None:
        await until(lambda: len(seen.answers) >= 5, "first answers", 30)
        await cli("instance", "stop", "shop", "web2", "--wait")
        await until(lambda: lists("web1 web3", lines), "web2 out of the backends", 30)
        await cli("instance", "start", "shop", "web2", "--wait")
        await until(lambda: lists("web1 web2 web3", lines), "web2 among the backends", 30)
        started_from = len(seen.answers)
        await until(lambda: "web2" in seen.hosts(started_from), "web2 answering again", 10)

    restarted = await with_requests(url, stop_and_start_web2)
    print(f"stop and start: {restarted}")
    assert restarted.failures == [], restarted.failures[:5]
    written = [names for names, _ in itertools.groupby((await backends())[lines:])]
    assert written == ["web1 web3", "web1 web2 web3"]

    deleted = await opsflow_cli(["stack", "delete", "shop", "--wait"], address, task_queue, 300)
    assert deleted.returncode == 0, deleted.stderr


async def view(opsflow: OpsflowClient, host: str) -> InstanceView:
    found = await opsflow.describe("shop")
    return next(v for v in found.instances if v.hostname == host)

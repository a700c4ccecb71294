"""Load-based scaling for real: the dev server, the real worker activities (read_metrics
over SSH) and real sshd instances. A custom metric's value is changed on the instances and
the layer scales up, then back down."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from client.api import OpsflowClient
from client.stackfile import load_stack_file
from opsflow.messages import StackDescription
from opsflow.status import InstanceStatus
from tests.helpers import quiet
from tests.integration.conftest import make_stack_dir

pytestmark = pytest.mark.integration

BODY = """layers:
  - name: web
    auto_healing: false
    recipes: {setup: [web::setup]}
    load_based_scaling:
      interval: 1s
      custom_metric: cat metric
      up: {custom: 70, thresholds_wait_time: 2s, ignore_metrics_time: 3s}
      down: {custom: 20, thresholds_wait_time: 2s, ignore_metrics_time: 3s}
    instances:
      - {hostname: w1}
      - {hostname: w2, scaling: load}
"""


def status(found: StackDescription, host: str) -> InstanceStatus:
    return next(v.status for v in found.instances if v.hostname == host)


def root(found: StackDescription, host: str) -> Path:
    view = next(v for v in found.instances if v.hostname == host)
    assert view.root is not None
    return Path(view.root)


async def until(
    opsflow: OpsflowClient, done: Callable[[StackDescription], bool], timeout: float = 90
) -> StackDescription:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        found = await opsflow.describe("loadscale")
        if done(found):
            return found
        await asyncio.sleep(0.25)
    raise AssertionError(f"not reached in {timeout}s: {found.events[-6:]}")


async def test_a_custom_metric_scales_the_layer_up_and_back_down(
    opsflow: OpsflowClient, tmp_path: Path
) -> None:
    stack_file = make_stack_dir(tmp_path, "loadscale", BODY, {"web::setup": "true\n"})
    applied = await opsflow.apply(load_stack_file(stack_file))
    assert applied.started == ["w1"]
    found = await quiet(opsflow, "loadscale")
    assert status(found, "w2") == InstanceStatus.STOPPED
    (root(found, "w1") / "metric").write_text("90\n")

    up = await until(opsflow, lambda d: status(d, "w2") == InstanceStatus.ONLINE)
    scaled = next(e for e in up.events if e.kind == "scaled_up")
    assert scaled.details["averages"] == {"custom": 90.0}
    assert "w2" in scaled.message and "custom 90.0 > 70" in scaled.message
    started = next(e for e in up.events if e.kind == "scaling" and e.hostname == "w2")
    assert "w2 started (load-based)" in started.message

    for host in ("w1", "w2"):
        (root(up, host) / "metric").write_text("5\n")
    down = await until(opsflow, lambda d: status(d, "w2") == InstanceStatus.STOPPED)
    stepped = [e for e in down.events if e.kind.startswith("scaled_")]
    assert [e.kind for e in stepped] == ["scaled_up", "scaled_down"]
    assert stepped[1].details["averages"] == {"custom": 5.0}
    assert status(down, "w1") == InstanceStatus.ONLINE
    await opsflow.delete_stack("loadscale")
    await opsflow.wait_stack_deleted("loadscale", timeout=120)

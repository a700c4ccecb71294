"""Shared fixtures: Temporal servers from PyPI packages (nothing is downloaded at run time)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import hypothesis  # noqa: F401  (see below)
import pytest
import pytest_asyncio
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from workflows.common import SEARCH_ATTRIBUTES

# hypothesis is imported up front: its pytest plugin otherwise imports it at the very end
# of a session, and CPython 3.11.7 can fail to compile it then ("AST constructor recursion
# depth mismatch"), failing a run whose tests all passed.

# Local instances in tests are sshd processes unless a test asks for isolated machines
# (OPSFLOW_ISOLATION=machine, tests/integration/test_isolated_machines.py and the like):
# the lighter kind keeps `make test` within its time; subprocesses inherit the setting.
os.environ.setdefault("OPSFLOW_ISOLATION", "none")

BIN = Path(sys.executable).parent
# The SDK gives a server 5 s to answer: too little on a 2-core machine running the tests
# in parallel processes, each starting servers of its own.
SERVER_STARTUP_TIMEOUT = timedelta(seconds=60)


def binary(name: str) -> str:
    found = BIN / name
    if found.exists():
        return str(found)
    on_path = shutil.which(name)
    if on_path is None:
        pytest.fail(f"{name} is not installed: run `make test` (it installs the dev extras)")
    return on_path


async def start_time_skipping() -> WorkflowEnvironment:
    """A time-skipping test server with opsflow's data converter."""
    return await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=binary("temporal-test-server"),
        test_server_startup_timeout=SERVER_STARTUP_TIMEOUT,
    )


@pytest_asyncio.fixture(loop_scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of the test's own. It starts in ~0.1 s, and a shared one
    runs in real time once an earlier test has left a workflow waiting on an activity no
    worker will ever pick up (one test took 47 s instead of 4 s so)."""
    env = await start_time_skipping()
    try:
        yield env
    finally:
        await env.shutdown()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """The real Temporal dev server (in memory), with opsflow's search attributes."""
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=binary("temporal"),
        dev_server_startup_timeout=SERVER_STARTUP_TIMEOUT,
        search_attributes=SEARCH_ATTRIBUTES,
    )
    try:
        yield env
    finally:
        await env.shutdown()

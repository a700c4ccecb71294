"""Tracing: export only when OTEL_* asks, and spans from client to workflow to activity."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from runtime import telemetry


def _project_root() -> Path:
    # Not at import time: the workflow sandbox re-imports this module and forbids resolve().
    return Path(__file__).resolve().parents[2]


def test_no_exporter_asked_for_configures_nothing() -> None:
    assert telemetry.provider_from_env("svc", {}) is None
    assert telemetry.provider_from_env("svc", {"OTEL_TRACES_EXPORTER": "none"}) is None


def test_sdk_disabled_wins_over_an_exporter() -> None:
    env = {"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}
    assert telemetry.provider_from_env("svc", env) is None


def test_an_otlp_endpoint_alone_turns_on_export() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    provider = telemetry.provider_from_env("svc", env)
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "svc"
    provider.shutdown()


def test_console_exporter_prints_spans_and_a_second_call_changes_nothing() -> None:
    # A subprocess: the global TracerProvider can be set only once per process.
    script = """
from opentelemetry import trace
from runtime import telemetry
first = telemetry.tracing_interceptors("opsflow-test")
provider = trace.get_tracer_provider()
second = telemetry.tracing_interceptors("opsflow-other")
assert trace.get_tracer_provider() is provider and len(first) == len(second) == 1
with telemetry.tracer().start_as_current_span("ssh-command"):
    pass
"""
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "console", "PYTHONPATH": str(_project_root())}
    env.pop("OTEL_SDK_DISABLED", None)
    env.pop("OTEL_SERVICE_NAME", None)
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    span = json.loads(done.stdout)
    assert span["name"] == "ssh-command"
    assert span["resource"]["attributes"]["service.name"] == "opsflow-test"


def test_without_a_provider_there_is_no_interceptor_and_no_import_of_it() -> None:
    # A subprocess: nothing installed yet, and a fresh sys.modules.
    script = """
import sys
from runtime import telemetry
assert telemetry.tracing_interceptors("opsflow-test") == []
assert "temporalio.contrib.opentelemetry" not in sys.modules
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = str(_project_root())
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


@activity.defn
async def greet(name: str) -> str:
    return f"hello {name}"


@workflow.defn
class GreetWorkflow:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(
            greet, name, start_to_close_timeout=timedelta(seconds=10)
        )


async def test_interceptor_traces_client_workflow_and_activity(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    provider = telemetry.provider_from_env("svc", {"OTEL_TRACES_EXPORTER": "console"})
    assert provider is not None
    spans = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    interceptor = TracingInterceptor(provider.get_tracer("test"))
    config = time_skipping_env.client.config()
    config["interceptors"] = [interceptor]
    client = Client(**config)
    queue = f"telemetry-{uuid.uuid4()}"
    async with Worker(client, task_queue=queue, workflows=[GreetWorkflow], activities=[greet]):
        result = await client.execute_workflow(
            GreetWorkflow.run, "web1", id=f"greet-{uuid.uuid4()}", task_queue=queue
        )
    assert result == "hello web1"
    names = {span.name for span in spans.get_finished_spans()}
    assert {
        "StartWorkflow:GreetWorkflow",
        "RunWorkflow:GreetWorkflow",
        "StartActivity:greet",
        "RunActivity:greet",
    } <= names

"""OpenTelemetry tracing for the CLI and the worker: one trace from CLI to workflow to activity.

The Temporal interceptor goes on the client whenever a tracer provider is installed (by
this module or by someone else), so trace context crosses processes. Without one every
span would be a no-op with nothing to carry, so there is no interceptor, and its import
(temporalio's worker with it) is not paid by a short CLI command. Spans are exported only
when the standard environment asks for it:

- OTEL_TRACES_EXPORTER: `otlp` (HTTP/protobuf), `console` (JSON on stdout, for
  debugging) or `none`; comma-separated for several. Defaults to `otlp` when
  OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set.
- OTEL_SDK_DISABLED=true: export nothing.
- OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES override the service name given in code.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from opentelemetry import trace

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from temporalio.client import Interceptor

__all__ = ["flush", "provider_from_env", "tracer", "tracing_interceptors"]

INSTRUMENTATION_NAME = "opsflow"
_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

_log = logging.getLogger(__name__)
# The provider this module installed; the global one can be set only once per process.
_installed: TracerProvider | None = None


def tracing_interceptors(service_name: str) -> list[Interceptor]:
    """Interceptors for `Client.connect`; installs the exporting provider on first call.
    None when no provider is installed: no span would be recorded or carried."""
    _install_once(service_name)
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor()]


def tracer() -> trace.Tracer:
    """A tracer for opsflow's own spans (an SSH command, a recipe run)."""
    return trace.get_tracer(INSTRUMENTATION_NAME)


def flush(timeout_millis: int = 5_000) -> None:
    """Export buffered spans now: for a short process that may exit without atexit."""
    if _installed is not None:
        _installed.force_flush(timeout_millis)


def provider_from_env(
    service_name: str, env: Mapping[str, str] | None = None
) -> TracerProvider | None:
    """A TracerProvider exporting where `env` (default os.environ) asks; None if nowhere."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    processors = [_processor(name) for name in _exporter_names(env)]
    active = [p for p in processors if p is not None]
    if not active:
        return None

    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    # Resource.create reads OTEL_RESOURCE_ATTRIBUTES; an explicit OTEL_SERVICE_NAME wins.
    attributes = {} if env.get("OTEL_SERVICE_NAME") else {"service.name": service_name}
    provider = TracerProvider(resource=Resource.create(attributes))
    for processor in active:
        provider.add_span_processor(processor)
    return provider


def _install_once(service_name: str) -> None:
    global _installed
    if _installed is not None:
        return
    # Leave a provider someone else installed (opentelemetry-instrument, a test) alone.
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return
    provider = provider_from_env(service_name)
    if provider is not None:
        trace.set_tracer_provider(provider)
        _installed = provider


def _exporter_names(env: Mapping[str, str]) -> list[str]:
    configured = env.get("OTEL_TRACES_EXPORTER")
    if configured is None:
        configured = "otlp" if any(env.get(name) for name in _ENDPOINT_VARIABLES) else "none"
    return [name.strip().lower() for name in configured.split(",") if name.strip()]


def _processor(exporter: str) -> SpanProcessor | None:
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    if exporter == "console":
        # Unbatched, so a span shows up while debugging the moment it ends.
        return SimpleSpanProcessor(ConsoleSpanExporter())
    if exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # OTLPSpanExporter reads the endpoint, headers and timeout from OTEL_EXPORTER_OTLP_*.
        return BatchSpanProcessor(OTLPSpanExporter())
    if exporter != "none":
        _log.warning("OTEL_TRACES_EXPORTER=%s is not supported (otlp, console, none)", exporter)
    return None

"""Optional OpenTelemetry tracing: a span per batch and per conversation, with the extraction
and the write transaction as child spans.

Off unless the `otel` extra is installed and `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the standard
variable; `OTEL_SERVICE_NAME` and the other `OTEL_*` variables are read by the SDK itself).
Without the extra every span is a no-op and nothing is imported. Span attributes are ids,
counts and names: never turn text, emails or keys.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any, Protocol

import structlog

log = structlog.get_logger(__name__)

TRACER_NAME = "qualification-worker"


class Span(Protocol):
    def set_attribute(self, key: str, value: Any) -> None: ...


class _NoSpan:
    def set_attribute(self, key: str, value: Any) -> None:
        return None


_NO_SPAN = _NoSpan()
_tracer: Any = None  # an opentelemetry Tracer once tracing is on


def configure_tracing(service_name: str = TRACER_NAME) -> bool:
    """Export spans over OTLP/HTTP when the endpoint is set; True when tracing is on."""
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("tracing_unavailable", hint="pip install 'qualification-worker[otel]'")
        return False
    name = os.environ.get("OTEL_SERVICE_NAME", service_name)
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    use_tracer_provider(provider)
    log.info("tracing_enabled", service=name)
    return True


def use_tracer_provider(provider: Any) -> None:
    """Trace with `provider` (an SDK TracerProvider; None: stop tracing). Tests install an
    in-memory one this way."""
    global _tracer
    _tracer = None if provider is None else provider.get_tracer(TRACER_NAME)


def shutdown_tracing() -> None:
    """Flush the spans still buffered (called at shutdown)."""
    if _tracer is None:
        return
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    if hasattr(provider, "shutdown"):
        provider.shutdown()


@contextlib.contextmanager
def span(name: str, **attributes: str | int | float | bool | None) -> Iterator[Span]:
    """A child of the current span (contextvars carry it across awaits and into gathered tasks);
    records an exception that escapes it."""
    if _tracer is None:
        yield _NO_SPAN
        return
    clean = {key: value for key, value in attributes.items() if value is not None}
    with _tracer.start_as_current_span(name, attributes=clean) as current:
        yield current

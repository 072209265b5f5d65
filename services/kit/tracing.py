"""Distributed tracing: an OpenTelemetry span for every RPC (server and client side) and
every consumed event, exported to Zipkin, joined by W3C trace context.

How it fits the kit:
- ``configure_tracing(config)`` (serve() and connect() call it; once per process) builds
  the SDK's TracerProvider: resource service.name / service.instance.id, sampler
  ParentBased(TraceIdRatioBased(MESHMART_TRACE_SAMPLE_RATIO)), spans batched to
  MESHMART_ZIPKIN_URL (Zipkin v2 JSON). Without MESHMART_ZIPKIN_URL tracing is off and
  the kit behaves exactly as before (the inbound traceparent is forwarded unchanged).
- Server: OpenTelemetry's gRPC instrumentation (its aio server interceptor) runs before
  the kit's interceptor, so its span is current while the kit's runs; the kit then puts
  *that span's* traceparent into the request scope (services/kit/context.py), which is
  what logs (trace_id, span_id), outbound calls and event envelopes carry.
- Client: the instrumentation's aio client interceptors run before the kit's propagating
  interceptor: each outbound call gets a child span and its traceparent, which the kit's
  interceptor then leaves alone (an explicit value wins).
- Events: ``consumer_span`` continues the trace of an event's envelope.traceparent, so a
  notification sent for a purchase is a span of the purchase's trace.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from services.kit.config import ServiceConfig, env_float, env_str
from services.kit.logging import get_logger

log = get_logger("meshmart.tracing")

_PROPAGATOR = TraceContextTextMapPropagator()
# Consul's health checks (every second per instance) and reflection are not traffic.
_NOT_TRAFFIC = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def _is_traffic(details: Any) -> bool:
    """The instrumentation's filter: False for health checks and reflection.

    A prefix test on the method name instead of OpenTelemetry's composable filters, whose
    isinstance() checks against grpc's call-details classes cost about 6 % of a call's CPU
    (bench/report.py's profile).
    """
    method = details.method
    if isinstance(method, bytes):  # client side: grpc.aio may hand the name over encoded
        method = method.decode()
    return not method.startswith(_NOT_TRAFFIC)


@dataclass(frozen=True)
class TracingSettings:
    zipkin_url: str | None
    sample_ratio: float


def load_tracing_settings(env: Mapping[str, str] | None = None) -> TracingSettings:
    url = env_str("MESHMART_ZIPKIN_URL", "", env=env)
    return TracingSettings(
        zipkin_url=url or None,
        sample_ratio=env_float(
            "MESHMART_TRACE_SAMPLE_RATIO", 1.0, minimum=0.0, maximum=1.0, env=env
        ),
    )


class Tracing:
    """One process's tracer provider and the gRPC interceptors bound to it."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("meshmart.kit")

    def server_interceptor(self) -> Any:
        return aio_server_interceptor(  # type: ignore[no-untyped-call]
            tracer_provider=self.provider, filter_=_is_traffic
        )

    def client_interceptors(self) -> list[Any]:
        interceptors = aio_client_interceptors(  # type: ignore[no-untyped-call]
            tracer_provider=self.provider, filter_=_is_traffic
        )
        return list(interceptors)

    def shutdown(self) -> None:
        """Export what is still batched (a stopping process keeps its last spans)."""
        self.provider.shutdown()


def build_tracing(
    service: str,
    instance: str,
    exporter: SpanExporter,
    *,
    sample_ratio: float = 1.0,
    schedule_delay_millis: float = 1000,
) -> Tracing:
    resource = Resource.create({"service.name": service, "service.instance.id": instance})
    provider = TracerProvider(
        resource=resource, sampler=ParentBased(TraceIdRatioBased(sample_ratio))
    )
    # Exported within a second: someone looking for the trace of a call they just made
    # should find it.
    provider.add_span_processor(
        BatchSpanProcessor(exporter, schedule_delay_millis=schedule_delay_millis)
    )
    return Tracing(provider)


# The process's tracing, set once by configure_tracing (or by a test through use()).
_current: list[Tracing] = []


def current_tracing() -> Tracing | None:
    return _current[0] if _current else None


def configure_tracing(
    config: ServiceConfig, env: Mapping[str, str] | None = None
) -> Tracing | None:
    """The process's tracing from MESHMART_ZIPKIN_URL / _TRACE_SAMPLE_RATIO, made once."""
    if _current:
        return _current[0]
    settings = load_tracing_settings(env)
    if settings.zipkin_url is None:
        return None
    # Imported here: requests (the exporter's HTTP client) costs start-up time a process
    # without tracing need not pay.
    from opentelemetry.exporter.zipkin.json import ZipkinExporter

    tracing = build_tracing(
        config.name,
        config.instance_id,
        ZipkinExporter(endpoint=settings.zipkin_url, timeout=5),
        sample_ratio=settings.sample_ratio,
    )
    trace.set_tracer_provider(tracing.provider)
    _current.append(tracing)
    log.info("tracing.enabled", zipkin=settings.zipkin_url, sample_ratio=settings.sample_ratio)
    return tracing


@contextmanager
def use(tracing: Tracing) -> Iterator[Tracing]:
    """Make ``tracing`` the process's for the block (tests)."""
    _current.insert(0, tracing)
    try:
        yield tracing
    finally:
        _current.remove(tracing)


def traceparent_of_current_span() -> str | None:
    """The W3C traceparent of the span current in this context, if there is one."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return (
        f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-"
        f"{int(span_context.trace_flags):02x}"
    )


@contextmanager
def consumer_span(
    name: str, traceparent: str | None, attributes: Mapping[str, str] | None = None
) -> Iterator[str | None]:
    """A CONSUMER span continuing ``traceparent`` (an event envelope's); yields the span's
    own traceparent for the request scope, or ``traceparent`` when tracing is off."""
    tracing = current_tracing()
    if tracing is None:
        yield traceparent
        return
    parent = _PROPAGATOR.extract({"traceparent": traceparent}) if traceparent else None
    token = otel_context.attach(parent) if parent is not None else None
    try:
        with tracing.tracer.start_as_current_span(
            name, kind=trace.SpanKind.CONSUMER, attributes=dict(attributes or {})
        ):
            yield traceparent_of_current_span() or traceparent
    finally:
        if token is not None:
            otel_context.detach(token)

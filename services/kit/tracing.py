"""Distributed tracing: an OpenTelemetry span for every RPC (server and client side) and
every consumed event, exported to Zipkin, joined by W3C trace context.

How it fits the kit:
- ``configure_tracing(config)`` (serve() and connect() call it; once per process) builds
  the SDK's TracerProvider: resource service.name / service.instance.id, sampler
  ParentBased(TraceIdRatioBased(MESHMART_TRACE_SAMPLE_RATIO)), spans batched to
  MESHMART_ZIPKIN_URL (Zipkin v2 JSON). Without MESHMART_ZIPKIN_URL tracing is off and
  the kit behaves exactly as before (the inbound traceparent is forwarded unchanged).
- Server: the sampling is decided first, from the call's traceparent (its sampled flag)
  or, for a call that starts a trace, by the ratio (on a trace id drawn here, which the
  span then gets, so the SDK's sampler agrees). Only a sampled call goes through
  OpenTelemetry's gRPC instrumentation (its aio server interceptor, ~0.1 ms of CPU per
  call: bench/TUNING.md e., f.); an unsampled one gets a non-recording span of the same
  trace made current, which is all the kit reads from it. The span runs before the kit's
  interceptor, so it is current while the kit's runs; the kit then puts
  *that span's* traceparent into the request scope (services/kit/context.py), which is
  what logs (trace_id, span_id), outbound calls and event envelopes carry.
- Client: the instrumentation's aio client interceptors run before the kit's propagating
  interceptor: each outbound call gets a child span and its traceparent, which the kit's
  interceptor then leaves alone (an explicit value wins).
- Events: ``consumer_span`` continues the trace of an event's envelope.traceparent, so a
  notification sent for a purchase is a span of the purchase's trace.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
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


# The trace id the sampling gate drew for a call that starts a trace and is sampled: the
# root span takes it (_GateTraceIds), so the SDK's TraceIdRatioBased decides on the very
# id the gate decided on. Set and consumed within the RPC's own task.
_planned_trace_id: ContextVar[int | None] = ContextVar("meshmart_planned_trace_id", default=None)


class _GateTraceIds(RandomIdGenerator):
    def generate_trace_id(self) -> int:
        planned = _planned_trace_id.get()
        if planned is not None:
            _planned_trace_id.set(None)
            return planned
        return super().generate_trace_id()


def _inbound_traceparent(details: Any) -> tuple[int, int] | None:
    """(trace id, flags) of the call's W3C traceparent, None when it has none (or a bad one)."""
    for key, value in details.invocation_metadata or ():
        if key == "traceparent" and isinstance(value, str):
            parts = value.split("-")
            if len(parts) != 4 or len(parts[1]) != 32 or len(parts[3]) != 2:
                return None
            try:
                trace_id, flags = int(parts[1], 16), int(parts[3], 16)
            except ValueError:
                return None
            return (trace_id, flags) if trace_id else None
    return None


class _SampledCallsOnly(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """OpenTelemetry's server interceptor for the calls that are sampled, a non-recording
    span of the same trace for the others (module docstring)."""

    def __init__(self, instrumented: Any, sample_ratio: float) -> None:
        self._instrumented = instrumented
        self._bound = TraceIdRatioBased.get_bound_for_rate(sample_ratio)

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], details: Any
    ) -> Any:
        if not _is_traffic(details):
            return await continuation(details)
        inbound = _inbound_traceparent(details)
        if inbound is None:  # this call starts a trace: the ratio decides, as the SDK would
            trace_id = random.getrandbits(128) or 1
            if trace_id & TraceIdRatioBased.TRACE_ID_LIMIT < self._bound:
                _planned_trace_id.set(trace_id)
                return await self._instrumented.intercept_service(continuation, details)
        elif inbound[1] & trace.TraceFlags.SAMPLED:
            return await self._instrumented.intercept_service(continuation, details)
        else:
            trace_id = inbound[0]
        # Not sampled: no span, but this call's place in its trace stays current (logs'
        # trace_id, the traceparent of what it calls and publishes, unsampled downstream).
        unsampled = trace.NonRecordingSpan(
            trace.SpanContext(trace_id, random.getrandbits(64) or 1, is_remote=False)
        )
        otel_context.attach(trace.set_span_in_context(unsampled))  # the RPC task's own
        return await continuation(details)


class Tracing:
    """One process's tracer provider and the gRPC interceptors bound to it."""

    def __init__(self, provider: TracerProvider, sample_ratio: float = 1.0) -> None:
        self.provider = provider
        self.sample_ratio = sample_ratio
        self.tracer = provider.get_tracer("meshmart.kit")

    def server_interceptor(self) -> Any:
        instrumented = aio_server_interceptor(  # type: ignore[no-untyped-call]
            tracer_provider=self.provider, filter_=_is_traffic
        )
        return _SampledCallsOnly(instrumented, self.sample_ratio)

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
        resource=resource,
        sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
        id_generator=_GateTraceIds(),
    )
    # Exported within a second: someone looking for the trace of a call they just made
    # should find it.
    provider.add_span_processor(
        BatchSpanProcessor(exporter, schedule_delay_millis=schedule_delay_millis)
    )
    return Tracing(provider, sample_ratio)


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

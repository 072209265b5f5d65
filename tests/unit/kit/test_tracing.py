"""Tracing: one trace across a call chain with correct parent links, the span ids in the
log lines, and an event consumer's span joining the trace its envelope carries."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from services.kit import context as rpc_context
from services.kit.clients import channel_to
from services.kit.server import ServiceSpec
from services.kit.testing import running_server
from services.kit.tracing import Tracing, build_tracing, consumer_span, use
from tests.unit.kit.echo_service import SPEC, DoubleValue, EchoClient, StringValue

FRONT = "meshmart.kittest.v1.FrontService"
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def tracing() -> Iterator[tuple[Tracing, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    tracing = build_tracing("kittest", "kittest-1", exporter, schedule_delay_millis=10)
    yield tracing, exporter
    tracing.shutdown()


def front_spec(backend: str, tracing: Tracing) -> ServiceSpec:
    """A service whose one RPC calls the echo service's Slow (which logs a line)."""

    async def forward(request: Any, context: Any) -> Any:
        async with channel_to(backend, tracing=tracing) as channel:
            await EchoClient(channel).slow(DoubleValue(value=0.0), timeout=5)
        return StringValue(value=rpc_context.current_traceparent() or "")

    def add(server: Any) -> None:
        handler = grpc.method_handlers_generic_handler(
            FRONT,
            {
                "Forward": grpc.unary_unary_rpc_method_handler(
                    forward,
                    request_deserializer=StringValue.FromString,
                    response_serializer=StringValue.SerializeToString,
                )
            },
        )
        server.add_generic_rpc_handlers((handler,))

    return ServiceSpec(name=FRONT, add=add)


def spans_by_name(tracing: Tracing, exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    tracing.provider.force_flush()
    return {f"{s.kind.name} {s.name}": s for s in exporter.get_finished_spans()}


async def test_a_call_chain_is_one_trace_with_each_span_under_its_caller(
    tracing: tuple[Tracing, InMemorySpanExporter], capsys: pytest.CaptureFixture[str]
) -> None:
    tracer, exporter = tracing
    async with running_server([SPEC], tracing=tracer) as backend:
        async with (
            running_server([front_spec(backend, tracer)], tracing=tracer) as front,
            grpc.aio.insecure_channel(front) as channel,
        ):
            forward = channel.unary_unary(
                f"/{FRONT}/Forward",
                request_serializer=StringValue.SerializeToString,
                response_deserializer=StringValue.FromString,
            )
            reply = await forward(
                StringValue(),
                metadata=(("traceparent", f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"),),
                timeout=5,
            )
    spans = spans_by_name(tracer, exporter)
    front_server = spans[f"SERVER /{FRONT}/Forward"]
    client = spans["CLIENT /meshmart.kittest.v1.EchoService/Slow"]
    back_server = spans["SERVER /meshmart.kittest.v1.EchoService/Slow"]
    for span in (front_server, client, back_server):
        assert span.context is not None
        assert f"{span.context.trace_id:032x}" == CALLER_TRACE
    assert front_server.parent is not None and f"{front_server.parent.span_id:016x}" == CALLER_SPAN
    assert client.parent is not None and front_server.context is not None
    assert client.parent.span_id == front_server.context.span_id
    assert back_server.parent is not None and client.context is not None
    assert back_server.parent.span_id == client.context.span_id
    # The request scope carries the server span's own traceparent (what goes downstream
    # and into events), not the caller's.
    assert reply.value == f"00-{CALLER_TRACE}-{front_server.context.span_id:016x}-01"
    # The backend's log line names its span.
    [line] = [json.loads(x) for x in capsys.readouterr().err.splitlines() if "slow.started" in x]
    assert back_server.context is not None
    assert line["trace_id"] == CALLER_TRACE
    assert line["span_id"] == f"{back_server.context.span_id:016x}"


async def test_health_checks_are_not_traced(
    tracing: tuple[Tracing, InMemorySpanExporter],
) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    tracer, exporter = tracing
    async with (
        running_server([SPEC], tracing=tracer) as target,
        grpc.aio.insecure_channel(target) as channel,
    ):
        await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        await EchoClient(channel).echo(StringValue(value="x"), timeout=5)
    assert list(spans_by_name(tracer, exporter)) == [
        "SERVER /meshmart.kittest.v1.EchoService/Echo"
    ]


def test_an_event_consumer_span_continues_the_envelope_trace(
    tracing: tuple[Tracing, InMemorySpanExporter],
) -> None:
    tracer, exporter = tracing
    with use(tracer), consumer_span(
        "consume order.OrderPlaced", f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
    ) as traceparent:
        pass
    [span] = spans_by_name(tracer, exporter).values()
    assert span.kind is SpanKind.CONSUMER and span.context is not None
    assert span.parent is not None and f"{span.parent.span_id:016x}" == CALLER_SPAN
    assert traceparent == f"00-{CALLER_TRACE}-{span.context.span_id:016x}-01"


def test_without_tracing_a_consumer_keeps_the_envelope_traceparent() -> None:
    given = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
    with consumer_span("consume x", given) as traceparent:
        assert traceparent == given


async def call_forward(front: str, metadata: tuple[tuple[str, str], ...] = ()) -> str:
    async with grpc.aio.insecure_channel(front) as channel:
        forward = channel.unary_unary(
            f"/{FRONT}/Forward",
            request_serializer=StringValue.SerializeToString,
            response_deserializer=StringValue.FromString,
        )
        reply = await forward(StringValue(), metadata=metadata, timeout=5)
    return str(reply.value)


async def test_a_chain_under_an_unsampled_caller_records_no_span_and_keeps_its_trace(
    tracing: tuple[Tracing, InMemorySpanExporter], capsys: pytest.CaptureFixture[str]
) -> None:
    tracer, exporter = tracing
    async with running_server([SPEC], tracing=tracer) as backend:
        async with running_server([front_spec(backend, tracer)], tracing=tracer) as front:
            scope = await call_forward(
                front, (("traceparent", f"00-{CALLER_TRACE}-{CALLER_SPAN}-00"),)
            )
    assert spans_by_name(tracer, exporter) == {}
    # The caller's trace, unsampled, in the scope (what goes downstream) and in the logs.
    assert scope.startswith(f"00-{CALLER_TRACE}-") and scope.endswith("-00")
    [line] = [json.loads(x) for x in capsys.readouterr().err.splitlines() if "slow.started" in x]
    assert line["trace_id"] == CALLER_TRACE


async def test_a_call_starting_a_trace_is_sampled_by_the_ratio_and_traced_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for ratio, recorded in ((0.0, False), (1.0, True)):
        exporter = InMemorySpanExporter()
        tracer = build_tracing("kittest", "kittest-1", exporter, sample_ratio=ratio)
        try:
            async with running_server([SPEC], tracing=tracer) as backend:
                async with running_server([front_spec(backend, tracer)], tracing=tracer) as front:
                    scope = await call_forward(front)
            spans = spans_by_name(tracer, exporter)
        finally:
            tracer.shutdown()
        _, trace_id, _, flags = scope.split("-")
        assert bool(int(flags, 16) & 1) is recorded  # the sampled flag
        err = capsys.readouterr().err
        [line] = [json.loads(x) for x in err.splitlines() if "slow.started" in x]
        assert line["trace_id"] == trace_id  # the backend logs the front's trace, either way
        if recorded:
            front_server = spans[f"SERVER /{FRONT}/Forward"]
            assert front_server.parent is None and front_server.context is not None
            assert f"{front_server.context.trace_id:032x}" == trace_id
            assert {f"{s.context.trace_id:032x}" for s in spans.values() if s.context} == {trace_id}
        else:
            assert spans == {}

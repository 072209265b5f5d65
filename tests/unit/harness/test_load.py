"""harness/load.py against a real in-process gRPC server (the kit's health service)."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness.load import (
    NOT_SENT,
    OK,
    CallFailed,
    loopback_channel,
    open_loop,
    percentile,
    require_loopback,
    unary_call,
)
from services.kit.testing import running_server


def test_percentile_is_nearest_rank() -> None:
    values = [float(x) for x in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([], 99) == 0


def test_only_loopback_targets_are_accepted() -> None:
    require_loopback("127.0.0.2:7110")
    require_loopback("localhost:7110")
    with pytest.raises(ValueError, match="not a loopback address"):
        require_loopback("192.0.2.1:7110")


async def test_an_open_loop_run_counts_every_call_by_code_at_the_asked_rate() -> None:
    async with running_server([]) as target, loopback_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)

        async def call(i: int) -> str | None:
            # Every third call asks for a service the server does not have: NOT_FOUND.
            service = "no.such.Service" if i % 3 == 0 else ""
            await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
            return "even" if i % 2 == 0 else None

        report = await open_loop(call, rate=200, duration=0.5)

    assert report.sent == 100
    assert report.ok == 66
    assert report.failed_by_code == {"NOT_FOUND": 34}
    # Tags come from answered calls only: the even i that are not multiples of 3.
    assert report.tags["even"] == 33
    assert report.latency_ms(99, OK) > 0
    assert len(report.latencies["NOT_FOUND"]) == 34
    assert "NOT_FOUND" in report.details  # the first error message, for the report
    # Open loop: 100 calls due over 0.5 s take about that long, not 100 round trips.
    assert 0.45 < report.elapsed < 2.0


async def test_calls_over_the_in_flight_bound_are_not_sent() -> None:
    release = asyncio.Event()

    async def hangs(_: int) -> str | None:
        await release.wait()
        return None

    report = await open_loop(hangs, rate=100, duration=10, max_requests=30, max_in_flight=5,
                             drain_timeout=0.2)
    # 30 calls were due; only 5 got in (none returns), and those were cancelled at the drain.
    assert report.sent == 5
    assert report.codes[NOT_SENT] == 25
    assert report.codes["DRIVER_CANCELLED"] == 5


async def test_stop_ends_the_run_before_its_duration() -> None:
    stop = asyncio.Event()

    async def third_stops(i: int) -> str | None:
        if i == 2:
            stop.set()
        return None

    report = await open_loop(third_stops, rate=100, duration=10, stop=stop)
    # 1,000 calls were due over 10 s; the stop came with the third.
    assert stop.is_set()
    assert 3 <= report.sent < 1000
    assert report.ok == report.sent
    assert report.elapsed < 5


async def test_unary_call_sends_a_json_request_by_method_name() -> None:
    async with running_server([]) as target, loopback_channel(target) as channel:
        call = unary_call(channel, "grpc.health.v1.Health/Check", '{"service": ""}', timeout=2)
        report = await open_loop(call, rate=50, duration=0.2)
    assert (report.sent, report.ok) == (10, 10)


async def test_a_failing_call_records_its_code_and_detail() -> None:
    async with running_server([]) as target, loopback_channel(target) as channel:
        stub = channel.unary_unary("/no.Such/Method")

        async def call(_: int) -> str | None:
            await stub(b"", timeout=2)
            return None

        report = await open_loop(call, rate=20, duration=0.1)
    assert report.failed_by_code == {grpc.StatusCode.UNIMPLEMENTED.name: 2}


async def test_the_timeline_places_answers_and_failures_in_time() -> None:
    async def call(i: int) -> str | None:
        if i >= 10:
            raise asyncio.CancelledError  # counted as DRIVER_CANCELLED, a failure
        return None

    report = await open_loop(call, rate=20, duration=1.0)
    timeline = report.timeline(0.25)
    assert sum(ok for _, ok, _, _ in timeline) == 10
    assert sum(failed for _, _, failed, _ in timeline) == 10
    # Answers first, failures last (calls 0-9 are due in the first half second).
    assert timeline[0][0] == 0.0 and timeline[0][2] == 0
    assert timeline[-1][1] == 0


async def test_a_call_failing_without_a_grpc_status_is_counted_under_its_own_code() -> None:
    async def call(i: int) -> str | None:
        if i % 4 == 0:  # e.g. the edge's REST face answering 429
            raise CallFailed("HTTP 429", "rate limited")
        return None

    report = await open_loop(call, rate=200, duration=0.2)

    assert report.sent == 40
    assert report.ok == 30
    assert report.failed_by_code == {"HTTP 429": 10}
    assert report.details["HTTP 429"] == "rate limited"
    assert len(report.latencies["HTTP 429"]) == 10

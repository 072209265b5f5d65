"""SIGTERM: health turns NOT_SERVING, in-flight RPCs finish, the process exits 0."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness.host import free_port
from tests.unit.kit.echo_service import SERVICE, DoubleValue, EchoClient
from tests.unit.kit.processes import start_module

NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVING = health_pb2.HealthCheckResponse.SERVING


# The same shutdown on each event loop the kit offers (MESHMART_EVENT_LOOP).
@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
async def test_sigterm_drains_health_then_finishes_in_flight_rpc(
    tmp_path: Path, event_loop: str
) -> None:
    port = free_port()
    server = await start_module(
        "tests.unit.kit.echo_server",
        {
            "MESHMART_PORT": str(port),
            "MESHMART_DATA_DIR": str(tmp_path),
            # Long enough to observe health during the drain; the slow call outlives
            # the drain so it is still running when server.stop(grace) begins.
            "MESHMART_DRAIN_SECONDS": "1.5",
            "MESHMART_EVENT_LOOP": event_loop,
        },
    )
    try:
        started = await server.wait_for("server.started")
        assert started["event_loop"] == event_loop
        await server.wait_for("hook.on_start")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for name in ("", SERVICE):
                reply = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
                assert reply.status == SERVING

            in_flight = asyncio.ensure_future(
                EchoClient(channel).slow(DoubleValue(value=3.0), timeout=20)
            )
            await server.wait_for("slow.started")
            server.process.send_signal(signal.SIGTERM)
            await server.wait_for("server.draining")
            # on_stop hooks (deregistration) run while draining; one failing does not
            # stop the others or the shutdown.
            failed = await server.wait_for("server.on_stop_failed")
            assert failed["hook"] == "failing_stop"
            await server.wait_for("hook.on_stop")

            for name in ("", SERVICE):
                reply = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
                assert reply.status == NOT_SERVING, name

            await server.wait_for("server.stopping")
            assert not in_flight.done(), "the slow RPC should still be running at stop()"
            reply = await in_flight
            assert reply.value == 3.0

        assert await server.finish() == 0, server.log()
        events = [line for line in server.lines if '"event"' in line]
        assert any('"server.stopped"' in line for line in events), server.log()
    finally:
        server.kill()

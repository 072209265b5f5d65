"""The RecommendationService implementations (harness/recommendation.py) serving for a
contract test, against upstreams the test chooses:

    async with running(V2, order=..., catalog=..., user=...) as server:
        reply = await server.stub.Recommend(request, timeout=10)
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import grpc
from meshmart.recommendation.v1 import recommendation_pb2_grpc

from harness.host import free_port
from harness.recommendation import Implementation, ServerProcess, start

# No model caching: each Recommend reads the history afresh, so a test sees the orders it
# just placed. Generous upstream budgets: the machine is shared.
TEST_SETTINGS = {
    "MESHMART_RECOMMENDATION_MODEL_TTL_S": "0",
    "MESHMART_RECOMMENDATION_ORDER_TIMEOUT_MS": "1000",
    "MESHMART_RECOMMENDATION_CATALOG_TIMEOUT_MS": "3000",
    "MESHMART_RECOMMENDATION_USER_TIMEOUT_MS": "1000",
    "MESHMART_DRAIN_SECONDS": "0",
}


@dataclass
class Running:
    server: ServerProcess
    target: str
    channel: grpc.aio.Channel
    stub: recommendation_pb2_grpc.RecommendationServiceStub


@contextlib.asynccontextmanager
async def running(
    implementation: Implementation,
    *,
    order: str,
    catalog: str,
    user: str,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[Running]:
    """The implementation serving on a free port with the given upstream targets; stopped
    with SIGTERM (and required to exit 0) at the end."""
    port = free_port()
    server = await start(
        implementation,
        {
            "MESHMART_PORT": str(port),
            "MESHMART_UPSTREAM_ORDER": order,
            "MESHMART_UPSTREAM_CATALOG": catalog,
            "MESHMART_UPSTREAM_USER": user,
            "MESHMART_SERVICE_VERSION": implementation.version,
            # INFO: readiness is the "server.started" record.
            "MESHMART_LOG_LEVEL": "INFO",
            **TEST_SETTINGS,
            **(env or {}),
        },
    )
    reader = asyncio.create_task(server.read_stderr())
    try:
        await server.wait_for("server.started")
        target = f"127.0.0.1:{port}"
        async with grpc.aio.insecure_channel(target) as channel:
            stub = recommendation_pb2_grpc.RecommendationServiceStub(channel)
            yield Running(server, target, channel, stub)
        # One SIGTERM only: a test may have sent it already, and a second one reaching a
        # process that has stopped serving (its handlers gone) would kill it.
        signalled = any(r.get("event") == "server.signal" for r in server.records)
        if server.process.returncode is None and not signalled:
            server.process.send_signal(signal.SIGTERM)
        code = await server.exit_code()
        assert code == 0, f"{implementation.name} exited {code} after SIGTERM:\n{server.log()}"
    finally:
        if server.process.returncode is None:
            server.process.kill()
            await server.process.wait()
        await reader

"""What both implementations report about themselves, held to one shape: Prometheus RED
metrics (same names, labels, buckets), spans joining the caller's trace (Zipkin, W3C
trace context), logs carrying the trace, and the request's identity passed downstream."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

import grpc
import pytest
from meshmart.recommendation.v1 import recommendation_pb2
from prometheus_client.parser import text_string_to_metric_families

from harness.recommendation import Implementation
from harness.shop import running_shop
from services.kit.metrics import LATENCY_BUCKETS
from tests.contract.collectors import recorder
from tests.contract.implementations import running
from tests.contract.upstreams import recording_order, recording_user

SERVICE = "meshmart.recommendation.v1.RecommendationService"
TIMEOUT = 10.0
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value of every sample at a /metrics URL."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def labels(**values: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(values.items()))


async def test_rpc_metrics_count_calls_by_method_and_code(
    implementation: Implementation, tmp_path: Path
) -> None:
    async with running_shop(tmp_path) as shop:
        ann = (await shop.register()).user_id
        async with running(
            implementation,
            order=shop.targets["order"],
            catalog=shop.targets["catalog"],
            user=shop.targets["user"],
            env={"MESHMART_METRICS_PORT": "0"},
        ) as rec:
            for _ in range(2):
                await rec.stub.Recommend(
                    recommendation_pb2.RecommendRequest(user_id=ann), timeout=TIMEOUT
                )
            with pytest.raises(grpc.aio.AioRpcError):
                await rec.stub.Recommend(
                    recommendation_pb2.RecommendRequest(user_id=""), timeout=TIMEOUT
                )
            url = (await rec.server.wait_for("metrics.serving"))["url"]
            samples = await asyncio.to_thread(scrape, url)

    method = {"grpc_service": SERVICE, "grpc_method": "Recommend", "grpc_type": "unary"}
    handled = "grpc_server_handled_total"
    assert samples[(handled, labels(**method, grpc_code="OK"))] == 2
    assert samples[(handled, labels(**method, grpc_code="InvalidArgument"))] == 1
    assert samples[("grpc_server_handling_seconds_count", labels(**method))] == 3
    buckets = sorted(
        float(dict(key)["le"])
        for name, key in samples
        if name == "grpc_server_handling_seconds_bucket" and dict(key)["grpc_method"] == "Recommend"
    )
    assert buckets == [*LATENCY_BUCKETS, float("inf")]


async def test_spans_join_the_callers_trace_and_logs_carry_it(
    implementation: Implementation, tmp_path: Path
) -> None:
    with recorder() as zipkin:
        async with running_shop(tmp_path) as shop:
            ann = (await shop.register()).user_id
            async with running(
                implementation,
                order=shop.targets["order"],
                catalog=shop.targets["catalog"],
                user=shop.targets["user"],
                env={"MESHMART_ZIPKIN_URL": f"{zipkin.url}/api/v2/spans"},
            ) as rec:
                await rec.stub.Recommend(
                    recommendation_pb2.RecommendRequest(user_id=ann, limit=2),
                    timeout=TIMEOUT,
                    metadata=(("traceparent", TRACEPARENT),),
                )
            # Stopping flushed the batch (both export within a second anyway).

        def four_spans(requests: object) -> bool:
            return len(zipkin.spans()) >= 4

        assert await asyncio.to_thread(zipkin.wait_for, four_spans, 15)
        spans = zipkin.spans()

    server = [s for s in spans if s.get("kind") == "SERVER"]
    assert len(server) == 1
    assert server[0]["traceId"] == TRACE_ID
    assert server[0]["parentId"] == CALLER_SPAN
    # Zipkin stores names lower-cased: compare as it will show them.
    assert server[0]["name"].lower() == f"/{SERVICE}/Recommend".lower()
    clients = {s["name"].lower(): s for s in spans if s.get("kind") == "CLIENT"}
    assert set(clients) == {
        "/meshmart.order.v1.orderservice/listrecentorders",
        "/meshmart.catalog.v1.catalogservice/listproducts",
        "/meshmart.user.v1.userservice/getuser",
    }
    for span in clients.values():
        assert span["traceId"] == TRACE_ID
        assert span["parentId"] == server[0]["id"]
    assert {s["localEndpoint"]["serviceName"] for s in spans} == {"recommendation"}
    access = [r for r in rec.server.records if r.get("event") == "rpc"]
    assert access and access[0]["trace_id"] == TRACE_ID
    assert access[0]["span_id"] == server[0]["id"]


async def test_without_tracing_the_request_identity_and_traceparent_pass_unchanged(
    implementation: Implementation, tmp_path: Path
) -> None:
    async with (
        running_shop(tmp_path) as shop,
        recording_order() as (order, recording),
        recording_user() as (user, users),
    ):
        async with running(
            implementation, order=order, catalog=shop.targets["catalog"], user=user
        ) as rec:
            await rec.stub.Recommend(
                recommendation_pb2.RecommendRequest(user_id="ann", limit=1),
                timeout=TIMEOUT,
                metadata=(
                    ("traceparent", TRACEPARENT),
                    ("x-request-id", "req-contract-1"),
                    ("x-meshmart-user-id", "ann"),
                ),
            )

    assert recording.metadata, "ListRecentOrders was never called"
    assert users.metadata, "GetUser was never called"
    for sent in (recording.metadata[0], users.metadata[0]):
        assert sent["traceparent"] == TRACEPARENT
        assert sent["x-request-id"] == "req-contract-1"
        assert sent["x-meshmart-user-id"] == "ann"
    access = [r for r in rec.server.records if r.get("event") == "rpc"]
    assert access[0]["request_id"] == "req-contract-1"
    assert access[0]["trace_id"] == TRACE_ID

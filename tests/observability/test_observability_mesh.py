"""Observability of the real mesh: a purchase through the edge shows up in Prometheus
(found through Consul), as one trace in Zipkin (the event consumer included) and in the
services' logs with the same trace id; a failing payment raises its error ratio until
the alert is pending; the Consul UI's metrics proxy and `make status` read Prometheus."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from typing import Any

import grpc
import pytest
import requests
from meshmart.payment.v1 import payment_pb2_grpc

from harness.callers import caller_channel
from harness.operator import set_fault
from harness.wait import until
from tests.mesh.helpers import charge_request
from tests.observability.conftest import Purchase
from tools.mesh import control
from tools.mesh.http import HTTPFailure, get_json
from tools.mesh.observability import Observability
from tools.mesh.plan import MeshPlan

pytestmark = pytest.mark.mesh

# The purchase path: every service a REST purchase touches (the edge calls user, catalog,
# cart and order; order calls user, cart, inventory and payment).
PURCHASE_SERVICES = ("user", "catalog", "cart", "order", "inventory", "payment")


# How these tests wait (harness.wait): each probe is a blocking HTTP read, run in a worker
# thread; Prometheus, Zipkin or a log not answering (yet) is "not yet".
NOT_ANSWERING = (HTTPFailure, KeyError, requests.RequestException)


async def test_prometheus_counts_the_purchase_for_every_service_and_sidecar_found_via_consul(
    observability: Observability, purchase: Purchase
) -> None:
    def by_service(promql: str) -> dict[str, float]:
        return observability.query(promql)

    wanted = set(PURCHASE_SERVICES)
    seen: dict[str, dict[str, float]] = {}

    def counted(name: str, promql: str) -> bool:
        seen[name] = by_service(promql)
        return wanted <= {s for s, v in seen[name].items() if v > 0}

    await until(
        lambda: counted("calls", 'sum by (service) (grpc_server_handled_total{job="services",'
                                 'grpc_service=~"meshmart\\\\..+"})'),
        60, f"RPC counts of {sorted(wanted)} in Prometheus",
        step=1, in_thread=True, not_yet=NOT_ANSWERING,
    )
    calls = seen["calls"]
    assert all(calls[s] > 0 for s in wanted), calls
    # Each sidecar on the path answered requests on its public listener; the edge's
    # own Envoy counted the REST requests.
    await until(
        lambda: counted("sidecars", 'sum by (service) (envoy_http_downstream_rq_total{'
                                    'job="envoy",envoy="sidecar",'
                                    'envoy_http_conn_manager_prefix="public_listener"})'),
        60, "sidecar request counts in Prometheus",
        step=1, in_thread=True, not_yet=NOT_ANSWERING,
    )
    sidecars = seen["sidecars"]
    assert all(sidecars[s] > 0 for s in wanted), sidecars
    edge = by_service('sum by (service) (envoy_http_downstream_rq_total{envoy="gateway"})')
    assert edge.get("edge", 0) > 0, edge
    # No static target: each one came from Consul's catalog (its __meta_consul_* labels).
    def active_targets() -> list[dict[str, Any]]:
        targets = get_json(f"{observability.prometheus_url}/api/v1/targets?state=active")
        found: list[dict[str, Any]] = targets["data"]["activeTargets"]
        return found

    active = active_targets()
    assert {t["labels"]["job"] for t in active} == {"services", "envoy", "consul"}
    assert all("__meta_consul_service" in t["discoveredLabels"] for t in active)
    # A target's health is its last scrape's: one that timed out on a starved box (or a
    # sidecar the NATS chaos test restarted) is "down" until the next, 5 s later. Every
    # target is scraped successfully within a few intervals.
    def every_target_up() -> bool:
        return all(t["health"] == "up" for t in active_targets())

    await until(every_target_up, 60, "every target's last scrape up",
                step=2, in_thread=True, not_yet=NOT_ANSWERING)


def zipkin_trace(observability: Observability, trace_id: str) -> list[dict[str, Any]]:
    url = f"{observability.zipkin_url}/api/v2/trace/{trace_id}"
    spans: list[dict[str, Any]] = get_json(url)
    return spans


async def test_the_purchase_is_one_trace_across_five_services_and_the_event_consumer(
    observability: Observability, purchase: Purchase
) -> None:
    # Each reporter sends its spans on its own schedule (a sidecar's Envoy once it holds 5
    # spans or every 5 s, a service's batch processor every 5 s), so Zipkin shows a trace
    # in pieces: wait until no span's parent is still missing, not just for the first
    # services to show up. (Seen after the NATS chaos test: cart's and inventory's spans
    # had arrived, their sidecars' spans not yet.)
    seen: list[dict[str, Any]] = []

    def complete() -> bool:
        seen[:] = spans = zipkin_trace(observability, purchase.trace_id)
        names = {s["localEndpoint"]["serviceName"] for s in spans}
        consumer = any(s.get("kind") == "CONSUMER" and s["localEndpoint"]["serviceName"]
                       == "notification" for s in spans)
        known = {s["id"] for s in spans} | {purchase.root_span_id}
        whole = all(s.get("parentId") in known for s in spans)
        return len(names) >= 5 and consumer and whole

    await until(complete, 60, "the purchase's trace in Zipkin",
                step=2, in_thread=True, not_yet=NOT_ANSWERING)
    spans = seen
    services = {s["localEndpoint"]["serviceName"] for s in spans}
    assert {"order", "user", "cart", "inventory", "payment", "notification"} <= services
    ids = {s["id"] for s in spans}
    # Every span hangs under a span of the same trace, except the entry into the mesh,
    # whose parent is the span the client sent.
    orphans = [s for s in spans if s.get("parentId") not in ids]
    assert orphans and all(s.get("parentId") == purchase.root_span_id for s in orphans), [
        (s["localEndpoint"]["serviceName"], s["name"], s.get("parentId")) for s in orphans
    ]
    by_id = {s["id"]: s for s in spans}

    def ancestors(span: dict[str, Any]) -> list[dict[str, Any]]:
        chain = []
        parent = by_id.get(span.get("parentId", ""))
        while parent is not None:
            chain.append(parent)
            parent = by_id.get(parent.get("parentId", ""))
        return chain

    def is_envoy(span: dict[str, Any]) -> bool:
        return bool(span.get("tags", {}).get("component") == "proxy")

    # payment's server span of Charge hangs under the two sidecars' spans (Envoy's own,
    # order's egress and payment's ingress), which hang under order's client span.
    [charge] = [s for s in spans if s["localEndpoint"]["serviceName"] == "payment"
                and s.get("kind") == "SERVER" and s["name"].endswith("/charge")]
    above = ancestors(charge)
    hops = [s for s in above[: next(i for i, s in enumerate(above) if not is_envoy(s))]]
    caller = above[len(hops)]
    assert caller["localEndpoint"]["serviceName"] == "order" and caller["kind"] == "CLIENT"
    assert len(hops) == 2, [(s["localEndpoint"]["serviceName"], s["name"]) for s in above]
    # The notification consumer's span descends from order's PlaceOrder.
    [consumer] = [s for s in spans if s.get("kind") == "CONSUMER"
                  and s["localEndpoint"]["serviceName"] == "notification"]
    chain = [(s["localEndpoint"]["serviceName"], s["name"].lower()) for s in ancestors(consumer)]
    assert ("order", "/meshmart.order.v1.orderservice/placeorder") in chain, chain


async def test_a_payment_log_line_of_the_purchase_carries_its_trace_id(
    mesh: MeshPlan, purchase: Purchase, observability: Observability
) -> None:
    found: list[dict[str, Any]] = []

    def lines() -> bool:
        found[:] = [
            json.loads(raw)
            for path in sorted(mesh.logs_dir.glob("payment-[0-9]*.log"))
            for raw in path.read_text(errors="replace").splitlines()
            if purchase.trace_id in raw
        ]
        return bool(found)

    await until(lines, 20, "a payment log line with the trace id",
                step=1, in_thread=True, not_yet=NOT_ANSWERING)
    charge = [x for x in found if x.get("method", "").endswith("/Charge")]
    assert charge, found
    line = charge[0]
    assert line["service"] == "payment" and line["trace_id"] == purchase.trace_id
    assert line["instance"].startswith("payment-") and line["request_id"] and line["span_id"]
    # The span id of the log line is payment's server span of that call, in Zipkin.
    spans = {s["id"] for s in zipkin_trace(observability, purchase.trace_id)}
    assert line["span_id"] in spans


def alert_state(observability: Observability, name: str, service: str) -> str | None:
    body = get_json(f"{observability.prometheus_url}/api/v1/alerts")
    for alert in body["data"]["alerts"]:
        if alert["labels"].get("alertname") == name and alert["labels"].get("service") == service:
            return str(alert["state"])
    return None


async def test_a_failing_payment_raises_its_error_ratio_and_the_alert_goes_pending(
    mesh: MeshPlan, observability: Observability
) -> None:
    payments = [i for i in mesh.instances() if i.service == "payment"]
    for inst in payments:
        await set_fault(mesh, inst, unavailable_ratio=1.0)
    try:
        # Charges as order, the one caller that may charge (its sidecar's listener, in
        # its pod with pods: harness/callers.py), round robin over both instances:
        # every one fails with UNAVAILABLE, a server-side error (retries included).
        # Until both show it: the ratio is over a minute that began with the earlier
        # tests' successful calls, so it climbs while the failures go on, and the alert's
        # evaluation and this query each read it at their own moment.
        deadline = time.monotonic() + 90
        state = None
        ratio: dict[str, float] = {}
        async with caller_channel(mesh, mesh.instance("order-1"), "payment") as channel:
            stub = payment_pb2_grpc.PaymentServiceStub(channel)
            while time.monotonic() < deadline and not (
                    state in ("pending", "firing") and ratio.get("payment", 0) > 0.05):
                for _ in range(5 * len(payments)):
                    with pytest.raises(grpc.aio.AioRpcError) as failure:
                        await stub.Charge(charge_request(), timeout=5)
                    assert failure.value.code() is grpc.StatusCode.UNAVAILABLE
                await asyncio.sleep(1)
                state = await asyncio.to_thread(
                    alert_state, observability, "ServiceErrorRatioHigh", "payment")
                ratio = await asyncio.to_thread(
                    observability.query, "service:grpc_error_ratio:rate1m")
    finally:
        for inst in payments:
            await set_fault(mesh, inst, unavailable_ratio=0.0)
    assert ratio.get("payment", 0) > 0.05, ratio
    assert state in ("pending", "firing"), state


def test_the_consul_ui_reads_prometheus_through_its_metrics_proxy(
    mesh: MeshPlan, observability: Observability, purchase: Purchase
) -> None:
    query = urllib.parse.quote('sum(up{job="envoy"})')
    body = get_json(f"{mesh.consul_url}/v1/internal/ui/metrics-proxy/api/v1/query?query={query}",
                    token=mesh.consul_token)
    assert body["status"] == "success" and float(body["data"]["result"][0]["value"][1]) > 0
    agent = get_json(f"{mesh.consul_url}/v1/agent/self", token=mesh.consul_token)
    config = agent["DebugConfig"]["UIConfig"]
    assert config["MetricsProvider"] == "prometheus"
    assert "zipkin" in config["DashboardURLTemplates"]["service"]


async def test_make_status_shows_rate_errors_and_p99_per_service(
    mesh: MeshPlan, purchase: Purchase
) -> None:
    shown: list[str] = [""]

    def prometheus_table() -> bool:
        shown[0] = control.render_status(mesh)
        table = shown[0].split("from Prometheus")[-1]
        return "\norder " in table and " ms" in table

    await until(prometheus_table, 60, "the Prometheus table in make status",
                step=1, in_thread=True, not_yet=NOT_ANSWERING)
    status = shown[0]
    table = status.split("from Prometheus")[1]
    header = next(line for line in table.splitlines() if line.startswith("service"))
    assert header.split() == ["service", "rps", "(1m)", "errors", "p99"]

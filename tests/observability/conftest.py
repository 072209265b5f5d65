"""The session's observability and one purchase made through the edge in a trace the
test chose, shared by the tests of tests/observability (the mesh is tests/conftest.py's)."""

from __future__ import annotations

import os
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from harness.wait import until_blocking
from tests.edge.client import ADDRESS, VISA_OK, EdgeClient
from tools.mesh.edge.mesh import Edge
from tools.mesh.http import HTTPFailure, get_json
from tools.mesh.observability import Observability
from tools.mesh.plan import MeshPlan


@dataclass(frozen=True)
class Purchase:
    trace_id: str
    root_span_id: str  # the span the "browser" sent as traceparent's parent
    order_id: str
    user_id: str


@pytest.fixture(scope="session")
def observability(mesh: MeshPlan) -> Observability:
    obs = Observability(mesh)
    assert obs.has_prometheus, "run `make setup` (it builds prometheus)"
    assert obs.has_zipkin, "run `make setup` with java and mvn installed (it fetches Zipkin)"
    return obs


def order_upstreams_scraped(mesh: MeshPlan, observability: Observability) -> bool:
    """Prometheus holds a sample of every order sidecar's request counters per upstream
    (what the Consul UI's upstream cards rate over 15 minutes)."""
    query = ('envoy_http_downstream_rq_xx{consul_source_service="order",'
             'envoy_http_conn_manager_prefix="upstream"}')
    body = get_json(f"{observability.prometheus_url}/api/v1/query?"
                    + urllib.parse.urlencode({"query": query}))
    seen = {(r["metric"].get("instance"), r["metric"].get("consul_upstream_service"))
            for r in body["data"]["result"]}
    wanted = {(inst.sidecar_id, upstream) for inst in mesh.instances()
              if inst.service == "order" for upstream in mesh.topology.services["order"].upstreams}
    return wanted <= seen


@pytest.fixture(scope="session")
def purchase(mesh: MeshPlan, observability: Observability) -> Iterator[Purchase]:
    """Register, log in, add to cart and order through the edge, in a trace we chose.

    Only once Prometheus has scraped order's sidecars: a counter whose first sample
    already counts the purchase never rises in Prometheus, so a rate over it (the
    Consul UI's error ratio, 0/0) has nothing to show for 15 minutes."""
    until_blocking(lambda: order_upstreams_scraped(mesh, observability), 90,
                   "Prometheus's first scrape of order's sidecars", step=0.5,
                   not_yet=(HTTPFailure,))
    edge = Edge(mesh)
    trace_id, span_id = os.urandom(16).hex(), os.urandom(8).hex()
    traceparent = {"traceparent": f"00-{trace_id}-{span_id}-01"}
    with requests.Session() as session:
        session.trust_env = False
        api = EdgeClient(edge.url, session)
        user = api.new_user()
        product = api.get("/api/v1/products", params={"pageSize": 1}).json()["products"][0]
        added = api.post(f"/api/v1/users/{user.user_id}/cart/items", headers=user.auth,
                         json={"productId": product["productId"], "quantity": 1})
        assert added.status_code == 200, added.text
        placed = api.post(
            f"/api/v1/users/{user.user_id}/orders", headers={**user.auth, **traceparent},
            json={"idempotencyKey": uuid.uuid4().hex, "card": VISA_OK,
                  "shippingAddress": ADDRESS},
        )
    assert placed.status_code == 200, placed.text
    order = placed.json()["order"]
    assert order["state"] == "STATE_CONFIRMED", order
    yield Purchase(trace_id, span_id, order["orderId"], user.user_id)



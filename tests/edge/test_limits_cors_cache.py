"""Rate limits, CORS and the HTTP cache at the real edge."""

from __future__ import annotations

import time

import pytest

from tests.edge.client import EdgeClient, error_of
from tools.mesh.edge import api as edge_api
from tools.mesh.edge.mesh import Edge

pytestmark = pytest.mark.mesh

RESOURCE_EXHAUSTED = 8


def test_a_login_burst_gets_429_and_the_window_lets_it_through_again(api: EdgeClient) -> None:
    bucket = edge_api.LOGIN.rate_limit
    # Empty logins are cheap (the service refuses them, 400) but count all the same.
    statuses = [api.login("", "").status_code for _ in range(bucket.burst + 3)]
    assert set(statuses[:bucket.burst // 2]) == {400}, statuses
    assert statuses[-1] == 429, statuses

    limited = api.login("", "")
    assert limited.status_code == 429
    assert error_of(limited)["code"] == RESOURCE_EXHAUSTED
    retry_after = int(limited.headers["retry-after"])
    assert retry_after == bucket.retry_after_s
    assert limited.headers["x-ratelimit-limit"] == str(bucket.burst)
    # Other route classes have their own buckets: browsing is not affected.
    assert api.get("/api/v1/products", params={"pageSize": 1}).status_code == 200

    # After the time the edge asked for, the route serves again.
    time.sleep(retry_after + 0.2)
    assert api.login("", "").status_code == 400


def test_cors_preflight_for_the_configured_origin_only(api: EdgeClient, edge: Edge) -> None:
    [origin] = edge.settings.cors_origins
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}
    allowed = api.call("OPTIONS", "/api/v1/users/usr-1/cart/items",
                       headers={"Origin": origin, **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == origin
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "authorization" in allowed.headers["access-control-allow-headers"]

    refused = api.call("OPTIONS", "/api/v1/users/usr-1/cart/items",
                       headers={"Origin": "https://evil.example", **preflight})
    assert refused.status_code == 403
    assert "access-control-allow-origin" not in refused.headers
    assert error_of(refused)["code"] == 7

    # A real request from the allowed origin gets the header (and the exposed ones).
    simple = api.get("/api/v1/products", params={"pageSize": 1}, headers={"Origin": origin})
    assert simple.headers["access-control-allow-origin"] == origin
    assert "retry-after" in simple.headers["access-control-expose-headers"]


def test_products_are_served_from_the_edge_cache(api: EdgeClient, edge: Edge) -> None:
    from tools.mesh import envoy

    path = "/api/v1/products/sku-1002"
    def upstream_calls() -> int:
        return sum(v for k, v in envoy.stats(
            edge.admin_url, r"^cluster\.catalog\.upstream_rq_total$").items())

    first = api.get(path)
    assert first.status_code == 200
    assert first.headers["cache-control"] == "public, max-age=30"
    before = upstream_calls()
    second = api.get(path)
    assert second.status_code == 200 and second.json() == first.json()
    # A hit: answered by the edge with its age, without a call to catalog.
    assert "age" in second.headers
    assert upstream_calls() == before

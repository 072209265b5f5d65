"""Rate limits, CORS and the HTTP cache at the real edge."""

from __future__ import annotations

import time

import pytest

from tests.edge.client import EdgeClient, User, error_of
from tools.mesh.edge import api as edge_api
from tools.mesh.edge.mesh import Edge

pytestmark = pytest.mark.mesh

RESOURCE_EXHAUSTED = 8


def test_a_login_burst_gets_429_and_the_window_lets_it_through_again(api: EdgeClient) -> None:
    # Per client address: the test's requests all come from one.
    bucket = edge_api.LOGIN.per_client
    assert bucket is not None
    # Empty logins are cheap (the service refuses them, 400) but count all the same. The
    # bucket may be partly used by the other tests' logins: at most `burst` get through.
    statuses = [api.login("", "").status_code for _ in range(bucket.burst + 3)]
    assert set(statuses) == {400, 429}, statuses
    assert statuses.count(400) <= bucket.burst + 1  # + a token refilled meanwhile
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


def test_place_order_is_limited_per_user(api: EdgeClient) -> None:
    per_user = edge_api.PLACE_ORDER.per_client
    assert per_user is not None
    greedy, other = api.new_user(), api.new_user()

    def place(user: User) -> int:
        # An empty order is refused by the service (400) but takes a token all the same.
        return api.post(f"/api/v1/users/{user.user_id}/orders", headers=user.auth,
                        json={}).status_code

    statuses = [place(greedy) for _ in range(per_user.burst + 2)]
    assert statuses[:per_user.burst] == [400] * per_user.burst, statuses
    assert statuses[-1] == 429
    # Another user has a bucket of their own.
    assert place(other) == 400


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

"""The whole purchase as a REST client does it, through the real edge and mesh."""

from __future__ import annotations

import uuid

import pytest

from tests.edge.client import ADDRESS, VISA_OK, EdgeClient

pytestmark = pytest.mark.mesh


def test_register_login_browse_add_to_cart_order_and_see_it_everywhere(api: EdgeClient) -> None:
    user = api.new_user()

    # Browse: the first page, then one product and a search (public, no token).
    page = api.get("/api/v1/products", params={"pageSize": 3})
    assert page.status_code == 200, page.text
    products = page.json()["products"]
    assert len(products) == 3 and page.json()["nextPageToken"]
    product = products[0]
    one = api.get(f"/api/v1/products/{product['productId']}")
    assert one.status_code == 200 and one.json()["product"] == product
    found = api.get("/api/v1/products:search", params={"query": product["name"].split()[0]})
    assert found.status_code == 200
    assert product["productId"] in {p["productId"] for p in found.json()["products"]}

    # Cart: add two of it; the cart prices the line from catalog.
    cart = api.post(f"/api/v1/users/{user.user_id}/cart/items", headers=user.auth,
                    json={"productId": product["productId"], "quantity": 2})
    assert cart.status_code == 200, cart.text
    line = cart.json()["cart"]["items"][0]
    assert line["quantity"] == 2
    assert int(line["lineTotal"]["amountMinor"]) == 2 * int(product["price"]["amountMinor"])

    # Order: the saga reserves, charges and confirms.
    placed = api.post(
        f"/api/v1/users/{user.user_id}/orders", headers=user.auth,
        json={"idempotencyKey": uuid.uuid4().hex, "card": VISA_OK, "shippingAddress": ADDRESS},
    )
    assert placed.status_code == 200, placed.text
    order = placed.json()["order"]
    assert order["state"] == "STATE_CONFIRMED", order
    assert order["userId"] == user.user_id and order["paymentId"]

    # It shows up in the order list, by id, and on the dashboard with its payment.
    listed = api.get(f"/api/v1/users/{user.user_id}/orders", headers=user.auth)
    assert listed.status_code == 200
    assert [o["orderId"] for o in listed.json()["orders"]] == [order["orderId"]]
    by_id = api.get(f"/api/v1/users/{user.user_id}/orders/{order['orderId']}", headers=user.auth)
    assert by_id.status_code == 200 and by_id.json()["order"]["state"] == "STATE_CONFIRMED"
    # The dashboard answers with partial data when a part misses its deadline (the first
    # call warms storefront's connections on a busy box): a few calls, all of them 200.
    for _ in range(3):
        dashboard = api.get(f"/api/v1/users/{user.user_id}/dashboard", headers=user.auth)
        assert dashboard.status_code == 200, dashboard.text
        board = dashboard.json()
        if not board["degraded"]:
            break
    assert board["degraded"] == []
    assert board["user"]["userId"] == user.user_id
    assert order["orderId"] in {o["orderId"] for o in board["recentOrders"]}
    assert order["paymentId"] in {p["paymentId"] for p in board["recentPayments"]}
    # The cart was emptied by the order.
    after = api.get(f"/api/v1/users/{user.user_id}/cart", headers=user.auth)
    assert after.status_code == 200 and after.json()["cart"]["items"] == []
    # User data is never stored by a shared cache.
    assert after.headers["cache-control"] == "private, no-store"

"""A whole purchase through the real services, in-process: register, log in, fill the cart,
place the order; the order is CONFIRMED and every service agrees (stock, payment, cart)."""

from __future__ import annotations

from pathlib import Path

from meshmart.order.v1 import order_pb2
from meshmart.payment.v1 import payment_pb2

from harness.shop import running_shop


async def test_a_purchase_confirms_the_order_takes_stock_and_money_and_empties_the_cart(
    tmp_path: Path,
) -> None:
    async with running_shop(tmp_path) as shop:
        user = await shop.register("grace@example.com", "Grace Hopper")
        session = await shop.login("grace@example.com")
        assert session.user.user_id == user.user_id
        await shop.add_to_cart(user.user_id, "sku-1001", 2)
        cart = await shop.add_to_cart(user.user_id, "sku-1003", 1)
        stock_before = await shop.stock("sku-1001", "sku-1003")

        order = await shop.place_order(user.user_id, "checkout-1")

        assert order.state == order_pb2.Order.STATE_CONFIRMED
        assert order.cancel_reason == ""
        assert [(line.product_id, line.quantity) for line in order.lines] == [
            ("sku-1001", 2),
            ("sku-1003", 1),
        ]
        assert order.total == cart.total
        assert order.shipping_address.city == "London"

        stock_after = await shop.stock("sku-1001", "sku-1003")
        assert stock_after["sku-1001"] == (stock_before["sku-1001"][0] - 2, 0)
        assert stock_after["sku-1003"] == (stock_before["sku-1003"][0] - 1, 0)

        [payment] = await shop.payments(user.user_id)
        assert payment.status == payment_pb2.Payment.STATUS_CAPTURED
        assert payment.payment_id == order.payment_id
        assert payment.order_id == order.order_id
        assert payment.amount == order.total

        assert list((await shop.get_cart(user.user_id)).items) == []
        assert await shop.get_order(user.user_id, order.order_id) == order

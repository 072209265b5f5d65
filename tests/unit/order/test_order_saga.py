"""The PlaceOrder saga against the real user, catalog, inventory, cart and payment servers.

Every test checks the order's final state *and* what the other services say: stock
levels, the payments list, the cart. Each runs on SQLite and again with every service on
PostgreSQL (harness/postgres.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from meshmart.inventory.v1 import inventory_pb2
from meshmart.order.v1 import order_pb2
from meshmart.payment.v1 import payment_pb2

from harness.postgres import Databases
from harness.shop import (
    ADDRESS,
    DECLINE_CARD,
    INSUFFICIENT_FUNDS_CARD,
    SERVICES,
    Gate,
    Shop,
    card,
    running_shop,
)
from services.order.saga import INTERRUPTED_BEFORE_PAYMENT

CONFIRMED = order_pb2.Order.STATE_CONFIRMED
CANCELLED = order_pb2.Order.STATE_CANCELLED
CAPTURED = payment_pb2.Payment.STATUS_CAPTURED
DECLINED = payment_pb2.Payment.STATUS_DECLINED
REFUNDED = payment_pb2.Payment.STATUS_REFUNDED


async def customer_with_cart(shop: Shop) -> tuple[str, dict[str, tuple[int, int]]]:
    """A new user with 2 x sku-1001 and 1 x sku-1002 in the cart; returns the user id and
    the stock of both products before ordering."""
    user = await shop.register()
    await shop.add_to_cart(user.user_id, "sku-1001", 2)
    await shop.add_to_cart(user.user_id, "sku-1002", 1)
    return user.user_id, await shop.stock("sku-1001", "sku-1002")


async def test_declined_card_cancels_the_order_gives_stock_back_and_charges_nothing(
    shop: Shop,
) -> None:
    user_id, stock_before = await customer_with_cart(shop)

    order = await shop.place_order(user_id, "k-1", card_number=INSUFFICIENT_FUNDS_CARD)

    assert order.state == CANCELLED
    assert order.cancel_reason == "payment declined: insufficient_funds"
    assert await shop.stock("sku-1001", "sku-1002") == stock_before
    [payment] = await shop.payments(user_id)
    assert payment.status == DECLINED and payment.payment_id == order.payment_id
    assert len((await shop.get_cart(user_id)).items) == 2, "a failed order leaves the cart"


async def test_a_retry_after_a_decline_returns_the_cancelled_order(shop: Shop) -> None:
    user_id, _ = await customer_with_cart(shop)
    first = await shop.place_order(user_id, "k-1", card_number=DECLINE_CARD)

    again = await shop.place_order(user_id, "k-1")

    assert again == first and again.cancel_reason == "payment declined: card_declined"
    assert len(await shop.payments(user_id)) == 1


async def test_not_enough_stock_cancels_naming_the_product(shop: Shop) -> None:
    user = await shop.register()
    await shop.add_to_cart(user.user_id, "sku-1001", 1)
    await shop.add_to_cart(user.user_id, "sku-1016", 5)  # 4 in stock
    stock_before = await shop.stock("sku-1001", "sku-1016")

    order = await shop.place_order(user.user_id, "k-1")

    assert order.state == CANCELLED
    assert order.cancel_reason == "out of stock: sku-1016"
    assert order.payment_id == ""
    assert await shop.stock("sku-1001", "sku-1016") == stock_before
    assert await shop.payments(user.user_id) == []


async def test_payment_unavailable_compensates_and_a_retry_never_double_charges(
    shop: Shop,
) -> None:
    user_id, stock_before = await customer_with_cart(shop)
    await shop.set_payment_fault(unavailable_ratio=1.0)

    order = await shop.place_order(user_id, "k-1")

    assert order.state == CANCELLED
    assert order.cancel_reason == "payment service unavailable"
    assert await shop.stock("sku-1001", "sku-1002") == stock_before

    await shop.set_payment_fault(unavailable_ratio=0.0)
    again = await shop.place_order(user_id, "k-1")

    assert again.order_id == order.order_id and again.state == CANCELLED
    captures = [p for p in await shop.payments(user_id) if p.status == CAPTURED]
    assert captures == []
    assert await shop.stock("sku-1001", "sku-1002") == stock_before


async def test_flaky_payment_ends_every_order_confirmed_or_cancelled_and_consistent(
    shop: Shop,
) -> None:
    users = [await customer_with_cart(shop) for _ in range(6)]
    stock_before = await shop.stock("sku-1001", "sku-1002")
    await shop.set_payment_fault(unavailable_ratio=0.5)

    orders = await asyncio.gather(*(shop.place_order(user_id, "k-1") for user_id, _ in users))

    await shop.set_payment_fault(unavailable_ratio=0.0)
    assert {order.state for order in orders} <= {CONFIRMED, CANCELLED}
    confirmed = [order for order in orders if order.state == CONFIRMED]
    for order in orders:
        payments = await shop.payments(order.user_id)
        captured = [p for p in payments if p.status == CAPTURED]
        assert len(captured) == (1 if order.state == CONFIRMED else 0), order
    sold = len(confirmed)
    stock_after = await shop.stock("sku-1001", "sku-1002")
    assert stock_after["sku-1001"] == (stock_before["sku-1001"][0] - 2 * sold, 0)
    assert stock_after["sku-1002"] == (stock_before["sku-1002"][0] - sold, 0)


async def test_same_key_twice_returns_the_same_order_and_charges_once(shop: Shop) -> None:
    user_id, stock_before = await customer_with_cart(shop)

    first = await shop.place_order(user_id, "k-1")
    second = await shop.place_order(user_id, "k-1")

    assert first.state == CONFIRMED and second == first
    assert len(await shop.payments(user_id)) == 1
    stock_after = await shop.stock("sku-1001")
    assert stock_after["sku-1001"][0] == stock_before["sku-1001"][0] - 2


async def test_racing_requests_with_one_key_make_one_order_and_one_charge(shop: Shop) -> None:
    user_id, stock_before = await customer_with_cart(shop)

    orders = await asyncio.gather(*(shop.place_order(user_id, "k-1") for _ in range(5)))

    assert len({order.order_id for order in orders}) == 1
    assert all(order == orders[0] for order in orders)
    assert orders[0].state == CONFIRMED
    assert len(await shop.payments(user_id)) == 1
    stock_after = await shop.stock("sku-1001")
    assert stock_after["sku-1001"][0] == stock_before["sku-1001"][0] - 2


async def test_a_new_key_after_a_confirmed_order_finds_the_cart_empty(shop: Shop) -> None:
    user_id, _ = await customer_with_cart(shop)
    await shop.place_order(user_id, "k-1")

    with pytest.raises(grpc.aio.AioRpcError) as error:
        await shop.place_order(user_id, "k-2")

    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert len(await shop.payments(user_id)) == 1


async def test_a_caller_who_gives_up_does_not_abandon_the_order(
    tmp_path: Path, databases: Databases
) -> None:
    held_charge = Gate()
    async with running_shop(
        tmp_path, database_urls=databases.urls(*SERVICES), gates={"payment.Charge": held_charge}
    ) as shop:
        user_id, _ = await customer_with_cart(shop)
        impatient = shop.order.PlaceOrder(
            order_pb2.PlaceOrderRequest(
                user_id=user_id, idempotency_key="k-1", card=card(), shipping_address=ADDRESS
            ),
            timeout=0.5,
        )
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await impatient
        assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        await held_charge.entered.wait()  # the saga is at payment, past the caller's deadline
        held_charge.release()

        # The saga went on without the caller (its calls are not bound to the caller's
        # deadline); the retry waits for it and gets the outcome.
        order = await shop.place_order(user_id, "k-1")

        assert order.state == CONFIRMED
        assert [p.status for p in await shop.payments(user_id)] == [CAPTURED]


# -- the order process dies mid-saga ------------------------------------------------------


async def place_until_held(shop: Shop, user_id: str, gate: Gate) -> asyncio.Task[object]:
    """Start PlaceOrder and return once the saga is held at ``gate``."""
    placing: asyncio.Task[object] = asyncio.create_task(shop.place_order(user_id, "k-1"))
    await gate.entered.wait()
    return placing


async def test_order_killed_while_payment_hangs_is_cancelled_at_restart(
    tmp_path: Path, databases: Databases
) -> None:
    hung_charge = Gate()  # payment never answers, and never charges
    async with running_shop(
        tmp_path, database_urls=databases.urls(*SERVICES), gates={"payment.Charge": hung_charge}
    ) as shop:
        user_id, stock_before = await customer_with_cart(shop)
        placing = await place_until_held(shop, user_id, hung_charge)
        assert (await shop.stock("sku-1001"))["sku-1001"][1] == 2, "stock is reserved"

        await shop.stop_order()
        with pytest.raises(grpc.aio.AioRpcError):
            await placing
        await shop.start_order()

        [order] = await shop_orders(shop, user_id)
        assert order.state == CANCELLED
        assert order.cancel_reason == INTERRUPTED_BEFORE_PAYMENT
        assert await shop.stock("sku-1001", "sku-1002") == stock_before
        assert await shop.payments(user_id) == []
        # A retry of the interrupted request gets the settled order, and charges nothing.
        assert await shop.place_order(user_id, "k-1") == order
        assert await shop.payments(user_id) == []


async def test_order_killed_after_the_charge_went_through_is_confirmed_at_restart(
    tmp_path: Path, databases: Databases
) -> None:
    lost_answer = Gate(after=True)  # payment captures; order dies before hearing so
    async with running_shop(
        tmp_path, database_urls=databases.urls(*SERVICES), gates={"payment.Charge": lost_answer}
    ) as shop:
        user_id, stock_before = await customer_with_cart(shop)
        placing = await place_until_held(shop, user_id, lost_answer)

        await shop.stop_order()
        with pytest.raises(grpc.aio.AioRpcError):
            await placing
        await shop.start_order()

        [order] = await shop_orders(shop, user_id)
        assert order.state == CONFIRMED
        [payment] = await shop.payments(user_id)
        assert payment.status == CAPTURED and payment.payment_id == order.payment_id
        stock_after = await shop.stock("sku-1001", "sku-1002")
        assert stock_after["sku-1001"] == (stock_before["sku-1001"][0] - 2, 0)
        assert stock_after["sku-1002"] == (stock_before["sku-1002"][0] - 1, 0)


async def test_order_killed_while_commit_hangs_is_confirmed_at_restart(
    tmp_path: Path, databases: Databases
) -> None:
    hung_commit = Gate()
    async with running_shop(
        tmp_path, database_urls=databases.urls(*SERVICES), gates={"inventory.Commit": hung_commit}
    ) as shop:
        user_id, stock_before = await customer_with_cart(shop)
        placing = await place_until_held(shop, user_id, hung_commit)

        await shop.stop_order()
        with pytest.raises(grpc.aio.AioRpcError):
            await placing
        hung_commit.release()  # inventory is fine again when order comes back
        await shop.start_order()

        [order] = await shop_orders(shop, user_id)
        assert order.state == CONFIRMED
        assert [p.status for p in await shop.payments(user_id)] == [CAPTURED]
        stock_after = await shop.stock("sku-1001")
        assert stock_after["sku-1001"] == (stock_before["sku-1001"][0] - 2, 0)


async def test_a_refund_that_failed_is_made_by_the_next_start(
    tmp_path: Path, databases: Databases
) -> None:
    # The stock is released behind the saga's back while it commits, and payment is down
    # when the saga refunds: the order is CANCELLED at once, the money goes back when order
    # next starts.
    held_commit = Gate()
    async with running_shop(
        tmp_path, database_urls=databases.urls(*SERVICES), gates={"inventory.Commit": held_commit}
    ) as shop:
        user_id, stock_before = await customer_with_cart(shop)
        placing = await place_until_held(shop, user_id, held_commit)
        [pending] = await shop_orders(shop, user_id)
        assert pending.state == order_pb2.Order.STATE_PENDING
        await shop.inventory.Release(
            inventory_pb2.ReleaseRequest(order_id=pending.order_id), timeout=10
        )
        await shop.set_payment_fault(unavailable_ratio=1.0)
        held_commit.release()

        order = await placing
        assert isinstance(order, order_pb2.Order)
        assert order.state == CANCELLED
        assert order.cancel_reason == "stock no longer reserved"
        assert [p.status for p in await shop.payments(user_id)] == [CAPTURED]

        await shop.set_payment_fault(unavailable_ratio=0.0)
        await shop.stop_order()
        await shop.start_order()

        assert [p.status for p in await shop.payments(user_id)] == [REFUNDED]
        assert await shop.stock("sku-1001", "sku-1002") == stock_before
        assert await shop.get_order(user_id, order.order_id) == order


async def shop_orders(shop: Shop, user_id: str) -> list[order_pb2.Order]:
    response: order_pb2.ListOrdersResponse = await shop.order.ListOrders(
        order_pb2.ListOrdersRequest(user_id=user_id), timeout=10
    )
    return list(response.orders)

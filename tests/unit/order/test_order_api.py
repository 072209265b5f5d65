"""OrderService's reads and request checks, over real gRPC with the real upstreams."""

from __future__ import annotations

import grpc
import pytest
from meshmart.order.v1 import order_pb2
from meshmart.payment.v1 import payment_pb2

from harness.shop import ADDRESS, TIMEOUT, Shop, card
from services.kit.context import USER_ID_KEY
from tests.unit.bad_request import violated_fields

CONFIRMED = order_pb2.Order.STATE_CONFIRMED


async def rpc_error(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call  # type: ignore[misc]
    return error.value


async def buy(shop: Shop, user_id: str, key: str, product_id: str = "sku-1001") -> order_pb2.Order:
    await shop.add_to_cart(user_id, product_id, 1)
    return await shop.place_order(user_id, key)


async def list_orders(
    shop: Shop, user_id: str, page_size: int = 0, page_token: str = ""
) -> order_pb2.ListOrdersResponse:
    response: order_pb2.ListOrdersResponse = await shop.order.ListOrders(
        order_pb2.ListOrdersRequest(user_id=user_id, page_size=page_size, page_token=page_token),
        timeout=TIMEOUT,
    )
    return response


async def test_get_order_returns_the_users_order(shop: Shop) -> None:
    user = await shop.register()
    placed = await buy(shop, user.user_id, "k-1")

    assert await shop.get_order(user.user_id, placed.order_id) == placed
    assert placed.state == CONFIRMED and placed.created_at.seconds > 0


async def test_unknown_order_is_not_found(shop: Shop) -> None:
    user = await shop.register()

    error = await rpc_error(shop.get_order(user.user_id, "ord-missing"))

    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_another_users_order_is_not_found(shop: Shop) -> None:
    owner, other = await shop.register(), await shop.register()
    placed = await buy(shop, owner.user_id, "k-1")

    error = await rpc_error(shop.get_order(other.user_id, placed.order_id))

    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_a_caller_acting_for_another_user_is_denied(shop: Shop) -> None:
    owner, intruder = await shop.register(), await shop.register()
    placed = await buy(shop, owner.user_id, "k-1")
    as_intruder = ((USER_ID_KEY, intruder.user_id),)

    get = shop.order.GetOrder(
        order_pb2.GetOrderRequest(user_id=owner.user_id, order_id=placed.order_id),
        metadata=as_intruder,
        timeout=TIMEOUT,
    )
    place = shop.order.PlaceOrder(
        order_pb2.PlaceOrderRequest(
            user_id=owner.user_id, idempotency_key="k-2", card=card(), shipping_address=ADDRESS
        ),
        metadata=as_intruder,
        timeout=TIMEOUT,
    )
    listing = shop.order.ListOrders(
        order_pb2.ListOrdersRequest(user_id=owner.user_id), metadata=as_intruder, timeout=TIMEOUT
    )

    for call in (get, place, listing):
        assert (await rpc_error(call)).code() == grpc.StatusCode.PERMISSION_DENIED


async def test_list_orders_pages_newest_first(shop: Shop) -> None:
    user, other = await shop.register(), await shop.register()
    placed = [await buy(shop, user.user_id, f"k-{n}") for n in range(3)]
    await buy(shop, other.user_id, "k-0")

    first = await list_orders(shop, user.user_id, page_size=2)
    second = await list_orders(shop, user.user_id, page_size=2, page_token=first.next_page_token)

    assert [o.order_id for o in first.orders] == [placed[2].order_id, placed[1].order_id]
    assert [o.order_id for o in second.orders] == [placed[0].order_id]
    assert first.next_page_token and not second.next_page_token


async def test_list_recent_orders_spans_users_newest_first(shop: Shop) -> None:
    alice, bob = await shop.register(), await shop.register()
    first = await buy(shop, alice.user_id, "k-1")
    second = await buy(shop, bob.user_id, "k-1", "sku-1002")

    response: order_pb2.ListRecentOrdersResponse = await shop.order.ListRecentOrders(
        order_pb2.ListRecentOrdersRequest(page_size=10), timeout=TIMEOUT
    )

    assert [o.order_id for o in response.orders] == [second.order_id, first.order_id]
    assert response.next_page_token == ""


async def test_bad_paging_is_an_invalid_argument(shop: Shop) -> None:
    user = await shop.register()

    too_big = await rpc_error(list_orders(shop, user.user_id, page_size=101))
    forged = await rpc_error(list_orders(shop, user.user_id, page_token="not-a-token"))

    assert violated_fields(too_big) == ["page_size"]
    assert violated_fields(forged) == ["page_token"]


async def test_a_page_token_of_another_listing_is_refused(shop: Shop) -> None:
    user, other = await shop.register(), await shop.register()
    for n in range(2):
        await buy(shop, user.user_id, f"k-{n}")
    token = (await list_orders(shop, user.user_id, page_size=1)).next_page_token

    error = await rpc_error(list_orders(shop, other.user_id, page_token=token))

    assert violated_fields(error) == ["page_token"]


async def test_place_order_checks_the_request(shop: Shop) -> None:
    user = await shop.register()
    await shop.add_to_cart(user.user_id, "sku-1001", 1)
    expired = payment_pb2.Card(number="4242424242424242", exp_month=1, exp_year=2020, cvc="1")
    bad_address = order_pb2.Address(name="Ada", line1="", city="London", country="England")

    error = await rpc_error(
        shop.order.PlaceOrder(
            order_pb2.PlaceOrderRequest(
                user_id=user.user_id,
                idempotency_key="k-1",
                card=expired,
                shipping_address=bad_address,
            ),
            timeout=TIMEOUT,
        )
    )

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(error) == [
        "card.exp_year",
        "card.cvc",
        "shipping_address.line1",
        "shipping_address.postal_code",
        "shipping_address.country",
    ]
    assert (await list_orders(shop, user.user_id)).orders == []


async def test_place_order_needs_a_key_a_card_and_an_address(shop: Shop) -> None:
    user = await shop.register()
    requests = {
        "idempotency_key": order_pb2.PlaceOrderRequest(
            user_id=user.user_id, card=card(), shipping_address=ADDRESS
        ),
        "card": order_pb2.PlaceOrderRequest(
            user_id=user.user_id, idempotency_key="k", shipping_address=ADDRESS
        ),
        "shipping_address": order_pb2.PlaceOrderRequest(
            user_id=user.user_id, idempotency_key="k", card=card()
        ),
    }
    for field, request in requests.items():
        error = await rpc_error(shop.order.PlaceOrder(request, timeout=TIMEOUT))
        assert violated_fields(error) == [field]


async def test_an_empty_cart_is_a_failed_precondition_and_no_order(shop: Shop) -> None:
    user = await shop.register()

    error = await rpc_error(shop.place_order(user.user_id, "k-1"))

    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (await list_orders(shop, user.user_id)).orders == []


async def test_an_unknown_user_is_not_found(shop: Shop) -> None:
    error = await rpc_error(shop.place_order("usr-nobody", "k-1"))

    assert error.code() == grpc.StatusCode.NOT_FOUND

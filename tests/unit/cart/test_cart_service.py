"""CartService over real gRPC, priced by the real catalog service, on real SQLite."""

from __future__ import annotations

import grpc
import pytest
from meshmart.cart.v1 import cart_pb2

from services.catalog.seed import CURRENCY, SEED_PRODUCTS
from tests.unit.bad_request import violated_fields
from tests.unit.cart.harness import USER, CartHarness

BEANS = SEED_PRODUCTS[0]
OTHER = SEED_PRODUCTS[1]
TIMEOUT = 5.0


def add(product_id: str, quantity: int, user_id: str = USER) -> cart_pb2.AddItemRequest:
    return cart_pb2.AddItemRequest(user_id=user_id, product_id=product_id, quantity=quantity)


def update(product_id: str, quantity: int) -> cart_pb2.UpdateQuantityRequest:
    return cart_pb2.UpdateQuantityRequest(user_id=USER, product_id=product_id, quantity=quantity)


def lines(cart: cart_pb2.Cart) -> list[tuple[str, int, int]]:
    return [(i.product_id, i.quantity, i.line_total.amount_minor) for i in cart.items]


async def test_a_new_user_has_an_empty_cart_with_a_zero_total(cart: CartHarness) -> None:
    response = await cart.stub.GetCart(cart_pb2.GetCartRequest(user_id=USER), timeout=TIMEOUT)

    assert response.cart.user_id == USER
    assert list(response.cart.items) == []
    assert (response.cart.total.amount_minor, response.cart.total.currency) == (0, CURRENCY)


async def test_add_item_takes_name_and_price_from_the_catalog(cart: CartHarness) -> None:
    response = await cart.stub.AddItem(add(BEANS.product_id, 2), timeout=TIMEOUT)

    [item] = response.cart.items
    assert item.product_id == BEANS.product_id
    assert item.name == BEANS.name
    assert item.quantity == 2
    assert (item.unit_price.amount_minor, item.unit_price.currency) == (
        BEANS.price_minor,
        CURRENCY,
    )
    assert item.line_total.amount_minor == 2 * BEANS.price_minor
    assert response.cart.total.amount_minor == 2 * BEANS.price_minor
    stored = await cart.stub.GetCart(cart_pb2.GetCartRequest(user_id=USER), timeout=TIMEOUT)
    assert stored.cart == response.cart


async def test_adding_a_product_again_adds_to_its_quantity(cart: CartHarness) -> None:
    await cart.stub.AddItem(add(BEANS.product_id, 2), timeout=TIMEOUT)
    await cart.stub.AddItem(add(OTHER.product_id, 1), timeout=TIMEOUT)
    response = await cart.stub.AddItem(add(BEANS.product_id, 3), timeout=TIMEOUT)

    # Lines keep the order in which they were first added.
    assert lines(response.cart) == [
        (BEANS.product_id, 5, 5 * BEANS.price_minor),
        (OTHER.product_id, 1, OTHER.price_minor),
    ]
    assert response.cart.total.amount_minor == 5 * BEANS.price_minor + OTHER.price_minor


async def test_update_quantity_sets_the_quantity_and_reprices(cart: CartHarness) -> None:
    await cart.stub.AddItem(add(BEANS.product_id, 2), timeout=TIMEOUT)
    await cart.stub.AddItem(add(OTHER.product_id, 1), timeout=TIMEOUT)

    response = await cart.stub.UpdateQuantity(update(BEANS.product_id, 7), timeout=TIMEOUT)

    assert lines(response.cart) == [
        (BEANS.product_id, 7, 7 * BEANS.price_minor),
        (OTHER.product_id, 1, OTHER.price_minor),
    ]
    assert response.cart.total.amount_minor == 7 * BEANS.price_minor + OTHER.price_minor


async def test_updating_a_product_not_in_the_cart_is_not_found(cart: CartHarness) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await cart.stub.UpdateQuantity(update(BEANS.product_id, 1), timeout=TIMEOUT)

    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert BEANS.product_id in (caught.value.details() or "")


async def test_remove_item_removes_the_line_and_is_idempotent(cart: CartHarness) -> None:
    await cart.stub.AddItem(add(BEANS.product_id, 2), timeout=TIMEOUT)
    await cart.stub.AddItem(add(OTHER.product_id, 1), timeout=TIMEOUT)
    remove = cart_pb2.RemoveItemRequest(user_id=USER, product_id=BEANS.product_id)

    first = await cart.stub.RemoveItem(remove, timeout=TIMEOUT)
    again = await cart.stub.RemoveItem(remove, timeout=TIMEOUT)

    assert lines(first.cart) == [(OTHER.product_id, 1, OTHER.price_minor)]
    assert first.cart.total.amount_minor == OTHER.price_minor
    assert again.cart == first.cart


async def test_clear_empties_only_that_users_cart(cart: CartHarness) -> None:
    await cart.stub.AddItem(add(BEANS.product_id, 2), timeout=TIMEOUT)
    await cart.stub.AddItem(add(OTHER.product_id, 4, user_id="user-2"), timeout=TIMEOUT)

    cleared = await cart.stub.Clear(cart_pb2.ClearRequest(user_id=USER), timeout=TIMEOUT)
    again = await cart.stub.Clear(cart_pb2.ClearRequest(user_id=USER), timeout=TIMEOUT)
    other = await cart.stub.GetCart(cart_pb2.GetCartRequest(user_id="user-2"), timeout=TIMEOUT)

    assert list(cleared.cart.items) == []
    assert (cleared.cart.total.amount_minor, cleared.cart.total.currency) == (0, CURRENCY)
    assert again.cart == cleared.cart
    assert lines(other.cart) == [(OTHER.product_id, 4, 4 * OTHER.price_minor)]


async def test_an_unknown_product_is_not_found_and_changes_nothing(cart: CartHarness) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await cart.stub.AddItem(add("sku-does-not-exist", 1), timeout=TIMEOUT)

    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    details = caught.value.details() or ""
    assert details.startswith("product_id:")
    assert "sku-does-not-exist" in details
    assert cart.row_count() == 0


@pytest.mark.parametrize("quantity", [0, -1, 100])
async def test_add_item_quantity_out_of_bounds_is_invalid_argument(
    cart: CartHarness, quantity: int
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await cart.stub.AddItem(add(BEANS.product_id, quantity), timeout=TIMEOUT)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(caught.value) == ["quantity"]
    assert cart.row_count() == 0


@pytest.mark.parametrize("quantity", [0, 100])
async def test_update_quantity_out_of_bounds_is_invalid_argument(
    cart: CartHarness, quantity: int
) -> None:
    await cart.stub.AddItem(add(BEANS.product_id, 2), timeout=TIMEOUT)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await cart.stub.UpdateQuantity(update(BEANS.product_id, quantity), timeout=TIMEOUT)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(caught.value) == ["quantity"]


async def test_adding_past_99_of_one_product_is_invalid_argument(cart: CartHarness) -> None:
    await cart.stub.AddItem(add(BEANS.product_id, 60), timeout=TIMEOUT)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await cart.stub.AddItem(add(BEANS.product_id, 40), timeout=TIMEOUT)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(caught.value) == ["quantity"]
    assert "100" in (caught.value.details() or "")
    response = await cart.stub.AddItem(add(BEANS.product_id, 39), timeout=TIMEOUT)
    assert lines(response.cart) == [(BEANS.product_id, 99, 99 * BEANS.price_minor)]


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (cart_pb2.AddItemRequest(user_id="", product_id="sku-1001", quantity=1), "user_id"),
        (cart_pb2.AddItemRequest(user_id=USER, product_id="", quantity=1), "product_id"),
        (cart_pb2.AddItemRequest(user_id=USER, product_id="sku 1001", quantity=1), "product_id"),
    ],
)
async def test_missing_ids_are_invalid_argument(
    cart: CartHarness, request_: cart_pb2.AddItemRequest, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await cart.stub.AddItem(request_, timeout=TIMEOUT)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(caught.value) == [field]


async def test_a_user_cannot_touch_another_users_cart(cart: CartHarness) -> None:
    someone_else = [("x-meshmart-user-id", "user-2")]

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await cart.stub.AddItem(add(BEANS.product_id, 1), metadata=someone_else, timeout=TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await cart.stub.GetCart(
            cart_pb2.GetCartRequest(user_id=USER), metadata=someone_else, timeout=TIMEOUT
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED

    owner = [("x-meshmart-user-id", USER)]
    response = await cart.stub.AddItem(add(BEANS.product_id, 1), metadata=owner, timeout=TIMEOUT)
    assert len(response.cart.items) == 1

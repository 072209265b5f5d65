"""GetDashboard over real gRPC against real upstream servers (see harness.py)."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest
from meshmart.payment.v1 import payment_pb2
from meshmart.recommendation.v1 import recommendation_pb2
from meshmart.storefront.v1 import storefront_pb2

from services.catalog.seed import SEED_PRODUCTS
from services.user.keys import SigningKey
from tests.unit.recommendation.fake_order import confirmed_order
from tests.unit.storefront.harness import CALL_TIMEOUT, TIMEOUTS, Shop, running_shop

PERSONALIZED = recommendation_pb2.RECOMMENDATION_SOURCE_PERSONALIZED
POPULAR = recommendation_pb2.RECOMMENDATION_SOURCE_POPULAR
MOST_POPULAR = [
    p.product_id for p in sorted(SEED_PRODUCTS, key=lambda p: (-p.popularity, p.product_id))
][:5]


async def dashboard(
    shop: Shop, user_id: str, metadata: tuple[tuple[str, str], ...] = ()
) -> storefront_pb2.GetDashboardResponse:
    response: storefront_pb2.GetDashboardResponse = await shop.storefront.GetDashboard(
        storefront_pb2.GetDashboardRequest(user_id=user_id),
        timeout=CALL_TIMEOUT,
        metadata=metadata,
    )
    return response


async def shop_with_history(shop: Shop) -> str:
    """A registered user with two orders, a payment, and a neighbour with overlapping taste."""
    user_id = await shop.register()
    shop.orders.orders = [
        confirmed_order("ord-2", user_id, "sku-1001"),
        confirmed_order("ord-1", user_id, "sku-1002"),
        confirmed_order("ord-0", "someone-else", "sku-1001", "sku-1010"),
    ]
    await shop.pay(user_id, "ord-2")
    return user_id


async def test_all_dependencies_up_gives_a_complete_dashboard(
    tmp_path: Path, signing_key: SigningKey
) -> None:
    async with running_shop(tmp_path, signing_key) as shop:
        user_id = await shop_with_history(shop)
        response = await dashboard(shop, user_id)

    assert response.degraded == []
    assert response.user.user_id == user_id
    assert [o.order_id for o in response.recent_orders] == ["ord-2", "ord-1"]
    assert [p.order_id for p in response.recent_payments] == ["ord-2"]
    assert response.recent_payments[0].status == payment_pb2.Payment.STATUS_CAPTURED
    assert response.recommendation_source == PERSONALIZED
    assert response.recommendations[0].product_id == "sku-1010"
    assert len(response.recommendations) == 5


async def test_recommendation_stopped_falls_back_to_popular_products(
    tmp_path: Path, signing_key: SigningKey
) -> None:
    async with running_shop(tmp_path, signing_key) as shop:
        user_id = await shop_with_history(shop)
        await shop.recommendation.aclose()
        response = await dashboard(shop, user_id)

    assert list(response.degraded) == ["recommendation"]
    assert response.recommendation_source == POPULAR
    assert [p.product_id for p in response.recommendations] == MOST_POPULAR
    # The rest of the dashboard is unaffected.
    assert response.user.user_id == user_id
    assert len(response.recent_orders) == 2
    assert len(response.recent_payments) == 1


async def test_a_hanging_dependency_is_cut_off_at_its_deadline(
    tmp_path: Path, signing_key: SigningKey
) -> None:
    async with running_shop(tmp_path, signing_key) as shop:
        user_id = await shop_with_history(shop)
        await shop.payment_admin.SetFault(
            payment_pb2.SetFaultRequest(delay_ms=30_000), timeout=CALL_TIMEOUT
        )
        started = time.monotonic()
        response = await dashboard(shop, user_id)
        elapsed = time.monotonic() - started

    assert list(response.degraded) == ["payment"]
    assert list(response.recent_payments) == []
    assert response.user.user_id == user_id
    assert len(response.recent_orders) == 2
    assert response.recommendation_source == PERSONALIZED
    # Cut off at payment's deadline (the slowest other part is bounded the same way),
    # not after the 30 s the payment would have taken.
    assert elapsed < max(TIMEOUTS.payment, TIMEOUTS.recommendation) + 1.0


async def test_a_hanging_order_degrades_only_the_orders(
    tmp_path: Path, signing_key: SigningKey
) -> None:
    async with running_shop(tmp_path, signing_key) as shop:
        user_id = await shop_with_history(shop)
        shop.orders.hang = True
        response = await dashboard(shop, user_id)

    assert list(response.degraded) == ["order"]
    assert list(response.recent_orders) == []
    # recommendation lost its history too, and answered with popular products itself.
    assert response.recommendation_source == POPULAR
    assert len(response.recent_payments) == 1


async def test_the_callers_user_id_is_forwarded_upstream(
    tmp_path: Path, signing_key: SigningKey
) -> None:
    async with running_shop(tmp_path, signing_key) as shop:
        user_id = await shop_with_history(shop)
        response = await dashboard(shop, user_id, metadata=(("x-meshmart-user-id", user_id),))

    assert response.degraded == []
    assert shop.orders.list_orders_callers == [user_id]


async def test_another_users_dashboard_is_permission_denied(
    tmp_path: Path, signing_key: SigningKey
) -> None:
    async with running_shop(tmp_path, signing_key) as shop:
        user_id = await shop.register()
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await dashboard(shop, user_id, metadata=(("x-meshmart-user-id", "intruder"),))

    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_an_unknown_user_is_not_found(tmp_path: Path, signing_key: SigningKey) -> None:
    async with running_shop(tmp_path, signing_key) as shop:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await dashboard(shop, "usr-nobody")

    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_an_empty_user_id_is_invalid(tmp_path: Path, signing_key: SigningKey) -> None:
    async with running_shop(tmp_path, signing_key) as shop:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await dashboard(shop, " ")

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT

"""GetDashboard over real gRPC against the real in-process shop (see harness.py)."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from meshmart.order.v1 import order_pb2
from meshmart.payment.v1 import payment_pb2, payment_pb2_grpc
from meshmart.recommendation.v1 import recommendation_pb2

from harness.shop import Shop, running_shop
from services.catalog.seed import SEED_PRODUCTS
from services.kit.context import caller_user_id
from services.kit.server import ServiceSpec
from services.kit.testing import running_server
from tests.unit.recommendation.net import black_hole
from tests.unit.storefront.harness import TIMEOUTS, running_storefront

PERSONALIZED = recommendation_pb2.RECOMMENDATION_SOURCE_PERSONALIZED
POPULAR = recommendation_pb2.RECOMMENDATION_SOURCE_POPULAR
MOST_POPULAR = [
    p.product_id for p in sorted(SEED_PRODUCTS, key=lambda p: (-p.popularity, p.product_id))
][:5]
_keys = itertools.count(1)


async def order(shop: Shop, user_id: str, *product_ids: str) -> order_pb2.Order:
    for product_id in product_ids:
        await shop.add_to_cart(user_id, product_id)
    placed = await shop.place_order(user_id, f"key-{next(_keys)}")
    assert placed.state == order_pb2.Order.STATE_CONFIRMED, placed.cancel_reason
    return placed


async def customer_with_history(shop: Shop) -> tuple[str, list[order_pb2.Order]]:
    """A user with two orders, and a neighbour who bought sku-1010 next to sku-1001."""
    neighbour = await shop.register()
    await order(shop, neighbour.user_id, "sku-1001", "sku-1010")
    user = await shop.register()
    first = await order(shop, user.user_id, "sku-1001")
    second = await order(shop, user.user_id, "sku-1002")
    return user.user_id, [second, first]  # newest first


async def test_all_dependencies_up_gives_a_complete_dashboard(tmp_path: Path) -> None:
    async with running_shop(tmp_path) as shop, running_storefront(shop) as storefront:
        user_id, orders = await customer_with_history(shop)
        response = await storefront.dashboard(user_id)

    assert list(response.degraded) == []
    assert response.user.user_id == user_id
    assert [o.order_id for o in response.recent_orders] == [o.order_id for o in orders]
    assert [p.payment_id for p in response.recent_payments] == [o.payment_id for o in orders]
    assert response.recent_payments[0].status == payment_pb2.Payment.STATUS_CAPTURED
    assert response.recommendation_source == PERSONALIZED
    assert response.recommendations[0].product_id == "sku-1010"
    assert len(response.recommendations) == 5


async def test_recommendation_stopped_falls_back_to_popular_products(tmp_path: Path) -> None:
    async with running_shop(tmp_path) as shop, running_storefront(shop) as storefront:
        user_id, _ = await customer_with_history(shop)
        await storefront.recommendation.aclose()
        response = await storefront.dashboard(user_id)

    assert list(response.degraded) == ["recommendation"]
    assert response.recommendation_source == POPULAR
    assert [p.product_id for p in response.recommendations] == MOST_POPULAR
    # The rest of the dashboard is unaffected.
    assert response.user.user_id == user_id
    assert len(response.recent_orders) == 2
    assert len(response.recent_payments) == 2


@pytest.mark.parametrize("dependency", ["user", "order", "payment", "recommendation"])
async def test_a_hanging_dependency_is_cut_off_at_its_deadline(
    tmp_path: Path, dependency: str
) -> None:
    async with (
        running_shop(tmp_path) as shop,
        black_hole() as hung,
        running_storefront(shop, overrides={dependency: hung}) as storefront,
    ):
        user_id, _ = await customer_with_history(shop)
        started = time.monotonic()
        response = await storefront.dashboard(user_id)
        elapsed = time.monotonic() - started

    assert list(response.degraded) == [dependency]
    # Its deadline, plus the catalog fallback when recommendation is the one hanging;
    # never the CALL_TIMEOUT the client would otherwise have waited.
    bound = getattr(TIMEOUTS, f"{dependency}_seconds") + TIMEOUTS.catalog_seconds + 1.0
    assert elapsed < bound
    assert response.HasField("user") == (dependency != "user")
    assert (len(response.recent_orders) == 2) == (dependency != "order")
    assert (len(response.recent_payments) == 2) == (dependency != "payment")
    # Recommendations are never empty: the catalog fallback covers a hung recommendation.
    assert len(response.recommendations) == 5


async def test_a_hanging_user_leaves_the_recommendations_whole(tmp_path: Path) -> None:
    # user hangs for storefront and for recommendation alike: recommendation cannot look
    # the user up, and answers anyway (degrade, don't fail).
    async with (
        running_shop(tmp_path) as shop,
        black_hole() as hung,
        running_storefront(
            shop, overrides={"user": hung}, recommendation_overrides={"user": hung}
        ) as storefront,
    ):
        user_id, _ = await customer_with_history(shop)
        started = time.monotonic()
        response = await storefront.dashboard(user_id)
        elapsed = time.monotonic() - started

    assert list(response.degraded) == ["user"]
    assert not response.HasField("user")
    # recommendation's own answer, not storefront's catalog fallback.
    assert response.recommendation_source == PERSONALIZED
    assert response.recommendations[0].product_id == "sku-1010"
    assert elapsed < TIMEOUTS.user_seconds + 1.0


async def test_a_slow_payment_is_cut_off_at_its_deadline(tmp_path: Path) -> None:
    async with running_shop(tmp_path) as shop, running_storefront(shop) as storefront:
        user_id, _ = await customer_with_history(shop)
        await shop.set_payment_fault(delay_ms=30_000)
        response = await storefront.dashboard(user_id)

    assert list(response.degraded) == ["payment"]
    assert list(response.recent_payments) == []
    assert len(response.recent_orders) == 2


class CallerRecordingPayments(payment_pb2_grpc.PaymentServiceServicer):
    """Stands in for payment to see the metadata storefront sends upstream."""

    def __init__(self) -> None:
        self.callers: list[str | None] = []

    async def ListPayments(
        self, request: payment_pb2.ListPaymentsRequest, context: Any
    ) -> payment_pb2.ListPaymentsResponse:
        self.callers.append(caller_user_id(context))
        return payment_pb2.ListPaymentsResponse()


async def test_the_callers_user_id_is_forwarded_upstream(tmp_path: Path) -> None:
    spy = CallerRecordingPayments()  # type: ignore[abstract]
    spec = ServiceSpec(
        name="meshmart.payment.v1.PaymentService",
        add=lambda server: payment_pb2_grpc.add_PaymentServiceServicer_to_server(spy, server),
    )
    async with (
        running_shop(tmp_path) as shop,
        running_server([spec]) as spy_target,
        running_storefront(shop, overrides={"payment": spy_target}) as storefront,
    ):
        user = await shop.register()
        response = await storefront.dashboard(
            user.user_id, metadata=(("x-meshmart-user-id", user.user_id),)
        )

    assert list(response.degraded) == []
    assert spy.callers == [user.user_id]


async def test_another_users_dashboard_is_permission_denied(tmp_path: Path) -> None:
    async with running_shop(tmp_path) as shop, running_storefront(shop) as storefront:
        user = await shop.register()
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await storefront.dashboard(
                user.user_id, metadata=(("x-meshmart-user-id", "usr-intruder"),)
            )

    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_an_unknown_user_is_not_found(tmp_path: Path) -> None:
    async with running_shop(tmp_path) as shop, running_storefront(shop) as storefront:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await storefront.dashboard("usr-nobody")

    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_an_empty_user_id_is_invalid(tmp_path: Path) -> None:
    async with running_shop(tmp_path) as shop, running_storefront(shop) as storefront:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await storefront.dashboard(" ")

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT

"""GetDashboard's aggregation: four calls in parallel, each with its own deadline.

A dependency that fails or runs out of time leaves its part empty and is named in
`degraded`; the dashboard as a whole only fails for reasons about the request itself
(an unknown user). Retries are the sidecar's job, so each dependency gets one call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Generic, TypeVar

import grpc
from meshmart.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from meshmart.order.v1 import order_pb2, order_pb2_grpc
from meshmart.payment.v1 import payment_pb2, payment_pb2_grpc
from meshmart.recommendation.v1 import recommendation_pb2, recommendation_pb2_grpc
from meshmart.storefront.v1 import storefront_pb2
from meshmart.user.v1 import user_pb2, user_pb2_grpc

from services.kit.errors import NotFound
from services.kit.logging import get_logger

log = get_logger(__name__)

T = TypeVar("T")

RECENT_ORDERS = 5
RECENT_PAYMENTS = 5
RECOMMENDATIONS = 5
CATALOG_PAGE_SIZE = 100
CATALOG_MAX_PAGES = 10


@dataclass(frozen=True)
class Timeouts:
    """Seconds each dependency gets; the slowest one bounds the dashboard."""

    user_seconds: float
    order_seconds: float
    payment_seconds: float
    recommendation_seconds: float
    # The popular-products fallback, only called after recommendation failed.
    catalog_seconds: float


@dataclass(frozen=True)
class Upstreams:
    user: user_pb2_grpc.UserServiceAsyncStub
    order: order_pb2_grpc.OrderServiceAsyncStub
    payment: payment_pb2_grpc.PaymentServiceAsyncStub
    recommendation: recommendation_pb2_grpc.RecommendationServiceAsyncStub
    catalog: catalog_pb2_grpc.CatalogServiceAsyncStub


@dataclass(frozen=True)
class Answer(Generic[T]):
    """What one dependency said: a value, or the status code it failed with."""

    value: T | None
    error: grpc.StatusCode | None = None


async def ask(dependency: str, call: Awaitable[T]) -> Answer[T]:
    try:
        return Answer(await call)
    except grpc.aio.AioRpcError as exc:
        log.warning(
            "dependency failed", dependency=dependency, code=exc.code().name, detail=exc.details()
        )
        return Answer(None, exc.code())


class DashboardBuilder:
    def __init__(self, upstreams: Upstreams, timeouts: Timeouts) -> None:
        self._up = upstreams
        self._timeouts = timeouts

    async def build(self, user_id: str) -> storefront_pb2.GetDashboardResponse:
        up, t = self._up, self._timeouts
        # gather runs each call in its own task (copying the RPC's context, so the kit's
        # client interceptor forwards the caller's user id and request id on every call).
        user, orders, payments, recommended = await asyncio.gather(
            ask(
                "user",
                up.user.GetUser(
                    user_pb2.GetUserRequest(user_id=user_id), timeout=t.user_seconds
                ),
            ),
            ask(
                "order",
                up.order.ListOrders(
                    order_pb2.ListOrdersRequest(user_id=user_id, page_size=RECENT_ORDERS),
                    timeout=t.order_seconds,
                ),
            ),
            ask(
                "payment",
                up.payment.ListPayments(
                    payment_pb2.ListPaymentsRequest(user_id=user_id, page_size=RECENT_PAYMENTS),
                    timeout=t.payment_seconds,
                ),
            ),
            ask(
                "recommendation",
                up.recommendation.Recommend(
                    recommendation_pb2.RecommendRequest(user_id=user_id, limit=RECOMMENDATIONS),
                    timeout=t.recommendation_seconds,
                ),
            ),
        )
        if user.error == grpc.StatusCode.NOT_FOUND:
            # Not a failing dependency but a definite answer about the request.
            raise NotFound(f"user {user_id} not found")

        response = storefront_pb2.GetDashboardResponse()
        degraded: list[str] = []
        if user.value is not None:
            response.user.CopyFrom(user.value.user)
        else:
            degraded.append("user")
        if orders.value is not None:
            response.recent_orders.extend(orders.value.orders[:RECENT_ORDERS])
        else:
            degraded.append("order")
        if payments.value is not None:
            response.recent_payments.extend(payments.value.payments[:RECENT_PAYMENTS])
        else:
            degraded.append("payment")
        if recommended.value is not None:
            response.recommendations.extend(recommended.value.products[:RECOMMENDATIONS])
            response.recommendation_source = recommended.value.source
        else:
            # The recommendations part is a fallback (or, if catalog fails too, empty):
            # either way it is not what recommendation would have said.
            degraded.append("recommendation")
            popular = await self._popular_products()
            if popular:
                response.recommendations.extend(popular)
                response.recommendation_source = recommendation_pb2.RECOMMENDATION_SOURCE_POPULAR
        response.degraded.extend(sorted(degraded))
        return response

    async def _popular_products(self) -> list[catalog_pb2.Product]:
        """The catalog's most popular products (its popularity field), [] if catalog fails.

        ListProducts is ordered by id, so ranking needs every page; one budget covers them.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeouts.catalog_seconds
        products: list[catalog_pb2.Product] = []
        token = ""
        for _ in range(CATALOG_MAX_PAGES):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []  # a ranking of the pages read so far would not be "most popular"
            page = await ask(
                "catalog",
                self._up.catalog.ListProducts(
                    catalog_pb2.ListProductsRequest(page_size=CATALOG_PAGE_SIZE, page_token=token),
                    timeout=remaining,
                ),
            )
            if page.value is None:
                return []
            products.extend(page.value.products)
            token = page.value.next_page_token
            if not token:
                break
        products.sort(key=lambda p: (-p.popularity, p.product_id))
        return products[:RECOMMENDATIONS]

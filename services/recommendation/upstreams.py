"""The recommender's ports over gRPC: order's recent orders, catalog's products and user's
GetUser.

Each adapter gets its stub injected and one time budget per operation; a multi-page read
shares the budget across its pages, so "read the history" never takes longer than the
configured timeout however many pages it needs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import grpc
from meshmart.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from meshmart.order.v1 import order_pb2, order_pb2_grpc
from meshmart.user.v1 import user_pb2, user_pb2_grpc

from services.kit.errors import Unavailable
from services.recommendation.domain import DirectoryUnavailable, HistoryUnavailable
from services.recommendation.model import PastOrder

MAX_PAGE_SIZE = 100  # the largest page ListRecentOrders and ListProducts accept


class _Budget:
    """An overall deadline for a sequence of calls."""

    def __init__(self, seconds: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._deadline = self._loop.time() + seconds

    def remaining(self) -> float:
        return max(self._deadline - self._loop.time(), 0.0)


class GrpcOrderHistory:
    """Reads the newest `max_orders` orders of all users via order.ListRecentOrders."""

    def __init__(
        self, stub: order_pb2_grpc.OrderServiceAsyncStub, *, timeout_seconds: float, max_orders: int
    ) -> None:
        self._stub = stub
        self._timeout_seconds = timeout_seconds
        self._max_orders = max_orders

    async def recent_orders(self) -> list[PastOrder]:
        budget = _Budget(self._timeout_seconds)
        orders: list[PastOrder] = []
        read, token = 0, ""
        while read < self._max_orders:
            request = order_pb2.ListRecentOrdersRequest(
                page_size=min(MAX_PAGE_SIZE, self._max_orders - read), page_token=token
            )
            try:
                response = await self._stub.ListRecentOrders(request, timeout=budget.remaining())
            except grpc.aio.AioRpcError as exc:
                raise HistoryUnavailable(f"ListRecentOrders: {exc.code().name}") from exc
            read += len(response.orders)
            # Only confirmed orders were bought; pending ones may still be cancelled.
            orders.extend(
                PastOrder(
                    user_id=order.user_id,
                    quantities=tuple((line.product_id, line.quantity) for line in order.lines),
                )
                for order in response.orders
                if order.state == order_pb2.Order.STATE_CONFIRMED
            )
            token = response.next_page_token
            if not token or not response.orders:
                break
        return orders


class GrpcProductCatalog:
    """Product details and popularity ranking from catalog."""

    def __init__(
        self,
        stub: catalog_pb2_grpc.CatalogServiceAsyncStub,
        *,
        timeout_seconds: float,
        max_products: int,
    ) -> None:
        self._stub = stub
        self._timeout_seconds = timeout_seconds
        self._max_products = max_products

    async def products(self, product_ids: Sequence[str]) -> list[catalog_pb2.Product]:
        # Fetched in parallel, so the whole lookup takes one call's time, not N.
        results = await asyncio.gather(
            *(self._get(product_id) for product_id in product_ids),
            return_exceptions=True,
        )
        products: list[catalog_pb2.Product] = []
        for result in results:
            if isinstance(result, BaseException):
                raise result
            if result is not None:
                products.append(result)
        return products

    async def _get(self, product_id: str) -> catalog_pb2.Product | None:
        try:
            response: catalog_pb2.GetProductResponse = await self._stub.GetProduct(
                catalog_pb2.GetProductRequest(product_id=product_id), timeout=self._timeout_seconds
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None  # ordered once, since removed from the catalog: skip it
            raise Unavailable(f"catalog GetProduct failed: {exc.code().name}") from exc
        return response.product

    async def most_popular(self, limit: int, exclude: frozenset[str]) -> list[catalog_pb2.Product]:
        if limit <= 0:
            return []
        # ListProducts is ordered by id, so ranking by popularity needs every page (bounded
        # by max_products; the shop's catalog is far smaller).
        budget = _Budget(self._timeout_seconds)
        products: list[catalog_pb2.Product] = []
        read, token = 0, ""
        while read < self._max_products:
            request = catalog_pb2.ListProductsRequest(page_size=MAX_PAGE_SIZE, page_token=token)
            try:
                response = await self._stub.ListProducts(request, timeout=budget.remaining())
            except grpc.aio.AioRpcError as exc:
                raise Unavailable(f"catalog ListProducts failed: {exc.code().name}") from exc
            read += len(response.products)
            products.extend(p for p in response.products if p.product_id not in exclude)
            token = response.next_page_token
            if not token or not response.products:
                break
        products.sort(key=lambda p: (-p.popularity, p.product_id))
        return products[:limit]


class GrpcUserDirectory:
    """Whether a user exists, from user.GetUser: NOT_FOUND is a "no", any other failure
    means user could not tell."""

    def __init__(self, stub: user_pb2_grpc.UserServiceAsyncStub, *, timeout_seconds: float) -> None:
        self._stub = stub
        self._timeout_seconds = timeout_seconds

    async def exists(self, user_id: str) -> bool:
        try:
            await self._stub.GetUser(
                user_pb2.GetUserRequest(user_id=user_id), timeout=self._timeout_seconds
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise DirectoryUnavailable(f"GetUser: {exc.code().name}") from exc
        return True

"""An in-process OrderService answering the two reads (ListRecentOrders, ListOrders) from a
list of orders.

Stands in for order while the real service is not available to these tests; it speaks the
real contract over real gRPC, and can hang to play a slow dependency.
"""

from __future__ import annotations

import asyncio
from typing import Any

from meshmart.order.v1 import order_pb2, order_pb2_grpc

from services.kit.context import caller_user_id
from services.kit.server import ServiceSpec

CONFIRMED = order_pb2.Order.STATE_CONFIRMED


def confirmed_order(order_id: str, user_id: str, *product_ids: str) -> order_pb2.Order:
    return order_pb2.Order(
        order_id=order_id,
        user_id=user_id,
        state=CONFIRMED,
        lines=[order_pb2.OrderLine(product_id=p, quantity=1) for p in product_ids],
    )


def cancelled_order(order_id: str, user_id: str, *product_ids: str) -> order_pb2.Order:
    order = confirmed_order(order_id, user_id, *product_ids)
    order.state = order_pb2.Order.STATE_CANCELLED
    return order


class RecentOrdersServicer(order_pb2_grpc.OrderServiceServicer):
    def __init__(self, orders: list[order_pb2.Order] | None = None) -> None:
        self.orders = list(orders or [])  # newest first, as order keeps them
        self.calls = 0
        self.hang = False
        self.list_orders_callers: list[str | None] = []  # forwarded user id per ListOrders

    async def ListRecentOrders(
        self, request: order_pb2.ListRecentOrdersRequest, context: Any
    ) -> order_pb2.ListRecentOrdersResponse:
        self.calls += 1
        if self.hang:
            await asyncio.Event().wait()  # until the caller's deadline cancels us
        offset = int(request.page_token or 0)
        size = request.page_size or 20
        page = self.orders[offset : offset + size]
        more = offset + size < len(self.orders)
        return order_pb2.ListRecentOrdersResponse(
            orders=page, next_page_token=str(offset + size) if more else ""
        )

    async def ListOrders(
        self, request: order_pb2.ListOrdersRequest, context: Any
    ) -> order_pb2.ListOrdersResponse:
        self.calls += 1
        self.list_orders_callers.append(caller_user_id(context))
        if self.hang:
            await asyncio.Event().wait()
        mine = [o for o in self.orders if o.user_id == request.user_id]
        return order_pb2.ListOrdersResponse(orders=mine[: request.page_size or 20])


def spec(servicer: RecentOrdersServicer) -> ServiceSpec:
    return ServiceSpec(
        name="meshmart.order.v1.OrderService",
        add=lambda server: order_pb2_grpc.add_OrderServiceServicer_to_server(servicer, server),
    )

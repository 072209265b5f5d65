"""Upstreams for the contract suite beyond the real shop (tests/unit/shop.py): the shop
is where history and products come from; these play an order service that hangs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from meshmart.order.v1 import order_pb2, order_pb2_grpc

from services.kit.server import ServiceSpec
from services.kit.testing import running_server


class HangingOrder(order_pb2_grpc.OrderServiceServicer):
    """ListRecentOrders never answers; each call records the deadline it arrived with, so
    a test sees what budget the caller gave its upstream call."""

    def __init__(self) -> None:
        self.remaining: list[float | None] = []
        self.arrived = asyncio.Event()

    async def ListRecentOrders(
        self, request: order_pb2.ListRecentOrdersRequest, context: Any
    ) -> order_pb2.ListRecentOrdersResponse:
        self.remaining.append(context.time_remaining())
        self.arrived.set()
        await asyncio.Event().wait()  # until the caller's deadline cancels the call
        raise AssertionError("unreachable")


@asynccontextmanager
async def hanging_order() -> AsyncIterator[tuple[str, HangingOrder]]:
    servicer = HangingOrder()
    spec = ServiceSpec(
        name="meshmart.order.v1.OrderService",
        add=lambda server: order_pb2_grpc.add_OrderServiceServicer_to_server(servicer, server),
    )
    async with running_server([spec]) as target:
        yield target, servicer

"""Upstreams for the contract suite beyond the real shop (harness/shop.py): the shop
is where history, products and users come from; these play an order or user service that
records what it is sent, or an order service that hangs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from meshmart.order.v1 import order_pb2, order_pb2_grpc
from meshmart.user.v1 import user_pb2, user_pb2_grpc

from services.kit.server import ServiceSpec
from services.kit.testing import running_server


class RecordingOrder(order_pb2_grpc.OrderServiceServicer):
    """ListRecentOrders answers "no orders" and records the metadata each call came with
    (what the caller propagates: request id, user, traceparent)."""

    def __init__(self) -> None:
        self.metadata: list[dict[str, str]] = []

    async def ListRecentOrders(
        self, request: order_pb2.ListRecentOrdersRequest, context: Any
    ) -> order_pb2.ListRecentOrdersResponse:
        self.metadata.append({k: v for k, v in context.invocation_metadata() or ()})
        return order_pb2.ListRecentOrdersResponse()


@asynccontextmanager
async def recording_order() -> AsyncIterator[tuple[str, RecordingOrder]]:
    # Only ListRecentOrders is played; the generated base answers the rest UNIMPLEMENTED
    # (its .pyi marks them abstract).
    servicer = RecordingOrder()  # type: ignore[abstract]
    async with running_server([_order_spec(servicer)]) as target:
        yield target, servicer


def _order_spec(servicer: order_pb2_grpc.OrderServiceServicer) -> ServiceSpec:
    return ServiceSpec(
        name="meshmart.order.v1.OrderService",
        add=lambda server: order_pb2_grpc.add_OrderServiceServicer_to_server(servicer, server),
    )


class RecordingUser(user_pb2_grpc.UserServiceServicer):
    """GetUser knows every user and records the metadata each call came with."""

    def __init__(self) -> None:
        self.metadata: list[dict[str, str]] = []

    async def GetUser(
        self, request: user_pb2.GetUserRequest, context: Any
    ) -> user_pb2.GetUserResponse:
        self.metadata.append({k: v for k, v in context.invocation_metadata() or ()})
        return user_pb2.GetUserResponse(user=user_pb2.User(user_id=request.user_id))


@asynccontextmanager
async def recording_user() -> AsyncIterator[tuple[str, RecordingUser]]:
    # Only GetUser is played; the rest answer UNIMPLEMENTED.
    servicer = RecordingUser()  # type: ignore[abstract]
    spec = ServiceSpec(
        name="meshmart.user.v1.UserService",
        add=lambda server: user_pb2_grpc.add_UserServiceServicer_to_server(servicer, server),
    )
    async with running_server([spec]) as target:
        yield target, servicer


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
    servicer = HangingOrder()  # type: ignore[abstract]
    async with running_server([_order_spec(servicer)]) as target:
        yield target, servicer

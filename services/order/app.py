"""Wiring of the order service: store, saga over gRPC upstreams, servicer.

Shared by ``python -m services.order`` and the in-process tests, so both run exactly the
same object graph; only where the channels point differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

import grpc
from meshmart.cart.v1 import cart_pb2_grpc
from meshmart.inventory.v1 import inventory_pb2_grpc
from meshmart.payment.v1 import payment_pb2_grpc
from meshmart.user.v1 import user_pb2_grpc

from services.kit.db import Database
from services.kit.outbox import Outbox
from services.kit.server import ServiceSpec

from .events import OrderEvents
from .saga import PlaceOrderSaga
from .servicer import OrderServicer, service_spec
from .settings import OrderSettings
from .store import OrderStore
from .upstreams import GrpcCarts, GrpcInventory, GrpcPayments, GrpcUsers

UPSTREAMS = ("user", "cart", "inventory", "payment")


@dataclass(frozen=True)
class OrderService:
    store: OrderStore
    saga: PlaceOrderSaga
    spec: ServiceSpec
    # Where the store writes its events; the OutboxRelay of main() publishes them.
    outbox: Outbox


def build_order_service(
    db: Database, channels: Mapping[str, grpc.aio.Channel], settings: OrderSettings
) -> OrderService:
    """The order service on ``db``, calling its upstreams over ``channels`` (by name)."""
    outbox = Outbox("order")
    store = OrderStore(db, OrderEvents(outbox))
    saga = PlaceOrderSaga(
        store,
        users=GrpcUsers(
            cast(
                "user_pb2_grpc.UserServiceAsyncStub",
                user_pb2_grpc.UserServiceStub(channels["user"]),
            ),
            timeout=settings.call_timeout,
        ),
        carts=GrpcCarts(
            cast(
                "cart_pb2_grpc.CartServiceAsyncStub",
                cart_pb2_grpc.CartServiceStub(channels["cart"]),
            ),
            timeout=settings.call_timeout,
        ),
        inventory=GrpcInventory(
            cast(
                "inventory_pb2_grpc.InventoryServiceAsyncStub",
                inventory_pb2_grpc.InventoryServiceStub(channels["inventory"]),
            ),
            timeout=settings.call_timeout,
        ),
        payments=GrpcPayments(
            cast(
                "payment_pb2_grpc.PaymentServiceAsyncStub",
                payment_pb2_grpc.PaymentServiceStub(channels["payment"]),
            ),
            timeout=settings.payment_timeout,
        ),
        settings=settings,
    )
    return OrderService(
        store=store, saga=saga, spec=service_spec(OrderServicer(store, saga)), outbox=outbox
    )

"""Wiring of the order service: store, saga over gRPC upstreams (MESHMART_UPSTREAM_USER,
_CART, _INVENTORY, _PAYMENT), servicer, and the outbox relay and consumer of its events
(off without MESHMART_NATS_URL: events then wait in the outbox).

``build`` is shared by ``python -m services.order`` and the in-process tests, so both run
exactly the same object graph; only where the upstreams point differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import cast

import grpc
from meshmart.cart.v1 import cart_pb2_grpc
from meshmart.inventory.v1 import inventory_pb2_grpc
from meshmart.payment.v1 import payment_pb2_grpc
from meshmart.user.v1 import user_pb2_grpc

from services.kit.clients import connect
from services.kit.config import ServiceConfig
from services.kit.db import Database, open_database
from services.kit.events import EventSettings, ServiceEvents, consumers_for
from services.kit.outbox import Outbox, OutboxRelay
from services.kit.server import Service, ServiceSpec, opened

from .events import CONSUMER_NAME, OrderEvents, consumed_events
from .saga import PlaceOrderSaga
from .servicer import OrderServicer, service_spec
from .settings import OrderSettings, load_settings
from .store import MIGRATIONS, OrderStore
from .upstreams import GrpcCarts, GrpcInventory, GrpcPayments, GrpcUsers

UPSTREAMS = ("user", "cart", "inventory", "payment")


@dataclass(frozen=True)
class _OrderService:
    store: OrderStore
    saga: PlaceOrderSaga
    spec: ServiceSpec
    # Where the store writes its events; the OutboxRelay of build() publishes them.
    outbox: Outbox


def _order_service(
    db: Database, channels: Mapping[str, grpc.aio.Channel], settings: OrderSettings
) -> _OrderService:
    """The order service's objects on ``db``, calling its upstreams over ``channels``."""
    outbox = Outbox("order")
    store = OrderStore(db, OrderEvents(outbox))
    saga = PlaceOrderSaga(
        store,
        users=GrpcUsers(
            cast(
                "user_pb2_grpc.UserServiceAsyncStub",
                user_pb2_grpc.UserServiceStub(channels["user"]),
            ),
            timeout_seconds=settings.call_timeout_seconds,
        ),
        carts=GrpcCarts(
            cast(
                "cart_pb2_grpc.CartServiceAsyncStub",
                cart_pb2_grpc.CartServiceStub(channels["cart"]),
            ),
            timeout_seconds=settings.call_timeout_seconds,
        ),
        inventory=GrpcInventory(
            cast(
                "inventory_pb2_grpc.InventoryServiceAsyncStub",
                inventory_pb2_grpc.InventoryServiceStub(channels["inventory"]),
            ),
            timeout_seconds=settings.call_timeout_seconds,
        ),
        payments=GrpcPayments(
            cast(
                "payment_pb2_grpc.PaymentServiceAsyncStub",
                payment_pb2_grpc.PaymentServiceStub(channels["payment"]),
            ),
            timeout_seconds=settings.payment_timeout_seconds,
        ),
        settings=settings,
    )
    return _OrderService(
        store=store, saga=saga, spec=service_spec(OrderServicer(store, saga)), outbox=outbox
    )


def build(
    config: ServiceConfig,
    stack: AsyncExitStack,
    settings: OrderSettings | None = None,
    *,
    event_settings: EventSettings | None = None,
) -> Service:
    # Each resource is closed after the drain, the last opened first: sagas still running
    # are interrupted (the next start finishes them, exactly as after a crash); events the
    # relay has not published yet stay in the outbox for the next start.
    settings = settings or load_settings()
    db = opened(stack, open_database(
        config, "order.sqlite3", MIGRATIONS, synchronous=settings.synchronous
    ))
    channels = {name: opened(stack, connect(config, name)) for name in UPSTREAMS}
    service = _order_service(db, channels, settings)
    events = opened(stack, ServiceEvents.from_env(
        config,
        lambda bus, settings: [
            OutboxRelay(db, bus, holder=config.instance_id, outbox=service.outbox),
            *consumers_for(
                bus, db, name=CONSUMER_NAME, handlers=consumed_events(), settings=settings
            ),
        ],
        settings=event_settings,
    ))
    opened(stack, service.saga)
    return Service(
        specs=[service.spec],
        # Startup recovery runs once the server is up (after the events have started):
        # orders a previous run left unfinished are confirmed or cancelled before
        # anything else is resumed.
        on_start=[service.saga.start],
        events=events,
    )

"""Order's events: what it publishes (through the outbox) and what it consumes.

Published, each in the transaction of the change (OrderStore calls OrderEvents):
  order.OrderPlaced     the order row was created (PENDING)
  order.OrderConfirmed  the saga confirmed it (paid, stock committed)
  order.OrderCancelled  the saga decided to cancel it (compensation may still run)
The payload carries the order as GetOrder shows it, with the customer's contact copy.

Consumed: user.UserUpdated keeps the local copy of each customer's contact data (the
``contacts`` table) current, so orders read, ship and mail while user is down.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping

from meshmart.common.v1 import common_pb2
from meshmart.order.v1 import events_pb2
from meshmart.user.v1 import events_pb2 as user_events_pb2

from services.kit.clock import utc_now
from services.kit.db import Connection
from services.kit.events import Handler, unpack
from services.kit.outbox import Outbox

from .model import Contact, Order, OrderState
from .servicer import order_to_proto
from .store import OrderStore

ORDER_PLACED = "order.OrderPlaced"
ORDER_CONFIRMED = "order.OrderConfirmed"
ORDER_CANCELLED = "order.OrderCancelled"
USER_UPDATED = "user.UserUpdated"
# Durable consumer name of the order service on each stream it reads.
CONSUMER_NAME = "order"


class OrderEvents:
    """The OrderStore's event sink: writes order events into the outbox."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    def order_created(
        self, conn: Connection, order: Order, customer: Contact | None
    ) -> None:
        self.outbox.add(
            conn,
            ORDER_PLACED,
            events_pb2.OrderPlaced(order=order_to_proto(order, customer)),
            occurred_at=order.created_at,
        )

    def order_state_changed(
        self, conn: Connection, order: Order, customer: Contact | None
    ) -> None:
        message = order_to_proto(order, customer)
        if order.state is OrderState.CONFIRMED:
            self.outbox.add(
                conn,
                ORDER_CONFIRMED,
                events_pb2.OrderConfirmed(order=message),
                occurred_at=order.updated_at,
            )
        elif order.state is OrderState.CANCELLED:
            self.outbox.add(
                conn,
                ORDER_CANCELLED,
                events_pb2.OrderCancelled(order=message),
                occurred_at=order.updated_at,
            )


def consumed_events(
    clock: Callable[[], dt.datetime] = utc_now,
) -> Mapping[str, Handler]:
    """Handlers of the events order consumes (for services.kit.events.consumers_for)."""

    def user_updated(conn: Connection, envelope: common_pb2.EventEnvelope) -> None:
        user = unpack(envelope, user_events_pb2.UserUpdated).user
        contact = Contact(
            user_id=user.user_id,
            email=user.email,
            full_name=user.full_name,
            phone=user.phone,
            updated_at=user.updated_at.ToDatetime(dt.UTC) if user.HasField("updated_at") else None,
        )
        # Version-guarded: an older profile (redelivered, or overtaken by a GetUser read)
        # leaves the newer copy alone.
        OrderStore.upsert_contact(conn, contact, clock())

    return {USER_UPDATED: user_updated}

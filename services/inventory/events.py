"""The events inventory consumes.

order.OrderCancelled: release whatever stock the cancelled order still holds. The saga
releases it itself; this is the backstop for when that call could not reach inventory
(it would otherwise wait for the reservation's TTL). Idempotent, and harmless after the
saga's own Release or when the stock was already sold.
"""

from __future__ import annotations

from collections.abc import Mapping

from meshmart.common.v1 import common_pb2
from meshmart.order.v1 import events_pb2

from services.inventory.domain import ReservationState
from services.inventory.store import StockLedger
from services.kit.db import Connection
from services.kit.events import Handler, unpack
from services.kit.logging import get_logger

log = get_logger("inventory.events")

ORDER_CANCELLED = "order.OrderCancelled"
CONSUMER_NAME = "inventory"


def consumed_events(ledger: StockLedger) -> Mapping[str, Handler]:
    def order_cancelled(conn: Connection, envelope: common_pb2.EventEnvelope) -> None:
        order_id = unpack(envelope, events_pb2.OrderCancelled).order.order_id
        state = ledger.release_for_cancelled_order(conn, order_id)
        if state is ReservationState.RELEASED:
            log.info("inventory.released_for_cancelled_order", order_id=order_id)

    return {ORDER_CANCELLED: order_cancelled}

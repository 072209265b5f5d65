"""The events payment publishes, written into its outbox by PaymentStore.

  payment.PaymentCaptured  a new charge was captured (never for a replayed key)
  payment.PaymentRefunded  a captured payment was refunded

Each is written in the transaction that records the charge or the refund, so it exists
exactly when the payment does, whichever of the two payment instances wrote it.
"""

from __future__ import annotations

import sqlite3

from meshmart.payment.v1 import events_pb2

from services.kit.outbox import Outbox

from .messages import payment_to_proto
from .model import Payment

PAYMENT_CAPTURED = "payment.PaymentCaptured"
PAYMENT_REFUNDED = "payment.PaymentRefunded"


def payment_captured(outbox: Outbox, conn: sqlite3.Connection, payment: Payment) -> None:
    outbox.add(
        conn,
        PAYMENT_CAPTURED,
        events_pb2.PaymentCaptured(payment=payment_to_proto(payment)),
        occurred_at=payment.created_at,
    )


def payment_refunded(outbox: Outbox, conn: sqlite3.Connection, payment: Payment) -> None:
    outbox.add(
        conn,
        PAYMENT_REFUNDED,
        events_pb2.PaymentRefunded(payment=payment_to_proto(payment)),
        occurred_at=payment.updated_at,
    )

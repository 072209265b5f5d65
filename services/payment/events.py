"""The events payment publishes, written into its outbox by PaymentStore, and the
Payment message they share with the RPC answers.

  payment.PaymentCaptured  a new charge was captured (never for a replayed key)
  payment.PaymentRefunded  a captured payment was refunded

Each is written in the transaction that records the charge or the refund, so it exists
exactly when the payment does, whichever of the two payment instances wrote it.
"""

from __future__ import annotations

from meshmart.common.v1 import common_pb2
from meshmart.payment.v1 import events_pb2, payment_pb2

from services.kit.clock import timestamp
from services.kit.db import Connection
from services.kit.outbox import Outbox

from .model import Payment, PaymentStatus

PAYMENT_CAPTURED = "payment.PaymentCaptured"
PAYMENT_REFUNDED = "payment.PaymentRefunded"


def payment_captured(outbox: Outbox, conn: Connection, payment: Payment) -> None:
    outbox.add(
        conn,
        PAYMENT_CAPTURED,
        events_pb2.PaymentCaptured(payment=payment_to_proto(payment)),
        occurred_at=payment.created_at,
    )


def payment_refunded(outbox: Outbox, conn: Connection, payment: Payment) -> None:
    outbox.add(
        conn,
        PAYMENT_REFUNDED,
        events_pb2.PaymentRefunded(payment=payment_to_proto(payment)),
        occurred_at=payment.updated_at,
    )


_STATUS_TO_PROTO = {
    PaymentStatus.CAPTURED: payment_pb2.Payment.STATUS_CAPTURED,
    PaymentStatus.DECLINED: payment_pb2.Payment.STATUS_DECLINED,
    PaymentStatus.REFUNDED: payment_pb2.Payment.STATUS_REFUNDED,
}


def payment_to_proto(payment: Payment) -> payment_pb2.Payment:
    return payment_pb2.Payment(
        payment_id=payment.payment_id,
        order_id=payment.order_id,
        user_id=payment.user_id,
        amount=common_pb2.Money(amount_minor=payment.amount_minor, currency=payment.currency),
        status=_STATUS_TO_PROTO[payment.status],
        decline_reason=payment.decline_reason,
        created_at=timestamp(payment.created_at),
        card_last4=payment.card_last4,
        refund_reason=payment.refund_reason,
    )

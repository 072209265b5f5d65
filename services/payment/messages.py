"""Payment records as protobuf messages (the RPC answers and the events share them)."""

from __future__ import annotations

from google.protobuf import timestamp_pb2
from meshmart.common.v1 import common_pb2
from meshmart.payment.v1 import payment_pb2

from .model import Payment, PaymentStatus

_STATUS_TO_PROTO = {
    PaymentStatus.CAPTURED: payment_pb2.Payment.STATUS_CAPTURED,
    PaymentStatus.DECLINED: payment_pb2.Payment.STATUS_DECLINED,
    PaymentStatus.REFUNDED: payment_pb2.Payment.STATUS_REFUNDED,
}


def payment_to_proto(payment: Payment) -> payment_pb2.Payment:
    created_at = timestamp_pb2.Timestamp()
    created_at.FromDatetime(payment.created_at)
    return payment_pb2.Payment(
        payment_id=payment.payment_id,
        order_id=payment.order_id,
        user_id=payment.user_id,
        amount=common_pb2.Money(amount_minor=payment.amount_minor, currency=payment.currency),
        status=_STATUS_TO_PROTO[payment.status],
        decline_reason=payment.decline_reason,
        created_at=created_at,
        card_last4=payment.card_last4,
        refund_reason=payment.refund_reason,
    )

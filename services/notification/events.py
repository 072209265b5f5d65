"""The events notification consumes, and the message each one becomes.

  order.OrderConfirmed     "Your order ... is confirmed", with its lines and total
  order.OrderCancelled     "Your order ... was cancelled", with the reason
  payment.PaymentRefunded  "We refunded ...", with the amount
  user.UserUpdated         no message: keeps the recipient's address current

Each message is one row (UNIQUE event_id) and one file (mailbox.py), both written in the
consumer's transaction that also records the event id: one message per event.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping

from meshmart.common.v1 import common_pb2
from meshmart.order.v1 import events_pb2 as order_events_pb2
from meshmart.order.v1 import order_pb2
from meshmart.payment.v1 import events_pb2 as payment_events_pb2
from meshmart.user.v1 import events_pb2 as user_events_pb2

from services.kit.clock import to_us, utc_now
from services.kit.db import Connection
from services.kit.events import Handler, unpack
from services.kit.logging import get_logger
from services.notification.mailbox import Mailbox
from services.notification.store import Notification, NotificationStore, Recipient

log = get_logger("notification.events")

ORDER_CONFIRMED = "order.OrderConfirmed"
ORDER_CANCELLED = "order.OrderCancelled"
PAYMENT_REFUNDED = "payment.PaymentRefunded"
USER_UPDATED = "user.UserUpdated"
CONSUMER_NAME = "notification"
CHANNEL = "email"


def notification_id_for(event_id: str) -> str:
    """Derived from the event, so a redelivery writes the same file, not a second one."""
    return "ntf-" + hashlib.sha256(event_id.encode()).hexdigest()[:16]


def money(amount: common_pb2.Money) -> str:
    # The shop's currencies have two minor digits (EUR).
    return f"{amount.amount_minor / 100:.2f} {amount.currency}"


class Notifier:
    def __init__(
        self,
        mailbox: Mailbox,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self._mailbox = mailbox
        self._clock = clock

    def handlers(self) -> Mapping[str, Handler]:
        return {
            ORDER_CONFIRMED: self._order_confirmed,
            ORDER_CANCELLED: self._order_cancelled,
            PAYMENT_REFUNDED: self._payment_refunded,
            USER_UPDATED: self._user_updated,
        }

    # -- handlers ---------------------------------------------------------------------

    def _order_confirmed(
        self, conn: Connection, envelope: common_pb2.EventEnvelope
    ) -> None:
        order = unpack(envelope, order_events_pb2.OrderConfirmed).order
        recipient = self._recipient_of_order(conn, order)
        lines = "\n".join(
            f"  {line.quantity} x {line.name} ({line.product_id})  {money(line.line_total)}"
            for line in order.lines
        )
        body = (
            f"Hello {recipient.full_name or 'there'},\n\n"
            f"thank you for your order {order.order_id}. It is paid and on its way.\n\n"
            f"{lines}\n\n  Total: {money(order.total)}\n\n"
            f"Ships to: {order.shipping_address.name}, {order.shipping_address.line1}, "
            f"{order.shipping_address.postal_code} {order.shipping_address.city}, "
            f"{order.shipping_address.country}\n"
        )
        self._send(conn, envelope, recipient, f"Your order {order.order_id} is confirmed", body)

    def _order_cancelled(
        self, conn: Connection, envelope: common_pb2.EventEnvelope
    ) -> None:
        order = unpack(envelope, order_events_pb2.OrderCancelled).order
        recipient = self._recipient_of_order(conn, order)
        body = (
            f"Hello {recipient.full_name or 'there'},\n\n"
            f"your order {order.order_id} ({money(order.total)}) was cancelled: "
            f"{order.cancel_reason or 'no reason given'}.\n"
            "Anything charged for it is refunded; you will get a separate notice.\n"
        )
        self._send(conn, envelope, recipient, f"Your order {order.order_id} was cancelled", body)

    def _payment_refunded(
        self, conn: Connection, envelope: common_pb2.EventEnvelope
    ) -> None:
        payment = unpack(envelope, payment_events_pb2.PaymentRefunded).payment
        recipient = NotificationStore.recipient(conn, payment.user_id) or Recipient(
            payment.user_id, "", ""
        )
        body = (
            f"Hello {recipient.full_name or 'there'},\n\n"
            f"we refunded {money(payment.amount)} for order {payment.order_id} to your card "
            f"ending in {payment.card_last4}.\n"
            f"Reason: {payment.refund_reason or 'not given'}\n"
        )
        self._send(
            conn, envelope, recipient, f"Refund of {money(payment.amount)} for your order", body
        )

    def _user_updated(self, conn: Connection, envelope: common_pb2.EventEnvelope) -> None:
        user = unpack(envelope, user_events_pb2.UserUpdated).user
        version = to_us(user.updated_at.ToDatetime(dt.UTC)) if user.HasField("updated_at") else 0
        NotificationStore.remember_recipient(
            conn, Recipient(user.user_id, user.email, user.full_name), version
        )

    # -- helpers ----------------------------------------------------------------------

    def _recipient_of_order(self, conn: Connection, order: order_pb2.Order) -> Recipient:
        if order.HasField("customer") and order.customer.email:
            found = Recipient(order.user_id, order.customer.email, order.customer.full_name)
            # Version 0: fills a gap, never overrides what UserUpdated told us.
            NotificationStore.remember_recipient(conn, found, 0)
            return found
        return NotificationStore.recipient(conn, order.user_id) or Recipient(order.user_id, "", "")

    def _send(
        self,
        conn: Connection,
        envelope: common_pb2.EventEnvelope,
        recipient: Recipient,
        subject: str,
        body: str,
    ) -> None:
        notification_id = notification_id_for(envelope.id)
        created_at = self._clock()
        if not recipient.email:
            log.warning("notification.no_address", user_id=recipient.user_id, event_id=envelope.id)
        path = self._mailbox.write(
            notification_id=notification_id,
            event_id=envelope.id,
            to_name=recipient.full_name,
            to_address=recipient.email,
            subject=subject,
            body=body,
            created_at=created_at,
        )
        NotificationStore.insert(
            conn,
            Notification(
                notification_id=notification_id,
                user_id=recipient.user_id,
                channel=CHANNEL,
                recipient=recipient.email,
                subject=subject,
                body=body,
                event_id=envelope.id,
                file=str(path),
                created_at=created_at,
            ),
        )
        log.info(
            "notification.written",
            notification_id=notification_id,
            user_id=recipient.user_id,
            subject=subject,
            file=str(path),
        )

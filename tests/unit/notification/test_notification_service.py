"""Notifications from events (the real handlers, a real mailbox directory) and
NotificationService on a real in-process server."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2
from meshmart.common.v1 import common_pb2
from meshmart.notification.v1 import notification_pb2, notification_pb2_grpc
from meshmart.order.v1 import events_pb2 as order_events
from meshmart.order.v1 import order_pb2
from meshmart.payment.v1 import events_pb2 as payment_events
from meshmart.payment.v1 import payment_pb2
from meshmart.user.v1 import events_pb2 as user_events
from meshmart.user.v1 import user_pb2

from harness.postgres import Databases
from services.kit.db import Database
from services.kit.events import new_envelope
from services.kit.testing import running_server
from services.notification.events import Notifier
from services.notification.mailbox import Mailbox
from services.notification.servicer import NotificationServicer, service_spec
from services.notification.store import MIGRATIONS, NotificationStore
from tests.unit.applied import apply_each

EARLY = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
LATE = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)


def _stamp(moment: dt.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def user_updated(email: str, name: str, when: dt.datetime) -> Any:
    user = user_pb2.User(user_id="usr-1", email=email, full_name=name, updated_at=_stamp(when))
    return new_envelope("user.UserUpdated", user_events.UserUpdated(user=user), source="user")


def order_confirmed(order_id: str, customer: bool = True) -> Any:
    order = order_pb2.Order(
        order_id=order_id,
        user_id="usr-1",
        state=order_pb2.Order.STATE_CONFIRMED,
        lines=[
            order_pb2.OrderLine(
                product_id="sku-1001",
                name="Widget",
                quantity=2,
                line_total=common_pb2.Money(amount_minor=2580, currency="EUR"),
            )
        ],
        total=common_pb2.Money(amount_minor=2580, currency="EUR"),
    )
    if customer:
        order.customer.CopyFrom(
            order_pb2.Customer(user_id="usr-1", email="ada@example.com", full_name="Ada Lovelace")
        )
    return new_envelope(
        "order.OrderConfirmed", order_events.OrderConfirmed(order=order), source="order"
    )


def payment_refunded() -> Any:
    payment = payment_pb2.Payment(
        payment_id="pay-1",
        order_id="ord-1",
        user_id="usr-1",
        card_last4="4242",
        amount=common_pb2.Money(amount_minor=2580, currency="EUR"),
        status=payment_pb2.Payment.STATUS_REFUNDED,
        refund_reason="changed my mind",
    )
    return new_envelope(
        "payment.PaymentRefunded",
        payment_events.PaymentRefunded(payment=payment),
        source="payment",
    )


@pytest.fixture
def db(databases: Databases) -> Iterator[Database]:
    """Notification's database, on SQLite and again on PostgreSQL."""
    database = Database(databases.target("notification", "notification.sqlite3"), MIGRATIONS)
    yield database
    database.close()


@pytest.fixture
def mailbox(tmp_path: Path) -> Mailbox:
    return Mailbox(tmp_path / "mail")


def apply(db: Database, mailbox: Mailbox, *envelopes: Any) -> list[bool]:
    return apply_each(db, "notification", Notifier(mailbox).handlers(), envelopes)


@pytest.fixture
async def stub(db: Database) -> AsyncIterator[Any]:
    async with running_server([service_spec(NotificationServicer(NotificationStore(db)))]) as t:
        async with grpc.aio.insecure_channel(t) as channel:
            yield notification_pb2_grpc.NotificationServiceStub(channel)


async def listed(stub: Any, **fields: Any) -> notification_pb2.ListNotificationsResponse:
    response: notification_pb2.ListNotificationsResponse = await stub.ListNotifications(
        notification_pb2.ListNotificationsRequest(user_id="usr-1", **fields), timeout=5
    )
    return response


async def test_one_event_is_one_message_and_one_file_however_often_it_comes(
    db: Database, mailbox: Mailbox, stub: Any
) -> None:
    event = order_confirmed("ord-1")
    assert apply(db, mailbox, event, event) == [True, False]

    [note] = (await listed(stub)).notifications
    assert note.subject == "Your order ord-1 is confirmed"
    assert note.event_id == event.id
    [path] = mailbox.directory.glob("*.eml")
    mail = message_from_bytes(path.read_bytes())
    assert mail["To"] == "Ada Lovelace <ada@example.com>"
    assert "2 x Widget (sku-1001)  25.80 EUR" in mail.get_payload()
    assert path.name == f"{note.notification_id}.eml"


async def test_a_refund_notice_goes_to_the_newest_address_the_user_events_gave(
    db: Database, mailbox: Mailbox, stub: Any
) -> None:
    # The newer profile arrives first; the older one, delivered late, must not win.
    apply(
        db,
        mailbox,
        user_updated("new@example.com", "Ada King", LATE),
        user_updated("old@example.com", "Ada Lovelace", EARLY),
        payment_refunded(),
    )
    [note] = (await listed(stub)).notifications
    assert note.subject == "Refund of 25.80 EUR for your order"
    [path] = mailbox.directory.glob("*.eml")
    assert message_from_bytes(path.read_bytes())["To"] == "Ada King <new@example.com>"


async def test_pages_are_newest_first_and_tokens_belong_to_their_user(
    db: Database, mailbox: Mailbox, stub: Any
) -> None:
    apply(db, mailbox, *(order_confirmed(f"ord-{n}") for n in range(5)))
    first = await listed(stub, page_size=3)
    second = await listed(stub, page_size=3, page_token=first.next_page_token)
    subjects = [n.subject for n in (*first.notifications, *second.notifications)]
    assert subjects == [f"Your order ord-{n} is confirmed" for n in (4, 3, 2, 1, 0)]
    assert second.next_page_token == ""

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListNotifications(
            notification_pb2.ListNotificationsRequest(
                user_id="usr-2", page_token=first.next_page_token
            ),
            timeout=5,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_another_users_notifications_are_refused(stub: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListNotifications(
            notification_pb2.ListNotificationsRequest(user_id="usr-1"),
            metadata=[("x-meshmart-user-id", "usr-2")],
            timeout=5,
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED

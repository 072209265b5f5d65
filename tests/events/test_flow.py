"""The shop's asynchronous half end to end, in-process on a real nats-server: a purchase
becomes one notification and one analytics entry; profile changes reach order's copy;
refunds and cancellations flow; the read model can be rebuilt from the streams."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email import message_from_bytes
from pathlib import Path

import pytest
from meshmart.analytics.v1 import analytics_pb2
from meshmart.inventory.v1 import inventory_pb2
from meshmart.order.v1 import events_pb2 as order_events_pb2
from meshmart.order.v1 import order_pb2
from meshmart.payment.v1 import payment_pb2
from meshmart.user.v1 import user_pb2
from nats.aio.client import Client as NatsClient

from harness.shop import DECLINE_CARD, TIMEOUT, Gate, Shop
from harness.wait import until
from services.analytics.rebuild import differences, rebuild
from services.analytics.store import MIGRATIONS as ANALYTICS_MIGRATIONS
from services.kit.db import Database
from services.kit.events import new_envelope, subject_for
from tests.events.event_shop import EventShop, running_events
from tests.events.helpers import consumer_state

CONSUMERS = [
    ("USERS", "order"),
    ("USERS", "notification"),
    ("ORDERS", "inventory"),
    ("ORDERS", "notification"),
    ("ORDERS", "analytics"),
    ("PAYMENTS", "notification"),
    ("PAYMENTS", "analytics"),
]


@dataclass
class World:
    shop: Shop
    events: EventShop
    nc: NatsClient
    data_dir: Path
    nats_url: str
    # Holds user.GetUser when closed (``opened.clear()``): user "down" for the saga.
    user_gate: Gate


@pytest.fixture
async def world(tmp_path: Path, nats_url: str, nc: NatsClient) -> AsyncIterator[World]:
    user_gate = Gate()
    user_gate.release()  # open unless a test closes it
    async with running_events(tmp_path, nats_url, gates={"user.GetUser": user_gate}) as (
        shop,
        events,
    ):
        yield World(shop, events, nc, tmp_path, nats_url, user_gate)


async def quiet(world: World) -> None:
    """Until every outbox is published and every consumer has acked everything."""
    await until(world.events.outbox_empty, 20, "the outboxes to drain")
    for stream, name in CONSUMERS:
        await until(
            lambda s=stream, n=name: _settled(world.nc, s, n), 20, f"{name} on {stream}"
        )


async def _settled(nc: NatsClient, stream: str, name: str) -> bool:
    try:
        return await consumer_state(nc, stream, name) == (0, 0)
    except Exception:
        return False  # not created yet


async def sales_today(world: World) -> analytics_pb2.GetSalesReportResponse:
    today = dt.datetime.now(dt.UTC).date().isoformat()
    response: analytics_pb2.GetSalesReportResponse = await world.events.analytics.GetSalesReport(
        analytics_pb2.GetSalesReportRequest(from_date=today, to_date=today), timeout=TIMEOUT
    )
    return response


async def popular(world: World) -> dict[str, int]:
    response: analytics_pb2.GetPopularProductsResponse = (
        await world.events.analytics.GetPopularProducts(
            analytics_pb2.GetPopularProductsRequest(limit=100), timeout=TIMEOUT
        )
    )
    return {p.product_id: p.units for p in response.products}


async def buy(world: World, user_id: str, lines: dict[str, int], key: str) -> order_pb2.Order:
    for product_id, quantity in lines.items():
        await world.shop.add_to_cart(user_id, product_id, quantity)
    return await world.shop.place_order(user_id, key)


async def test_a_purchase_is_notified_once_counted_once_and_carries_the_customer(
    world: World,
) -> None:
    user = await world.shop.register("grace@example.com", "Grace Hopper")
    order = await buy(world, user.user_id, {"sku-1001": 2, "sku-1003": 1}, "checkout-1")
    assert order.state == order_pb2.Order.STATE_CONFIRMED

    await quiet(world)

    # Exactly one confirmation "email": a row and a file.
    [note] = await world.events.notifications(user.user_id)
    assert note.subject == f"Your order {order.order_id} is confirmed"
    assert note.channel == "email"
    mail = message_from_bytes((world.events.mail_dir / f"{note.notification_id}.eml").read_bytes())
    assert mail["To"] == "Grace Hopper <grace@example.com>"
    assert mail["X-Meshmart-Event-Id"] == note.event_id
    assert len(list(world.events.mail_dir.glob("*.eml"))) == 1

    # The read model moved by exactly the order's lines.
    report = await sales_today(world)
    [day] = report.days
    assert (day.orders, day.revenue.amount_minor) == (1, order.total.amount_minor)
    assert {p.product_id: (p.units, p.revenue.amount_minor) for p in report.products} == {
        line.product_id: (line.quantity, line.line_total.amount_minor) for line in order.lines
    }
    assert await popular(world) == {"sku-1001": 2, "sku-1003": 1}

    # The order's customer is order's copy of the user.
    shown = await world.shop.get_order(user.user_id, order.order_id)
    assert (shown.customer.email, shown.customer.full_name) == (user.email, user.full_name)

    # Every event was published once and applied once by each consumer.
    for relay in world.events.relays.values():
        assert relay.stats.duplicates == 0
    assert sum(c.stats.duplicates for c in world.events.consumers) == 0


async def test_the_customer_copy_follows_update_profile_and_serves_get_order_without_user(
    world: World,
) -> None:
    user = await world.shop.register("ada@example.com", "Ada Lovelace")
    order = await buy(world, user.user_id, {"sku-1002": 1}, "checkout-1")
    assert (await world.shop.get_order(user.user_id, order.order_id)).customer.email == (
        "ada@example.com"
    )

    await world.shop.user.UpdateProfile(
        user_pb2.UpdateProfileRequest(
            user_id=user.user_id, email="countess@example.com", full_name="Ada King"
        ),
        timeout=TIMEOUT,
    )

    async def copy_follows() -> bool:
        shown = await world.shop.get_order(user.user_id, order.order_id)
        return (shown.customer.email, shown.customer.full_name) == (
            "countess@example.com",
            "Ada King",
        )

    await until(copy_follows, 20, "order's copy of the new email")

    # user "down": every GetUser now hangs. GetOrder answers from order's own copy.
    world.user_gate.opened.clear()
    shown = await world.shop.get_order(user.user_id, order.order_id)
    assert (shown.customer.email, shown.customer.full_name) == ("countess@example.com", "Ada King")
    world.user_gate.release()


async def test_a_refund_is_noticed_and_taken_off_the_revenue_and_the_rebuild_agrees(
    world: World,
) -> None:
    grace = await world.shop.register("grace@example.com", "Grace Hopper")
    alan = await world.shop.register("alan@example.com", "Alan Turing")
    kept = await buy(world, grace.user_id, {"sku-1001": 1, "sku-1004": 3}, "k-1")
    refunded = await buy(world, alan.user_id, {"sku-1001": 2}, "k-2")
    third = await buy(world, alan.user_id, {"sku-1005": 1}, "k-3")
    await world.shop.add_to_cart(grace.user_id, "sku-1002", 1)
    declined = await world.shop.place_order(grace.user_id, "k-4", card_number=DECLINE_CARD)
    assert declined.state == order_pb2.Order.STATE_CANCELLED
    await world.shop.payment.Refund(
        payment_pb2.RefundRequest(
            payment_id=refunded.payment_id, idempotency_key="refund-1", reason="changed my mind"
        ),
        timeout=TIMEOUT,
    )
    await quiet(world)

    alan_notes = [n.subject for n in await world.events.notifications(alan.user_id)]
    assert sorted(alan_notes) == sorted(
        [
            f"Your order {refunded.order_id} is confirmed",
            f"Your order {third.order_id} is confirmed",
            f"Refund of {refunded.total.amount_minor / 100:.2f} EUR for your order",
        ]
    )
    grace_notes = [n.subject for n in await world.events.notifications(grace.user_id)]
    assert sorted(grace_notes) == sorted(
        [
            f"Your order {kept.order_id} is confirmed",
            f"Your order {declined.order_id} was cancelled",
        ]
    )

    # Revenue: the three confirmed orders minus the refund; the declined one never counts.
    [day] = (await sales_today(world)).days
    confirmed = [kept, refunded, third]
    assert day.orders == len(confirmed)
    assert day.revenue.amount_minor == sum(o.total.amount_minor for o in confirmed) - (
        refunded.total.amount_minor
    )

    # The same figures from the streams alone, replayed into a new file.
    out = world.data_dir / "analytics.rebuilt.sqlite3"
    assert await rebuild(world.nats_url, out) == 4  # three confirmations, one refund
    rebuilt = Database(out, ANALYTICS_MIGRATIONS)
    try:
        assert differences(world.events.analytics_db, rebuilt) == []
    finally:
        rebuilt.close()


async def test_inventory_releases_what_a_cancelled_order_still_holds(world: World) -> None:
    await world.shop.inventory.Reserve(
        inventory_pb2.ReserveRequest(
            order_id="ord-lost-release",
            lines=[inventory_pb2.ReservationLine(product_id="sku-1001", quantity=3)],
            ttl_seconds=3600,
        ),
        timeout=TIMEOUT,
    )
    before = (await world.shop.stock("sku-1001"))["sku-1001"]
    # As if the saga had cancelled the order and its Release never reached inventory.
    cancelled = order_events_pb2.OrderCancelled(
        order=order_pb2.Order(order_id="ord-lost-release", state=order_pb2.Order.STATE_CANCELLED)
    )
    envelope = new_envelope("order.OrderCancelled", cancelled, source="order")
    for _ in range(2):  # a duplicate publish changes nothing either
        await world.events.bus.publish(
            subject_for(envelope.type),
            envelope.SerializeToString(),
            msg_id=envelope.id,
            event_type=envelope.type,
        )
    await quiet(world)

    assert (await world.shop.stock("sku-1001"))["sku-1001"] == (before[0] + 3, before[1] - 3)

"""The asynchronous half on the real mesh: NATS JetStream registered in Consul and reached
through the sidecars; a purchase becomes one notification and one analytics entry; the
customer copy follows the user and serves GetOrder with user stopped; a broker restart
loses and doubles nothing.

Tests call each service as the edge forwards a shopper's calls (its sidecar's listener,
harness/callers.py); the services reach each other and NATS only through their sidecars.
Every test restores what it stops.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from meshmart.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from meshmart.cart.v1 import cart_pb2, cart_pb2_grpc
from meshmart.notification.v1 import notification_pb2, notification_pb2_grpc
from meshmart.order.v1 import order_pb2, order_pb2_grpc
from meshmart.payment.v1 import payment_pb2
from meshmart.user.v1 import user_pb2, user_pb2_grpc

from harness.callers import as_edge
from harness.mesh import consumers_idle, health_of, listener_counter
from harness.wait import until
from tools.chaos.probe import NOT_ANSWERING, callers_of, serving
from tools.mesh import control
from tools.mesh.edge.mesh import Edge
from tools.mesh.http import get_json
from tools.mesh.nats import INSTANCE_ID as NATS_INSTANCE
from tools.mesh.nats import Nats
from tools.mesh.plan import MeshPlan
from tools.mesh.supervisor import Supervisor

pytestmark = pytest.mark.mesh

TIMEOUT = 15.0
CARD = payment_pb2.Card(number="4242424242424242", exp_month=12, exp_year=2099, cvc="123")
ADDRESS = order_pb2.Address(
    name="Ada Lovelace", line1="12 Analytical Row", city="London", postal_code="N1", country="GB"
)


@dataclass
class Shop:
    user: Any
    cart: Any
    order: Any
    notification: Any
    analytics: Any

    async def customer(self, full_name: str = "Ada Lovelace") -> user_pb2.User:
        response = await self.user.Register(
            user_pb2.RegisterRequest(
                email=f"{uuid.uuid4().hex[:12]}@example.com",
                password="correct horse battery",
                full_name=full_name,
            ),
            timeout=TIMEOUT,
        )
        return response.user  # type: ignore[no-any-return]

    async def buy(self, user_id: str, lines: dict[str, int]) -> order_pb2.Order:
        for product_id, quantity in lines.items():
            await self.cart.AddItem(
                cart_pb2.AddItemRequest(user_id=user_id, product_id=product_id, quantity=quantity),
                timeout=TIMEOUT,
            )
        response = await self.order.PlaceOrder(
            order_pb2.PlaceOrderRequest(
                user_id=user_id,
                idempotency_key=uuid.uuid4().hex,
                card=CARD,
                shipping_address=ADDRESS,
            ),
            timeout=30,
        )
        order: order_pb2.Order = response.order
        assert order.state == order_pb2.Order.STATE_CONFIRMED, order.cancel_reason
        return order

    async def get_order(self, user_id: str, order_id: str) -> order_pb2.Order:
        response = await self.order.GetOrder(
            order_pb2.GetOrderRequest(user_id=user_id, order_id=order_id), timeout=TIMEOUT
        )
        return response.order  # type: ignore[no-any-return]

    async def notifications(self, user_id: str) -> list[notification_pb2.Notification]:
        response = await self.notification.ListNotifications(
            notification_pb2.ListNotificationsRequest(user_id=user_id, page_size=100),
            timeout=TIMEOUT,
        )
        return list(response.notifications)

    async def sold_today(self) -> dict[str, tuple[int, int]]:
        """product_id -> (units, revenue) of today's report."""
        today = dt.datetime.now(dt.UTC).date().isoformat()
        report = await self.analytics.GetSalesReport(
            analytics_pb2.GetSalesReportRequest(from_date=today, to_date=today), timeout=TIMEOUT
        )
        return {p.product_id: (p.units, p.revenue.amount_minor) for p in report.products}


@pytest.fixture
async def shop(mesh: MeshPlan) -> AsyncIterator[Shop]:
    channels = {
        name: as_edge(mesh, name)
        for name in ("user", "cart", "order", "notification", "analytics")
    }
    try:
        yield Shop(
            user=user_pb2_grpc.UserServiceStub(channels["user"]),
            cart=cart_pb2_grpc.CartServiceStub(channels["cart"]),
            order=order_pb2_grpc.OrderServiceStub(channels["order"]),
            notification=notification_pb2_grpc.NotificationServiceStub(channels["notification"]),
            analytics=analytics_pb2_grpc.AnalyticsServiceStub(channels["analytics"]),
        )
    finally:
        for channel in channels.values():
            await channel.close()


async def test_nats_is_registered_healthy_and_every_client_comes_through_its_sidecar(
    mesh: MeshPlan,
) -> None:
    bus = Nats(mesh)
    assert health_of(mesh, NATS_INSTANCE) == "passing"
    assert health_of(mesh, f"{NATS_INSTANCE}-sidecar-proxy") == "passing"
    [entry] = get_json(f"{mesh.consul_url}/v1/health/service/nats?passing",
                       token=mesh.consul_token)
    assert entry["Service"]["Port"] == bus.settings.port
    # One connection per client process (an instance an earlier test restarted may still
    # be reconnecting), each arriving on the NATS sidecar's mTLS listener: nobody dials
    # NATS directly.
    clients = sorted(i.instance_id for i in mesh.instances() if i.service in bus.clients)

    def connected() -> bool:
        names = sorted(
            c.get("name", "") for c in get_json(f"{bus.monitor_url}/connz")["connections"]
        )
        active = listener_counter(bus.instance, "downstream_cx_active")
        return names == clients and active == len(clients)

    await until(connected, 30, f"exactly {clients} connected through the sidecar")
    assert listener_counter(bus.instance, "ssl.handshake") >= len(clients)
    # make status shows the streams and every durable consumer.
    status = control.render_status(mesh)
    for name in ("USERS", "ORDERS", "PAYMENTS", "DEADLETTER", "notification", "analytics"):
        assert name in status


async def test_a_purchase_is_notified_once_and_counted_once_with_the_customer_copy(
    mesh: MeshPlan, shop: Shop
) -> None:
    user = await shop.customer("Grace Hopper")
    before = await shop.sold_today()

    order = await shop.buy(user.user_id, {"sku-1001": 2, "sku-1003": 1})

    async def notified() -> bool:
        return len(await shop.notifications(user.user_id)) >= 1

    await until(notified, 30, "the confirmation notification")

    async def counted() -> bool:
        after = await shop.sold_today()
        return after.get("sku-1003", (0, 0))[0] > before.get("sku-1003", (0, 0))[0]

    await until(counted, 30, "analytics to count the order")
    await until(lambda: consumers_idle(mesh), 30, "every consumer to ack everything")

    [note] = await shop.notifications(user.user_id)
    assert note.subject == f"Your order {order.order_id} is confirmed"
    after = await shop.sold_today()
    for line in order.lines:
        units, revenue = before.get(line.product_id, (0, 0))
        assert after[line.product_id] == (
            units + line.quantity,
            revenue + line.line_total.amount_minor,
        )
    shown = await shop.get_order(user.user_id, order.order_id)
    assert (shown.customer.email, shown.customer.full_name) == (user.email, user.full_name)
    mail = mesh.run_dir / "mail" / f"{note.notification_id}.eml"
    assert user.email in mail.read_text()


async def test_the_customer_copy_follows_update_profile_and_get_order_works_with_user_stopped(
    mesh: MeshPlan, shop: Shop
) -> None:
    user = await shop.customer()
    order = await shop.buy(user.user_id, {"sku-1002": 1})
    new_email = f"renamed-{uuid.uuid4().hex[:8]}@example.com"
    await shop.user.UpdateProfile(
        user_pb2.UpdateProfileRequest(user_id=user.user_id, email=new_email, full_name="Ada King"),
        timeout=TIMEOUT,
    )

    async def follows() -> bool:
        shown = await shop.get_order(user.user_id, order.order_id)
        return (shown.customer.email, shown.customer.full_name) == (new_email, "Ada King")

    await until(follows, 30, "order's copy of the new email")

    supervisor = Supervisor(mesh)
    supervisor.stop("services:user-1")
    try:
        await until(lambda: health_of(mesh, "user-1") != "passing", 30, "user-1 to leave")
        shown = await shop.get_order(user.user_id, order.order_id)
        assert (shown.customer.email, shown.customer.full_name) == (new_email, "Ada King")
    finally:
        supervisor.start("services:user-1")
        # Back where the next test needs it: passing, and routed to by every caller's
        # Envoy, the edge's included (Consul passes it a moment before they route to it).
        callers = [(Edge(mesh).instance, "user"), *callers_of(mesh, "user")]
        await until(lambda: serving(mesh, callers, mesh.instance("user-1")), 60,
                    "user-1 back in every caller's Envoy", in_thread=True, not_yet=NOT_ANSWERING)


async def test_a_broker_restart_loses_nothing_and_doubles_nothing(
    mesh: MeshPlan, shop: Shop
) -> None:
    user = await shop.customer()
    supervisor = Supervisor(mesh)
    supervisor.stop(f"infra:{NATS_INSTANCE}")
    try:
        # The purchase commits; its events wait in order's and payment's outboxes.
        order = await shop.buy(user.user_id, {"sku-1004": 1})
        assert _unsent(mesh, "order.sqlite3") >= 2  # OrderPlaced, OrderConfirmed
        assert await shop.notifications(user.user_id) == []
    finally:
        supervisor.start(f"infra:{NATS_INSTANCE}")

    async def notified() -> bool:
        return len(await shop.notifications(user.user_id)) >= 1

    await until(notified, 60, "the notification after the broker came back")
    await until(lambda: consumers_idle(mesh), 30, "every consumer to ack everything")
    [note] = await shop.notifications(user.user_id)
    assert note.subject == f"Your order {order.order_id} is confirmed"
    assert _unsent(mesh, "order.sqlite3") == 0


def _unsent(mesh: MeshPlan, db_file: str) -> int:
    """Events a service has committed and not yet published (its outbox backlog)."""
    with sqlite3.connect(f"file:{mesh.data_dir / db_file}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT count(*) FROM outbox WHERE sent_us IS NULL").fetchone()[0])

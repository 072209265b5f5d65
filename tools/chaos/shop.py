"""Customers, purchases and the audit the saga and event scenarios rest on.

A scenario calls each service as the edge forwards a shopper's calls (the edge's sidecar
listener for it, on the host: harness/callers.py), never on a service's own port, which
with pods only the service's own sidecar reaches; the services reach each other only
through their sidecars, which is where the faults bite.
Every scenario registers fresh customers, so everything those customers own (orders,
payments, notifications) was made by that scenario and is audited in full.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from meshmart.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from meshmart.cart.v1 import cart_pb2, cart_pb2_grpc
from meshmart.notification.v1 import notification_pb2, notification_pb2_grpc
from meshmart.order.v1 import order_pb2, order_pb2_grpc
from meshmart.payment.v1 import payment_pb2, payment_pb2_grpc
from meshmart.storefront.v1 import storefront_pb2, storefront_pb2_grpc
from meshmart.user.v1 import user_pb2, user_pb2_grpc

from harness.callers import as_edge
from harness.wait import TimedOut, until
from tools.chaos.probe import NOT_ANSWERING
from tools.mesh.plan import MeshPlan

CARD = payment_pb2.Card(number="4242424242424242", exp_month=12, exp_year=2099, cvc="123")
ADDRESS = order_pb2.Address(
    name="Chaos Monkey", line1="1 Fault Lane", city="Berlin", postal_code="10115", country="DE"
)
# The seed's best-stocked products (services/inventory/seed.py): one unit per order, in
# turn, so a few hundred orders per run leave stock for the rest of a session.
PRODUCTS = ("sku-1009", "sku-1006", "sku-1011", "sku-1020", "sku-1003", "sku-1015")
TIMEOUT = 10.0
# PlaceOrder runs the whole saga; order's own budget for payment alone is 5 s.
PLACE_ORDER_TIMEOUT = 30.0

T = TypeVar("T")


@dataclass
class Stubs:
    user: user_pb2_grpc.UserServiceStub
    cart: cart_pb2_grpc.CartServiceStub
    order: order_pb2_grpc.OrderServiceStub
    payment: payment_pb2_grpc.PaymentServiceStub
    notification: notification_pb2_grpc.NotificationServiceStub
    analytics: analytics_pb2_grpc.AnalyticsServiceStub
    storefront: storefront_pb2_grpc.StorefrontServiceStub


@asynccontextmanager
async def shop(plan: MeshPlan) -> AsyncIterator[Shop]:
    """Channels to each service as the edge, closed at the end."""
    stubs: dict[str, Callable[[grpc.aio.Channel], Any]] = {
        "user": user_pb2_grpc.UserServiceStub,
        "cart": cart_pb2_grpc.CartServiceStub,
        "order": order_pb2_grpc.OrderServiceStub,
        "payment": payment_pb2_grpc.PaymentServiceStub,
        "notification": notification_pb2_grpc.NotificationServiceStub,
        "analytics": analytics_pb2_grpc.AnalyticsServiceStub,
        "storefront": storefront_pb2_grpc.StorefrontServiceStub,
    }
    channels = {name: as_edge(plan, name) for name in stubs}
    try:
        yield Shop(Stubs(**{name: make(channels[name]) for name, make in stubs.items()}))
    finally:
        for channel in channels.values():
            await channel.close()


@dataclass
class Shop:
    stubs: Stubs
    _next_product: int = 0

    async def customers(self, count: int, label: str) -> list[str]:
        """Register ``count`` new customers; their user ids. Two at a time: each costs an
        Argon2 hash, tens of milliseconds of CPU on a shared core."""
        gate = asyncio.Semaphore(2)

        async def one(n: int) -> str:
            async with gate:
                reply = await self.stubs.user.Register(
                    user_pb2.RegisterRequest(
                        email=f"{label}-{n}-{uuid.uuid4().hex[:10]}@chaos.example",
                        password="correct horse battery staple",
                        full_name=f"{label.title()} Customer {n}",
                    ),
                    timeout=TIMEOUT,
                )
            return str(reply.user.user_id)

        return list(await asyncio.gather(*(one(n) for n in range(count))))

    async def buy(self, user_id: str) -> order_pb2.Order:
        """One unit of the next product into the cart, then PlaceOrder (the saga)."""
        product = PRODUCTS[self._next_product % len(PRODUCTS)]
        self._next_product += 1
        await self.stubs.cart.AddItem(
            cart_pb2.AddItemRequest(user_id=user_id, product_id=product, quantity=1),
            timeout=TIMEOUT,
        )
        reply = await self.stubs.order.PlaceOrder(
            order_pb2.PlaceOrderRequest(
                user_id=user_id, idempotency_key=uuid.uuid4().hex, card=CARD,
                shipping_address=ADDRESS,
            ),
            timeout=PLACE_ORDER_TIMEOUT,
        )
        return reply.order  # type: ignore[no-any-return]

    async def orders_of(self, user_id: str) -> list[order_pb2.Order]:
        return await _all_pages(
            self.stubs.order.ListOrders, order_pb2.ListOrdersRequest, user_id, "orders"
        )

    async def payments_of(self, user_id: str) -> list[payment_pb2.Payment]:
        return await _all_pages(
            self.stubs.payment.ListPayments, payment_pb2.ListPaymentsRequest, user_id, "payments"
        )

    async def notifications_of(self, user_id: str) -> list[notification_pb2.Notification]:
        return await _all_pages(
            self.stubs.notification.ListNotifications,
            notification_pb2.ListNotificationsRequest,
            user_id,
            "notifications",
        )

    async def sales(self) -> Sales:
        """Analytics' read model over yesterday and today (UTC; a run may cross midnight)."""
        today = dt.datetime.now(dt.UTC).date()
        report = await self.stubs.analytics.GetSalesReport(
            analytics_pb2.GetSalesReportRequest(
                from_date=(today - dt.timedelta(days=1)).isoformat(), to_date=today.isoformat()
            ),
            timeout=TIMEOUT,
        )
        return Sales(
            orders=sum(d.orders for d in report.days),
            revenue=sum(d.revenue.amount_minor for d in report.days),
            units={p.product_id: p.units for p in report.products},
        )

    async def dashboard(self, user_id: str) -> Any:
        return await self.stubs.storefront.GetDashboard(
            storefront_pb2.GetDashboardRequest(user_id=user_id), timeout=TIMEOUT
        )


async def _all_pages(
    rpc: Callable[..., Any], request_type: Callable[..., Any], user_id: str, field_name: str
) -> list[Any]:
    """Every item of ``user_id`` that the List RPC ``rpc`` returns, page after page."""
    items: list[Any] = []
    token = ""
    while True:
        page = await rpc(
            request_type(user_id=user_id, page_size=100, page_token=token), timeout=TIMEOUT
        )
        items.extend(getattr(page, field_name))
        token = page.next_page_token
        if not token:
            return items


@dataclass(frozen=True)
class Sales:
    orders: int
    revenue: int  # minor units
    units: dict[str, int]

    def minus(self, before: Sales) -> Sales:
        return Sales(
            orders=self.orders - before.orders,
            revenue=self.revenue - before.revenue,
            units={
                p: n - before.units.get(p, 0)
                for p, n in self.units.items()
                if n != before.units.get(p, 0)
            },
        )


class Buyers:
    """The customers of a scenario as a pool: a purchase takes a free customer, so one
    customer never has two purchases in flight (their cart is shared by both)."""

    def __init__(self, shop: Shop, user_ids: list[str]) -> None:
        self.shop = shop
        self.user_ids = user_ids
        self._free: asyncio.Queue[str] = asyncio.Queue()
        for user_id in user_ids:
            self._free.put_nowait(user_id)
        self.outcomes: Counter[str] = Counter()  # order state names PlaceOrder returned
        self.placed: dict[str, str] = {}  # order id -> its state, as PlaceOrder answered

    async def purchase(self, _: int) -> str | None:
        """A harness.load Call: one purchase; its tag is the order's final state."""
        user_id = await self._free.get()
        try:
            order = await self.shop.buy(user_id)
        finally:
            self._free.put_nowait(user_id)
        state = order_pb2.Order.State.Name(order.state)
        self.outcomes[state] += 1
        self.placed[order.order_id] = state
        return state


# --------------------------------------------------------------------------- the audit

CONFIRMED = order_pb2.Order.STATE_CONFIRMED
CANCELLED = order_pb2.Order.STATE_CANCELLED
CAPTURED = payment_pb2.Payment.STATUS_CAPTURED
REFUNDED = payment_pb2.Payment.STATUS_REFUNDED


@dataclass
class OrderAudit:
    """Orders of a scenario's customers against their payments."""

    orders: int = 0
    confirmed: int = 0
    cancelled: int = 0
    stuck: list[str] = field(default_factory=list)  # neither CONFIRMED nor CANCELLED
    cancel_reasons: Counter[str] = field(default_factory=Counter)
    payments: int = 0
    refunded: int = 0
    double_charged: list[str] = field(default_factory=list)  # >1 payment for one order
    kept_charge_of_cancelled: list[str] = field(default_factory=list)  # CAPTURED, cancelled
    confirmed_not_paid: list[str] = field(default_factory=list)  # no CAPTURED for its total
    orphan_payments: list[str] = field(default_factory=list)  # a payment for no order
    confirmed_orders: list[order_pb2.Order] = field(default_factory=list)
    states: dict[str, str] = field(default_factory=dict)  # order id -> its state's name

    @property
    def money_is_right(self) -> bool:
        return not (self.double_charged or self.kept_charge_of_cancelled
                    or self.confirmed_not_paid or self.orphan_payments)

    def summary(self) -> str:
        reasons = ", ".join(f"{r!r} x{n}" for r, n in self.cancel_reasons.most_common(3))
        return (
            f"{self.orders} orders: {self.confirmed} CONFIRMED, {self.cancelled} CANCELLED"
            + (f" ({reasons})" if reasons else "")
            + f", {len(self.stuck)} stuck; {self.payments} payments ({self.refunded} refunded): "
            f"{len(self.double_charged)} double charges, "
            f"{len(self.kept_charge_of_cancelled)} charges kept for cancelled orders, "
            f"{len(self.confirmed_not_paid)} confirmed orders unpaid, "
            f"{len(self.orphan_payments)} payments without an order"
        )


def _reason(text: str) -> str:
    """A cancel reason without its ids, so equal reasons count together."""
    return text.split(":")[0][:80]


async def audit_orders(shop: Shop, user_ids: list[str], settle_within: float = 30) -> OrderAudit:
    """Wait until none of the customers' orders is PENDING (a saga still running or
    recovering) or ``settle_within`` passes, then compare orders and payments."""
    async def settled() -> bool:
        for user_id in user_ids:
            if any(o.state not in (CONFIRMED, CANCELLED) for o in await shop.orders_of(user_id)):
                return False
        return True

    try:
        await until(settled, settle_within, "every order to be CONFIRMED or CANCELLED", step=0.5,
                    not_yet=NOT_ANSWERING)
    except TimedOut:
        pass  # the audit below lists the stuck ones
    audit = OrderAudit()
    for user_id in user_ids:
        orders = {o.order_id: o for o in await shop.orders_of(user_id)}
        payments = await shop.payments_of(user_id)
        by_order: dict[str, list[payment_pb2.Payment]] = {}
        for p in payments:
            by_order.setdefault(p.order_id, []).append(p)
        audit.payments += len(payments)
        audit.refunded += sum(p.status == REFUNDED for p in payments)
        audit.orphan_payments += [p.payment_id for p in payments if p.order_id not in orders]
        for order_id, order in orders.items():
            audit.orders += 1
            audit.states[order_id] = order_pb2.Order.State.Name(order.state)
            paid = by_order.get(order_id, [])
            if len(paid) > 1:
                audit.double_charged.append(order_id)
            captured = [p for p in paid if p.status == CAPTURED]
            if order.state == CONFIRMED:
                audit.confirmed += 1
                audit.confirmed_orders.append(order)
                total = order.total.amount_minor
                if len(captured) != 1 or captured[0].amount.amount_minor != total:
                    audit.confirmed_not_paid.append(order_id)
            elif order.state == CANCELLED:
                audit.cancelled += 1
                audit.cancel_reasons[_reason(order.cancel_reason)] += 1
                if captured:
                    audit.kept_charge_of_cancelled.append(order_id)
            else:
                audit.stuck.append(f"{order_id} {order_pb2.Order.State.Name(order.state)}")
    return audit


@dataclass
class EventAudit:
    """What the asynchronous side made of a scenario's orders."""

    expected_notifications: int = 0
    notifications: int = 0
    missing: list[str] = field(default_factory=list)  # subjects expected and not there
    duplicated: list[str] = field(default_factory=list)  # subjects there more than once
    unexpected: list[str] = field(default_factory=list)  # subjects there and not expected
    mail_files_missing: list[str] = field(default_factory=list)
    sales_expected: Sales | None = None
    sales_seen: Sales | None = None

    @property
    def exact(self) -> bool:
        return (not (self.missing or self.duplicated or self.unexpected
                     or self.mail_files_missing)
                and self.sales_expected == self.sales_seen)

    def summary(self) -> str:
        assert self.sales_expected is not None and self.sales_seen is not None
        return (
            f"notifications {self.notifications} of {self.expected_notifications} expected: "
            f"{len(self.missing)} lost, {len(self.duplicated)} duplicated, "
            f"{len(self.unexpected)} unexpected, {len(self.mail_files_missing)} mails missing; "
            f"analytics +{self.sales_seen.orders} orders / +{self.sales_seen.revenue} revenue "
            f"(expected +{self.sales_expected.orders} / +{self.sales_expected.revenue}), "
            f"units {'exact' if self.sales_seen.units == self.sales_expected.units else 'WRONG'}"
        )


def expected_subjects(orders: list[order_pb2.Order], refunds: int) -> Counter[str]:
    """notification's messages for these orders (services/notification/events.py)."""
    out: Counter[str] = Counter()
    for o in orders:
        verb = "is confirmed" if o.state == CONFIRMED else "was cancelled"
        out[f"Your order {o.order_id} {verb}"] += 1
    if refunds:
        out["(refund notices)"] += refunds
    return out


async def audit_events(
    shop: Shop, plan: MeshPlan, user_ids: list[str], sales_before: Sales
) -> EventAudit:
    """Notifications and analytics of the customers' orders, read once every consumer has
    caught up (the caller waits for that: tools.chaos.scenarios.events_settled)."""
    audit = EventAudit()
    expected_units: Counter[str] = Counter()
    expected_orders = expected_revenue = 0
    for user_id in user_ids:
        orders = await shop.orders_of(user_id)
        refunds = sum(p.status == REFUNDED for p in await shop.payments_of(user_id))
        want = expected_subjects(orders, refunds)
        notes = await shop.notifications_of(user_id)
        got: Counter[str] = Counter(
            "(refund notices)" if n.subject.startswith("Refund of") else n.subject for n in notes
        )
        audit.expected_notifications += sum(want.values())
        audit.notifications += len(notes)
        for subject, n in want.items():
            if got[subject] < n:
                audit.missing.append(subject)
            elif got[subject] > n:
                audit.duplicated.append(subject)
        audit.unexpected += [s for s in got if s not in want]
        mail = plan.run_dir / "mail"
        audit.mail_files_missing += [
            n.notification_id for n in notes if not (mail / f"{n.notification_id}.eml").exists()
        ]
        for o in orders:
            if o.state == CONFIRMED:
                expected_orders += 1
                expected_revenue += o.total.amount_minor
                for line in o.lines:
                    expected_units[line.product_id] += line.quantity
    audit.sales_expected = Sales(expected_orders, expected_revenue, dict(expected_units))
    audit.sales_seen = (await shop.sales()).minus(sales_before)
    return audit

"""AnalyticsService on a real in-process server over a read model built by the real
projection from events (no broker needed: the handlers run as the consumer runs them)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2
from meshmart.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from meshmart.common.v1 import common_pb2
from meshmart.order.v1 import events_pb2 as order_events
from meshmart.order.v1 import order_pb2
from meshmart.payment.v1 import events_pb2 as payment_events
from meshmart.payment.v1 import payment_pb2

from harness.postgres import Databases
from services.analytics import projection
from services.analytics.servicer import AnalyticsServicer, service_spec
from services.analytics.store import MIGRATIONS, SalesReadModel
from services.kit.db import Database
from services.kit.events import new_envelope
from services.kit.testing import running_server
from tests.unit.applied import apply_each

DAY1 = dt.datetime(2026, 3, 1, 10, 0, tzinfo=dt.UTC)
DAY2 = dt.datetime(2026, 3, 2, 23, 59, tzinfo=dt.UTC)


def _stamp(moment: dt.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _eur(minor: int) -> common_pb2.Money:
    return common_pb2.Money(amount_minor=minor, currency="EUR")


def confirmed(order_id: str, when: dt.datetime, lines: dict[str, tuple[int, int]]) -> Any:
    """OrderConfirmed of lines product -> (quantity, unit price)."""
    order = order_pb2.Order(
        order_id=order_id,
        user_id="usr-1",
        state=order_pb2.Order.STATE_CONFIRMED,
        lines=[
            order_pb2.OrderLine(
                product_id=product,
                quantity=quantity,
                unit_price=_eur(price),
                line_total=_eur(quantity * price),
            )
            for product, (quantity, price) in lines.items()
        ],
        total=_eur(sum(q * p for q, p in lines.values())),
        updated_at=_stamp(when),
    )
    return new_envelope(
        "order.OrderConfirmed",
        order_events.OrderConfirmed(order=order),
        source="order",
        occurred_at=when,
    )


def refunded(order_id: str, when: dt.datetime, amount: int) -> Any:
    payment = payment_pb2.Payment(
        payment_id=f"pay-{order_id}",
        order_id=order_id,
        user_id="usr-1",
        amount=_eur(amount),
        status=payment_pb2.Payment.STATUS_REFUNDED,
    )
    return new_envelope(
        "payment.PaymentRefunded",
        payment_events.PaymentRefunded(payment=payment),
        source="payment",
        occurred_at=when,
    )


def apply(db: Database, *envelopes: Any) -> list[bool]:
    return apply_each(db, "analytics", projection.handlers(), envelopes)


@pytest.fixture
def db(databases: Databases) -> Iterator[Database]:
    """Analytics' read model, on SQLite and again on PostgreSQL."""
    database = Database(databases.target("analytics", "analytics.sqlite3"), MIGRATIONS)
    yield database
    database.close()


@pytest.fixture
async def stub(db: Database) -> AsyncIterator[Any]:
    async with running_server([service_spec(AnalyticsServicer(SalesReadModel(db)))]) as target:
        async with grpc.aio.insecure_channel(target) as channel:
            yield analytics_pb2_grpc.AnalyticsServiceStub(channel)


async def report(stub: Any, first: str, last: str) -> analytics_pb2.GetSalesReportResponse:
    response: analytics_pb2.GetSalesReportResponse = await stub.GetSalesReport(
        analytics_pb2.GetSalesReportRequest(from_date=first, to_date=last), timeout=5
    )
    return response


async def test_the_report_lists_every_day_and_each_product_by_revenue(
    db: Database, stub: Any
) -> None:
    apply(
        db,
        confirmed("ord-1", DAY1, {"sku-1": (2, 500), "sku-2": (1, 2000)}),
        confirmed("ord-2", DAY2, {"sku-1": (1, 500)}),
    )
    got = await report(stub, "2026-02-28", "2026-03-03")

    assert [(d.date, d.orders, d.revenue.amount_minor) for d in got.days] == [
        ("2026-02-28", 0, 0),
        ("2026-03-01", 1, 3000),
        ("2026-03-02", 1, 500),
        ("2026-03-03", 0, 0),
    ]
    assert [(p.product_id, p.units, p.revenue.amount_minor) for p in got.products] == [
        ("sku-2", 1, 2000),
        ("sku-1", 3, 1500),
    ]
    popular = await stub.GetPopularProducts(analytics_pb2.GetPopularProductsRequest(), timeout=5)
    assert [(p.product_id, p.units) for p in popular.products] == [("sku-1", 3), ("sku-2", 1)]


async def test_a_refund_counts_on_its_day_whichever_stream_delivers_first(
    db: Database, stub: Any
) -> None:
    # The refund (PAYMENTS) is seen before the confirmation (ORDERS): kept, applied later.
    apply(db, refunded("ord-1", DAY2, 1000), confirmed("ord-1", DAY1, {"sku-1": (2, 500)}))
    # A refund of an order that never confirmed (the saga's compensation) changes nothing.
    apply(db, refunded("ord-cancelled", DAY2, 700))

    got = await report(stub, "2026-03-01", "2026-03-02")
    assert [(d.orders, d.revenue.amount_minor) for d in got.days] == [(1, 1000), (0, -1000)]
    assert [(p.product_id, p.units, p.revenue.amount_minor) for p in got.products] == [
        ("sku-1", 2, 0)
    ]


async def test_an_event_applied_twice_counts_once(db: Database, stub: Any) -> None:
    event = confirmed("ord-1", DAY1, {"sku-1": (1, 500)})
    assert apply(db, event, event) == [True, False]
    # A second confirmation of the same order (another event id) is not counted either.
    apply(db, confirmed("ord-1", DAY1, {"sku-1": (1, 500)}))
    [day] = (await report(stub, "2026-03-01", "2026-03-01")).days
    assert (day.orders, day.revenue.amount_minor) == (1, 500)


@pytest.mark.parametrize(
    ("first", "last", "field"),
    [
        ("2026-3-01", "2026-03-02", "from_date"),
        ("2026-03-01", "yesterday", "to_date"),
        ("2026-03-02", "2026-03-01", "to_date"),
        ("2025-01-01", "2026-03-01", "to_date"),
    ],
)
async def test_bad_ranges_are_invalid_argument_naming_the_field(
    stub: Any, first: str, last: str, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await report(stub, first, last)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (caught.value.details() or "")


async def test_popular_products_limit_is_bounded(stub: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetPopularProducts(analytics_pb2.GetPopularProductsRequest(limit=101), timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT

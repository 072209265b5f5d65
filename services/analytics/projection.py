"""The projection: order and payment events -> the sales read models.

  order.OrderConfirmed     the order counts on its confirmation day: +1 order, +revenue,
                           +units per product
  payment.PaymentRefunded  its revenue is taken back on the refund day (units stay: they
                           were sold), once the order is known to have been confirmed

The ORDERS and PAYMENTS streams are consumed independently, so a refund may be seen
before its order's confirmation: it is stored and applied when the confirmation comes.
Refunds of orders that were never confirmed (the saga's compensation) change nothing.
Every figure derives from event data only (never the wall clock), so replaying the
streams from scratch gives the same read model (rebuild.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from google.protobuf import timestamp_pb2
from meshmart.common.v1 import common_pb2
from meshmart.order.v1 import events_pb2 as order_events_pb2
from meshmart.payment.v1 import events_pb2 as payment_events_pb2

from services.kit.db import Connection
from services.kit.events import Handler, unpack

ORDER_CONFIRMED = "order.OrderConfirmed"
PAYMENT_REFUNDED = "payment.PaymentRefunded"
CONSUMER_NAME = "analytics"
EVENT_TYPES = (ORDER_CONFIRMED, PAYMENT_REFUNDED)


def utc_day(stamp: timestamp_pb2.Timestamp) -> str:
    return stamp.ToDatetime(dt.UTC).date().isoformat()


def handlers() -> Mapping[str, Handler]:
    return {ORDER_CONFIRMED: order_confirmed, PAYMENT_REFUNDED: payment_refunded}


def order_confirmed(conn: Connection, envelope: common_pb2.EventEnvelope) -> None:
    order = unpack(envelope, order_events_pb2.OrderConfirmed).order
    # The confirmation moment; the envelope's time if an old producer left it unset.
    day = utc_day(order.updated_at if order.HasField("updated_at") else envelope.occurred_at)
    currency = order.total.currency
    inserted = conn.execute(
        "INSERT INTO confirmed_orders (order_id, day, currency, total_minor) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (order_id) DO NOTHING",
        (order.order_id, day, currency, order.total.amount_minor),
    )
    if inserted.rowcount == 0:
        return  # one order confirms once, whatever the stream says twice
    conn.executemany(
        "INSERT INTO confirmed_lines (order_id, line_no, product_id, units, revenue_minor)"
        " VALUES (?, ?, ?, ?, ?)",
        [
            (order.order_id, n, line.product_id, line.quantity, line.line_total.amount_minor)
            for n, line in enumerate(order.lines)
        ],
    )
    _add_day(conn, day, orders=1, revenue=order.total.amount_minor, currency=currency)
    for line in order.lines:
        _add_product_day(
            conn, day, line.product_id, line.quantity, line.line_total.amount_minor, currency
        )
        conn.execute(
            "INSERT INTO product_totals (product_id, units) VALUES (?, ?)"
            " ON CONFLICT (product_id) DO UPDATE SET units = product_totals.units + excluded.units",
            (line.product_id, line.quantity),
        )
    _apply_refund_if_known(conn, order.order_id)


def payment_refunded(conn: Connection, envelope: common_pb2.EventEnvelope) -> None:
    payment = unpack(envelope, payment_events_pb2.PaymentRefunded).payment
    conn.execute(
        "INSERT INTO refunds (order_id, payment_id, day, amount_minor) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (order_id) DO NOTHING",
        (
            payment.order_id,
            payment.payment_id,
            utc_day(envelope.occurred_at),
            payment.amount.amount_minor,
        ),
    )
    _apply_refund_if_known(conn, payment.order_id)


def _apply_refund_if_known(conn: Connection, order_id: str) -> None:
    refund = conn.execute(
        "SELECT r.day, o.currency FROM refunds r JOIN confirmed_orders o USING (order_id)"
        " WHERE r.order_id = ? AND r.applied = 0",
        (order_id,),
    ).fetchone()
    if refund is None:
        return  # no refund, already applied, or the order never confirmed (yet)
    day, currency = refund[0], refund[1]
    lines = conn.execute(
        "SELECT product_id, revenue_minor FROM confirmed_lines WHERE order_id = ?", (order_id,)
    ).fetchall()
    _add_day(conn, day, orders=0, revenue=-sum(line[1] for line in lines), currency=currency)
    for product_id, revenue in lines:
        _add_product_day(conn, day, product_id, 0, -revenue, currency)
    conn.execute("UPDATE refunds SET applied = 1 WHERE order_id = ?", (order_id,))


def _add_day(
    conn: Connection, day: str, *, orders: int, revenue: int, currency: str
) -> None:
    conn.execute(
        "INSERT INTO daily_sales (day, orders, revenue_minor, currency) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (day) DO UPDATE SET orders = daily_sales.orders + excluded.orders,"
        " revenue_minor = daily_sales.revenue_minor + excluded.revenue_minor",
        (day, orders, revenue, currency),
    )


def _add_product_day(
    conn: Connection, day: str, product_id: str, units: int, revenue: int, currency: str
) -> None:
    conn.execute(
        "INSERT INTO product_daily_sales (day, product_id, units, revenue_minor, currency)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (day, product_id) DO UPDATE SET"
        " units = product_daily_sales.units + excluded.units,"
        " revenue_minor = product_daily_sales.revenue_minor + excluded.revenue_minor",
        (day, product_id, units, revenue, currency),
    )

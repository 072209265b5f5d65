"""The analytics read models (CQRS read side) in SQLite, and the queries on them.

Written only by the projection (projection.py) from events; read by the RPCs. Tables:

  confirmed_orders / confirmed_lines   what each confirmed order sold (to undo on refund)
  refunds                              refunds seen, applied once their order is known
  daily_sales                          per UTC day: confirmed orders, revenue
  product_daily_sales                  per day and product: units, revenue
  product_totals                       per product, all time: units (popular products)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from services.kit.db import Database
from services.kit.events import CONSUMER_MIGRATION

DB_FILE = "analytics.sqlite3"

SCHEMA_V1 = """
CREATE TABLE confirmed_orders (
    order_id     TEXT PRIMARY KEY,
    day          TEXT NOT NULL,            -- UTC day of the confirmation, YYYY-MM-DD
    currency     TEXT NOT NULL,
    total_minor  INTEGER NOT NULL
);
CREATE TABLE confirmed_lines (
    order_id      TEXT NOT NULL REFERENCES confirmed_orders (order_id),
    line_no       INTEGER NOT NULL,
    product_id    TEXT NOT NULL,
    units         INTEGER NOT NULL,
    revenue_minor INTEGER NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
CREATE TABLE refunds (
    order_id     TEXT PRIMARY KEY,         -- one charge per order, refunded in full
    payment_id   TEXT NOT NULL,
    day          TEXT NOT NULL,            -- UTC day of the refund
    amount_minor INTEGER NOT NULL,
    applied      INTEGER NOT NULL DEFAULT 0 CHECK (applied IN (0, 1))
);
CREATE TABLE daily_sales (
    day           TEXT PRIMARY KEY,
    orders        INTEGER NOT NULL,
    revenue_minor INTEGER NOT NULL,
    currency      TEXT NOT NULL
);
CREATE TABLE product_daily_sales (
    day           TEXT NOT NULL,
    product_id    TEXT NOT NULL,
    units         INTEGER NOT NULL,
    revenue_minor INTEGER NOT NULL,
    currency      TEXT NOT NULL,
    PRIMARY KEY (day, product_id)
);
CREATE TABLE product_totals (
    product_id TEXT PRIMARY KEY,
    units      INTEGER NOT NULL
);
"""

MIGRATIONS = [SCHEMA_V1, CONSUMER_MIGRATION]
DEFAULT_CURRENCY = "EUR"


@dataclass(frozen=True)
class DaySales:
    day: str
    orders: int
    revenue_minor: int
    currency: str


@dataclass(frozen=True)
class ProductSales:
    product_id: str
    units: int
    revenue_minor: int
    currency: str


@dataclass(frozen=True)
class SalesReport:
    days: list[DaySales]
    products: list[ProductSales]


class SalesReadModel:
    """The queries of the read side."""

    def __init__(self, db: Database, currency: str = DEFAULT_CURRENCY) -> None:
        self.db = db
        self._currency = currency

    def sales_report(self, first: dt.date, last: dt.date) -> SalesReport:
        conn = self.db.read()
        lo, hi = first.isoformat(), last.isoformat()
        stored = {
            row["day"]: row
            for row in conn.execute(
                "SELECT day, orders, revenue_minor, currency FROM daily_sales"
                " WHERE day BETWEEN ? AND ?",
                (lo, hi),
            )
        }
        days = []
        for offset in range((last - first).days + 1):
            day = (first + dt.timedelta(days=offset)).isoformat()
            row = stored.get(day)
            days.append(
                DaySales(day, row["orders"], row["revenue_minor"], row["currency"])
                if row is not None
                else DaySales(day, 0, 0, self._currency)
            )
        products = [
            ProductSales(row[0], row[1], row[2], row[3])
            for row in conn.execute(
                """
                SELECT product_id, sum(units), sum(revenue_minor), max(currency)
                  FROM product_daily_sales WHERE day BETWEEN ? AND ?
                 GROUP BY product_id
                HAVING sum(units) <> 0 OR sum(revenue_minor) <> 0
                 ORDER BY sum(revenue_minor) DESC, product_id
                """,
                (lo, hi),
            )
        ]
        return SalesReport(days=days, products=products)

    def popular_products(self, limit: int) -> list[tuple[str, int]]:
        rows = self.db.read().execute(
            "SELECT product_id, units FROM product_totals WHERE units > 0"
            " ORDER BY units DESC, product_id LIMIT ?",
            (limit,),
        )
        return [(row[0], row[1]) for row in rows]

    def sales_range(self) -> tuple[dt.date, dt.date] | None:
        """First and last day with any figure (for comparing whole read models)."""
        row = self.db.read().execute("SELECT min(day), max(day) FROM product_daily_sales")
        first, last = row.fetchone()
        if first is None:
            return None
        return dt.date.fromisoformat(first), dt.date.fromisoformat(last)

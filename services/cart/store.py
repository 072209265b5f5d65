"""SQLite storage of carts: one row per (user, product)."""

from __future__ import annotations

import time

from services.kit.db import Connection, Database, Row, from_row
from services.kit.errors import InvalidArgument, NotFound

from .model import MAX_LINES, MAX_QUANTITY, CartLine, Product

SCHEMA_V1 = f"""
CREATE TABLE cart_items (
    user_id          TEXT NOT NULL,
    product_id       TEXT NOT NULL,
    name             TEXT NOT NULL,
    quantity         INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND {MAX_QUANTITY}),
    unit_price_minor INTEGER NOT NULL CHECK (unit_price_minor >= 0),
    currency         TEXT NOT NULL,
    -- Lines are shown in the order they were first added.
    added_us         INTEGER NOT NULL,
    PRIMARY KEY (user_id, product_id)
) WITHOUT ROWID;
"""

MIGRATIONS = [SCHEMA_V1]

_LINE_COLUMNS = "product_id, name, quantity, unit_price_minor, currency"


def _row_to_line(row: Row) -> CartLine:
    return from_row(CartLine, row)


def _too_many(total: int) -> InvalidArgument:
    return InvalidArgument(
        field="quantity",
        description=f"the cart would hold {total} of this product; at most {MAX_QUANTITY}",
    )


def not_in_cart(user_id: str, product_id: str) -> NotFound:
    return NotFound(f"product_id: product {product_id!r} is not in the cart of user {user_id!r}")


class CartStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def lines(self, user_id: str) -> tuple[CartLine, ...]:
        return self._lines(self.db.read(), user_id)

    def add(self, user_id: str, product: Product, quantity: int) -> tuple[CartLine, ...]:
        """Add `quantity` of `product`, refreshing its name and price to the catalog's."""
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT quantity FROM cart_items WHERE user_id = ? AND product_id = ?",
                (user_id, product.product_id),
            ).fetchone()
            if row is None:
                lines = conn.execute(
                    "SELECT count(*) FROM cart_items WHERE user_id = ?", (user_id,)
                ).fetchone()[0]
                if lines >= MAX_LINES:
                    raise InvalidArgument(
                        field="product_id",
                        description=f"the cart already holds {MAX_LINES} distinct products",
                    )
            total = quantity + (row["quantity"] if row is not None else 0)
            if total > MAX_QUANTITY:
                raise _too_many(total)
            conn.execute(
                "INSERT INTO cart_items (user_id, product_id, name, quantity, unit_price_minor,"
                " currency, added_us) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (user_id, product_id) DO UPDATE SET quantity = excluded.quantity,"
                " name = excluded.name, unit_price_minor = excluded.unit_price_minor,"
                " currency = excluded.currency",
                (
                    user_id,
                    product.product_id,
                    product.name,
                    total,
                    product.unit_price_minor,
                    product.currency,
                    time.time_ns() // 1000,
                ),
            )
            return self._lines(conn, user_id)

    def has_line(self, user_id: str, product_id: str) -> bool:
        row = (
            self.db.read()
            .execute(
                "SELECT 1 FROM cart_items WHERE user_id = ? AND product_id = ?",
                (user_id, product_id),
            )
            .fetchone()
        )
        return row is not None

    def set_quantity(self, user_id: str, product: Product, quantity: int) -> tuple[CartLine, ...]:
        """Set the quantity of a line already in the cart, refreshing name and price."""
        with self.db.transaction() as conn:
            updated = conn.execute(
                "UPDATE cart_items SET quantity = ?, name = ?, unit_price_minor = ?,"
                " currency = ? WHERE user_id = ? AND product_id = ?",
                (
                    quantity,
                    product.name,
                    product.unit_price_minor,
                    product.currency,
                    user_id,
                    product.product_id,
                ),
            ).rowcount
            if updated == 0:
                raise not_in_cart(user_id, product.product_id)
            return self._lines(conn, user_id)

    def remove(self, user_id: str, product_id: str) -> tuple[CartLine, ...]:
        with self.db.transaction() as conn:
            conn.execute(
                "DELETE FROM cart_items WHERE user_id = ? AND product_id = ?",
                (user_id, product_id),
            )
            return self._lines(conn, user_id)

    def clear(self, user_id: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM cart_items WHERE user_id = ?", (user_id,))

    @staticmethod
    def _lines(conn: Connection, user_id: str) -> tuple[CartLine, ...]:
        rows = conn.execute(
            f"SELECT {_LINE_COLUMNS} FROM cart_items WHERE user_id = ?"
            " ORDER BY added_us, product_id",
            (user_id,),
        ).fetchall()
        return tuple(_row_to_line(row) for row in rows)

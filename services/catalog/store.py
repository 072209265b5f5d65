"""The catalog's SQLite file: the products table, its seed and the loader."""

from __future__ import annotations

from collections.abc import Iterable

from services.catalog.domain import Catalog, Product
from services.catalog.seed import CURRENCY, SEED_PRODUCTS, SeedProduct
from services.kit.db import Database, from_row

DB_FILE = "catalog.sqlite3"

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE products (
        product_id  TEXT PRIMARY KEY,
        name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
        description TEXT NOT NULL DEFAULT '',
        category    TEXT NOT NULL CHECK (category = lower(category) AND category <> ''),
        price_minor INTEGER NOT NULL CHECK (price_minor >= 0),
        currency    TEXT NOT NULL CHECK (length(currency) = 3),
        image_url   TEXT NOT NULL DEFAULT '',
        popularity  INTEGER NOT NULL DEFAULT 0 CHECK (popularity BETWEEN 0 AND 1000000)
    );
    CREATE INDEX products_by_category ON products (category, product_id);
    """,
)


class ProductStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def seed(self, products: Iterable[SeedProduct]) -> int:
        """Insert the seed products that are missing; returns how many were added.

        Idempotent, and safe when both catalog instances start at once: the write lock
        serialises them and ON CONFLICT DO NOTHING never touches an existing row.
        """
        rows = [
            (
                p.product_id,
                p.name,
                p.description,
                p.category,
                p.price_minor,
                CURRENCY,
                p.image_url,
                p.popularity,
            )
            for p in products
        ]
        with self.db.transaction() as conn:
            return conn.executemany(
                "INSERT INTO products (product_id, name, description, category,"
                " price_minor, currency, image_url, popularity) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (product_id) DO NOTHING",
                rows,
            ).rowcount

    def load_all(self) -> list[Product]:
        rows = self.db.read().execute(
            "SELECT product_id, name, description, category, price_minor, currency,"
            " image_url, popularity FROM products ORDER BY product_id"
        )
        return [from_row(Product, row) for row in rows]


def load_catalog(db: Database) -> tuple[Catalog, int]:
    """Seed what is missing, then snapshot every product; returns (catalog, rows added)."""
    store = ProductStore(db)
    added = store.seed(SEED_PRODUCTS)
    return Catalog(store.load_all()), added

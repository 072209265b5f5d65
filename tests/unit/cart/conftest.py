"""A real cart server in-process, priced by a real catalog server in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from harness.postgres import Databases
from services.cart.store import MIGRATIONS
from services.catalog.servicer import CatalogServicer, service_spec
from services.catalog.store import DB_FILE as CATALOG_DB_FILE
from services.catalog.store import MIGRATIONS as CATALOG_MIGRATIONS
from services.catalog.store import load_catalog
from services.kit.db import Database
from services.kit.testing import running_server
from tests.unit.cart.harness import CartHarness, running_cart


@pytest.fixture
async def catalog_target(databases: Databases) -> AsyncIterator[str]:
    """The real catalog service with its seed products."""
    db = Database(databases.target("catalog", CATALOG_DB_FILE), CATALOG_MIGRATIONS)
    catalog, _ = load_catalog(db)
    try:
        async with running_server([service_spec(CatalogServicer(catalog))]) as target:
            yield target
    finally:
        db.close()


@pytest.fixture
def cart_db(databases: Databases) -> Iterator[Database]:
    """Cart's database, on SQLite and again on PostgreSQL."""
    db = Database(databases.target("cart", "cart.sqlite3"), MIGRATIONS)
    yield db
    db.close()


@pytest.fixture
async def cart(cart_db: Database, catalog_target: str) -> AsyncIterator[CartHarness]:
    async with running_cart(cart_db, catalog_target) as harness:
        yield harness

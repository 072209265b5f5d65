"""Wiring of the catalog service: its database -> the loaded catalog -> servicer."""

from __future__ import annotations

from contextlib import AsyncExitStack

from services.catalog.servicer import CatalogServicer, service_spec
from services.catalog.store import DB_FILE, MIGRATIONS, load_catalog
from services.kit.config import ServiceConfig
from services.kit.db import open_database
from services.kit.logging import get_logger
from services.kit.server import Service, opened

log = get_logger("catalog")


def build(config: ServiceConfig, stack: AsyncExitStack) -> Service:
    db = opened(stack, open_database(config, DB_FILE, MIGRATIONS))
    catalog, added = load_catalog(db)
    log.info("catalog.loaded", products=len(catalog), seeded=added)
    return Service(specs=[service_spec(CatalogServicer(catalog))])

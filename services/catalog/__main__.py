"""``python -m services.catalog``: serve CatalogService."""

from __future__ import annotations

from services.catalog.servicer import CatalogServicer, service_spec
from services.catalog.store import DB_FILE, MIGRATIONS, load_catalog
from services.kit.config import load_config
from services.kit.db import Database
from services.kit.logging import get_logger
from services.kit.server import run, serve

log = get_logger("catalog")


async def main() -> None:
    config = load_config("catalog")
    db = Database(config.data_dir / DB_FILE, MIGRATIONS)
    try:
        catalog, added = load_catalog(db)
        log.info("catalog.loaded", products=len(catalog), seeded=added)
        await serve(config, [service_spec(CatalogServicer(catalog))])
    finally:
        db.close()


if __name__ == "__main__":
    run(main)

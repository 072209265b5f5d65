"""``python -m services.inventory``: serve InventoryService, with the expiry sweeper."""

from __future__ import annotations

from services.inventory.events import CONSUMER_NAME, consumed_events
from services.inventory.seed import OPENING_STOCK
from services.inventory.servicer import InventoryServicer, service_spec
from services.inventory.settings import load_settings
from services.inventory.store import DB_FILE, MIGRATIONS, StockLedger
from services.inventory.sweeper import ExpirySweeper
from services.kit.config import load_config
from services.kit.db import Database
from services.kit.events import ServiceEvents, consumers_for
from services.kit.logging import get_logger
from services.kit.server import run, serve

log = get_logger("inventory")


async def main() -> None:
    config = load_config("inventory")
    settings = load_settings()
    db = Database(config.data_dir / DB_FILE, MIGRATIONS)
    try:
        ledger = StockLedger(db)
        added = ledger.seed(OPENING_STOCK)
        log.info("inventory.seeded", products_added=added)
        sweeper = ExpirySweeper(ledger, interval_seconds=settings.sweep_interval_seconds)
        # Off without MESHMART_NATS_URL (then only the saga releases stock).
        events = ServiceEvents.from_env(
            config,
            lambda bus, event_settings: consumers_for(
                bus,
                db,
                name=CONSUMER_NAME,
                handlers=consumed_events(ledger),
                settings=event_settings,
            ),
        )
        try:
            await serve(
                config,
                [service_spec(InventoryServicer(ledger))],
                on_start=[sweeper.start, events.start],
                on_stop=sweeper.stop,
            )
        finally:
            await events.close()
    finally:
        db.close()


if __name__ == "__main__":
    run(main)

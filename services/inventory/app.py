"""Wiring of the inventory service: its seeded ledger -> servicer, the expiry sweeper,
and the consumer of the events that release stock (off without MESHMART_NATS_URL: then
only the saga releases stock)."""

from __future__ import annotations

from contextlib import AsyncExitStack

from services.inventory.events import CONSUMER_NAME, consumed_events
from services.inventory.seed import OPENING_STOCK
from services.inventory.servicer import InventoryServicer, service_spec
from services.inventory.settings import InventorySettings, load_settings
from services.inventory.store import DB_FILE, MIGRATIONS, StockLedger
from services.inventory.sweeper import ExpirySweeper
from services.kit.config import ServiceConfig
from services.kit.db import open_database
from services.kit.events import EventSettings, ServiceEvents, consumers_for
from services.kit.logging import get_logger
from services.kit.server import Service, opened

log = get_logger("inventory")


def build(
    config: ServiceConfig,
    stack: AsyncExitStack,
    settings: InventorySettings | None = None,
    *,
    event_settings: EventSettings | None = None,
) -> Service:
    settings = settings or load_settings()
    db = opened(stack, open_database(config, DB_FILE, MIGRATIONS))
    ledger = StockLedger(db)
    added = ledger.seed(OPENING_STOCK)
    log.info("inventory.seeded", products_added=added)
    sweeper = ExpirySweeper(ledger, interval_seconds=settings.sweep_interval_seconds)
    events = opened(stack, ServiceEvents.from_env(
        config,
        lambda bus, settings: consumers_for(
            bus, db, name=CONSUMER_NAME, handlers=consumed_events(ledger), settings=settings
        ),
        settings=event_settings,
    ))
    return Service(
        specs=[service_spec(InventoryServicer(ledger))],
        on_start=[sweeper.start],
        on_stop=[sweeper.stop],
        events=events,
    )

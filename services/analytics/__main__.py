"""``python -m services.analytics``: serve AnalyticsService and keep its read models
current from the ORDERS and PAYMENTS streams."""

from __future__ import annotations

from services.analytics.projection import CONSUMER_NAME, handlers
from services.analytics.servicer import AnalyticsServicer, service_spec
from services.analytics.store import DB_FILE, MIGRATIONS, SalesReadModel
from services.kit.config import load_config
from services.kit.db import Database
from services.kit.events import ServiceEvents, consumers_for
from services.kit.server import run, serve


async def main() -> None:
    config = load_config("analytics")
    db = Database(config.data_dir / DB_FILE, MIGRATIONS)
    # Off without MESHMART_NATS_URL: the read model then stays as it is.
    events = ServiceEvents.from_env(
        config,
        lambda bus, event_settings: consumers_for(
            bus, db, name=CONSUMER_NAME, handlers=handlers(), settings=event_settings
        ),
    )
    try:
        await serve(
            config, [service_spec(AnalyticsServicer(SalesReadModel(db)))], on_start=events.start
        )
    finally:
        await events.close()
        db.close()


if __name__ == "__main__":
    run(main)

"""`python -m services.order`: the order service.

Upstreams: MESHMART_UPSTREAM_USER, _CART, _INVENTORY, _PAYMENT (host:port). Saga
timeouts and the reservation TTL: see settings.py.
"""

from __future__ import annotations

from services.kit.clients import connect
from services.kit.config import load_config
from services.kit.db import Database
from services.kit.events import ServiceEvents, consumers_for
from services.kit.outbox import OutboxRelay
from services.kit.server import run, serve

from .app import UPSTREAMS, build_order_service
from .events import CONSUMER_NAME, consumed_events
from .settings import load_order_settings
from .store import MIGRATIONS


async def main() -> None:
    config = load_config("order")
    settings = load_order_settings()
    channels = {name: connect(config, name) for name in UPSTREAMS}
    db = Database(config.data_dir / "order.sqlite3", MIGRATIONS)
    service = build_order_service(db, channels, settings)
    # Off without MESHMART_NATS_URL: events then wait in the outbox.
    events = ServiceEvents.from_env(
        config,
        lambda bus, event_settings: [
            OutboxRelay(db, bus, holder=config.instance_id, outbox=service.outbox),
            *consumers_for(
                bus, db, name=CONSUMER_NAME, handlers=consumed_events(), settings=event_settings
            ),
        ],
    )
    try:
        # Startup recovery runs once the server is up: orders a previous run left
        # unfinished are confirmed or cancelled before anything else is resumed.
        await serve(config, [service.spec], on_start=[events.start, service.saga.start])
    finally:
        # After the drain: sagas still running are interrupted here and finished by the
        # next start, exactly as after a crash.
        await service.saga.close()
        # Events the relay has not published yet stay in the outbox for the next start.
        await events.close()
        for channel in channels.values():
            await channel.close()
        db.close()


if __name__ == "__main__":
    run(main)

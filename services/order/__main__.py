"""`python -m services.order`: the order service.

Upstreams: MESHMART_UPSTREAM_USER, _CART, _INVENTORY, _PAYMENT (host:port). Saga
timeouts and the reservation TTL: see settings.py.
"""

from __future__ import annotations

from services.kit.clients import connect
from services.kit.config import load_config
from services.kit.db import Database
from services.kit.server import run, serve

from .app import UPSTREAMS, build_order_service
from .settings import load_order_settings
from .store import MIGRATIONS


async def main() -> None:
    config = load_config("order")
    settings = load_order_settings()
    channels = {name: connect(config, name) for name in UPSTREAMS}
    db = Database(config.data_dir / "order.sqlite3", MIGRATIONS)
    service = build_order_service(db, channels, settings)
    try:
        # Startup recovery runs once the server is up: orders a previous run left
        # unfinished are confirmed or cancelled before anything else is resumed.
        await serve(config, [service.spec], on_start=service.saga.start)
    finally:
        # After the drain: sagas still running are interrupted here and finished by the
        # next start, exactly as after a crash.
        await service.saga.close()
        for channel in channels.values():
            await channel.close()
        db.close()


if __name__ == "__main__":
    run(main)

"""`python -m services.payment`: one payment instance.

Every instance of payment must use the same MESHMART_DATA_DIR: idempotency keys are
unique per database file, so two instances share one file to never charge twice.
"""

from __future__ import annotations

import datetime as dt

from services.kit.config import load_config
from services.kit.db import Database
from services.kit.events import ServiceEvents
from services.kit.outbox import OutboxRelay
from services.kit.server import run, serve

from .cards import authorize
from .domain import PaymentProcessor
from .faults import FaultInjector
from .model import new_id
from .servicer import service_specs
from .settings import load_payment_settings
from .store import MIGRATIONS, PaymentStore


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def main() -> None:
    config = load_config("payment")
    settings = load_payment_settings()
    db = Database(config.data_dir / "payment.sqlite3", MIGRATIONS)
    store = PaymentStore(db, new_id)
    # Off without MESHMART_NATS_URL: events then wait in the outbox.
    events = ServiceEvents.from_env(
        config,
        lambda bus, _: [OutboxRelay(db, bus, holder=config.instance_id, outbox=store.outbox)],
    )
    try:
        processor = PaymentProcessor(store, authorize, utc_now)
        faults = FaultInjector(settings.initial_fault)
        await serve(config, service_specs(processor, faults), on_start=events.start)
    finally:
        await events.close()
        db.close()


if __name__ == "__main__":
    run(main)

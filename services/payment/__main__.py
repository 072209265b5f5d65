"""`python -m services.payment`: one payment instance.

Every instance of payment must use the same MESHMART_DATA_DIR: idempotency keys are
unique per database file, so two instances share one file to never charge twice.
"""

from __future__ import annotations

import datetime as dt

from services.kit.config import load_config
from services.kit.db import Database
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
    try:
        processor = PaymentProcessor(PaymentStore(db, new_id), authorize, utc_now)
        faults = FaultInjector(settings.initial_fault)
        await serve(config, service_specs(processor, faults))
    finally:
        db.close()


if __name__ == "__main__":
    run(main)

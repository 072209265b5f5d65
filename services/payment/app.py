"""Wiring of the payment service: its database -> PaymentProcessor -> both servicers
(sharing one fault knob), and the relay of its outbox (off without MESHMART_NATS_URL:
events then wait there).

Every instance of payment must use the same MESHMART_DATA_DIR: idempotency keys are
unique per database file, so two instances share one file to never charge twice.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from services.kit.clock import utc_now
from services.kit.config import ServiceConfig
from services.kit.db import open_database
from services.kit.events import EventSettings, ServiceEvents
from services.kit.outbox import OutboxRelay
from services.kit.server import Service, opened

from .domain import PaymentProcessor, authorize
from .faults import FaultInjector
from .model import new_id
from .servicer import service_specs
from .settings import PaymentSettings, load_settings
from .store import MIGRATIONS, PaymentStore


def build(
    config: ServiceConfig,
    stack: AsyncExitStack,
    settings: PaymentSettings | None = None,
    *,
    event_settings: EventSettings | None = None,
) -> Service:
    settings = settings or load_settings()
    db = opened(stack, open_database(
        config, "payment.sqlite3", MIGRATIONS, synchronous=settings.synchronous
    ))
    store = PaymentStore(db, new_id)
    events = opened(stack, ServiceEvents.from_env(
        config,
        lambda bus, _: [OutboxRelay(db, bus, holder=config.instance_id, outbox=store.outbox)],
        settings=event_settings,
    ))
    processor = PaymentProcessor(store, authorize, utc_now)
    faults = FaultInjector(settings.initial_fault)
    return Service(specs=service_specs(processor, faults), events=events)

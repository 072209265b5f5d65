"""Wiring of the analytics service: its read model, kept current from the ORDERS and
PAYMENTS streams (off without MESHMART_NATS_URL: the read model then stays as it is)."""

from __future__ import annotations

from contextlib import AsyncExitStack

from services.analytics.projection import CONSUMER_NAME, handlers
from services.analytics.servicer import AnalyticsServicer, service_spec
from services.analytics.store import DB_FILE, MIGRATIONS, SalesReadModel
from services.kit.config import ServiceConfig
from services.kit.db import open_database
from services.kit.events import EventSettings, ServiceEvents, consumers_for
from services.kit.server import Service, opened


def build(
    config: ServiceConfig, stack: AsyncExitStack, *, event_settings: EventSettings | None = None
) -> Service:
    db = opened(stack, open_database(config, DB_FILE, MIGRATIONS))
    events = opened(stack, ServiceEvents.from_env(
        config,
        lambda bus, settings: consumers_for(
            bus, db, name=CONSUMER_NAME, handlers=handlers(), settings=settings
        ),
        settings=event_settings,
    ))
    return Service(specs=[service_spec(AnalyticsServicer(SalesReadModel(db)))], events=events)

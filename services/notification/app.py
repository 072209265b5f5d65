"""Wiring of the notification service: the consumer of the order, payment and user
events that become notifications (off without MESHMART_NATS_URL: then nothing is
consumed and nothing is written), and the servicer that lists them."""

from __future__ import annotations

from contextlib import AsyncExitStack

from services.kit.config import ServiceConfig
from services.kit.db import open_database
from services.kit.events import EventSettings, ServiceEvents, consumers_for
from services.kit.logging import get_logger
from services.kit.server import Service, opened
from services.notification.events import CONSUMER_NAME, Notifier
from services.notification.mailbox import Mailbox
from services.notification.servicer import NotificationServicer, service_spec
from services.notification.settings import load_settings
from services.notification.store import DB_FILE, MIGRATIONS, NotificationStore

log = get_logger("notification")


def build(
    config: ServiceConfig, stack: AsyncExitStack, *, event_settings: EventSettings | None = None
) -> Service:
    settings = load_settings(config)
    db = opened(stack, open_database(config, DB_FILE, MIGRATIONS))
    notifier = Notifier(Mailbox(settings.mail_dir))
    events = opened(stack, ServiceEvents.from_env(
        config,
        lambda bus, settings: consumers_for(
            bus, db, name=CONSUMER_NAME, handlers=notifier.handlers(), settings=settings
        ),
        settings=event_settings,
    ))
    log.info("notification.mailbox", directory=str(settings.mail_dir))
    return Service(
        specs=[service_spec(NotificationServicer(NotificationStore(db)))], events=events
    )

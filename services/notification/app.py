"""Wiring of the notification service: the consumer of the order, payment and user
events that become notifications (off without MESHMART_NATS_URL: then nothing is
consumed and nothing is written), and the servicer that lists them."""

from __future__ import annotations

from services.kit.config import ServiceConfig
from services.kit.db import Database
from services.kit.events import ServiceEvents, consumers_for
from services.kit.logging import get_logger
from services.kit.server import Service
from services.notification.events import CONSUMER_NAME, Notifier
from services.notification.mailbox import Mailbox
from services.notification.servicer import NotificationServicer, service_spec
from services.notification.settings import load_settings
from services.notification.store import DB_FILE, MIGRATIONS, NotificationStore

log = get_logger("notification")


def build(config: ServiceConfig) -> Service:
    settings = load_settings(config)
    db = Database(config.data_dir / DB_FILE, MIGRATIONS)
    notifier = Notifier(Mailbox(settings.mail_dir))
    events = ServiceEvents.from_env(
        config,
        lambda bus, event_settings: consumers_for(
            bus, db, name=CONSUMER_NAME, handlers=notifier.handlers(), settings=event_settings
        ),
    )
    log.info("notification.mailbox", directory=str(settings.mail_dir))
    return Service(
        specs=[service_spec(NotificationServicer(NotificationStore(db)))],
        on_start=[events.start],
        resources=[db, events],
    )

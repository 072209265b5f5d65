"""The in-process shop (harness/shop.py) with its asynchronous half switched on.

Every service is built by its own ``app.build`` with events on, on a real nats-server,
so each runs exactly the workers its main starts: the outbox relays of user, order and
payment; the consumers of order (UserUpdated) and inventory (OrderCancelled); and the
notification and analytics services, each a gRPC server and its consumers.

    async with running_events(tmp_path, nats_url) as (shop, events):
        ...
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import grpc
from meshmart.analytics.v1 import analytics_pb2_grpc
from meshmart.notification.v1 import notification_pb2, notification_pb2_grpc

from harness.shop import TIMEOUT, Gate, Kept, Shop, running_shop, service_config
from services.analytics import app as analytics_app
from services.analytics.store import DB_FILE as ANALYTICS_DB_FILE
from services.analytics.store import MIGRATIONS as ANALYTICS_MIGRATIONS
from services.kit.db import Database
from services.kit.events import EventBus, EventConsumer, EventSettings, ServiceEvents
from services.kit.outbox import OutboxRelay
from services.kit.testing import running_service
from services.notification import app as notification_app
from services.notification.settings import load_settings as notification_settings

# Quick retries, so a test that makes a handler fail does not wait a second per delivery.
SETTINGS = EventSettings(max_deliveries=5, retry_delay_seconds=0.05, ack_wait_seconds=5.0)


@dataclass
class EventShop:
    # A client of the test's own, to publish as another service would.
    bus: EventBus
    relays: dict[str, OutboxRelay]
    consumers: list[EventConsumer]
    notification: notification_pb2_grpc.NotificationServiceAsyncStub
    analytics: analytics_pb2_grpc.AnalyticsServiceAsyncStub
    # The analytics read model, on a connection of the test's own.
    analytics_db: Database
    mail_dir: Path

    def outbox_empty(self) -> bool:
        return all(relay.pending_count() == 0 for relay in self.relays.values())

    async def notifications(self, user_id: str) -> list[notification_pb2.Notification]:
        response: notification_pb2.ListNotificationsResponse = (
            await self.notification.ListNotifications(
                notification_pb2.ListNotificationsRequest(user_id=user_id, page_size=100),
                timeout=TIMEOUT,
            )
        )
        return list(response.notifications)


def _stub(factory: Any, channel: grpc.aio.Channel) -> Any:
    return factory(channel)


def _workers(
    events: Mapping[str, ServiceEvents],
) -> tuple[dict[str, OutboxRelay], list[EventConsumer]]:
    """Each service's outbox relay, by service, and every consumer."""
    workers = [(name, worker) for name, each in events.items() for worker in each.workers]
    relays = {name: w for name, w in workers if isinstance(w, OutboxRelay)}
    return relays, [w for _, w in workers if isinstance(w, EventConsumer)]


@contextlib.asynccontextmanager
async def running_events(
    data_dir: Path, nats_url: str, *, gates: Mapping[str, Gate] | None = None
) -> AsyncIterator[tuple[Shop, EventShop]]:
    """The shop, and notification and analytics, with their events on ``nats_url``."""
    settings = replace(SETTINGS, nats_url=nats_url)
    async with contextlib.AsyncExitStack() as stack:
        shop = await stack.enter_async_context(
            running_shop(data_dir, gates=gates, event_settings=settings)
        )
        targets: dict[str, str] = {}
        events = dict(shop.events)
        for name, app in (("notification", notification_app), ("analytics", analytics_app)):
            kept = Kept(partial(app.build, event_settings=settings))
            targets[name] = await stack.enter_async_context(
                running_service(service_config(name, data_dir), kept)
            )
            assert kept.events is not None
            events[name] = kept.events
        relays, consumers = _workers(events)

        bus = EventBus(nats_url, name="event-shop")
        await bus.start()
        stack.push_async_callback(bus.close)
        analytics_db = Database(data_dir / ANALYTICS_DB_FILE, ANALYTICS_MIGRATIONS)
        stack.callback(analytics_db.close)
        notification_channel = await stack.enter_async_context(
            grpc.aio.insecure_channel(targets["notification"])
        )
        analytics_channel = await stack.enter_async_context(
            grpc.aio.insecure_channel(targets["analytics"])
        )
        yield shop, EventShop(
            bus=bus,
            relays=relays,
            consumers=consumers,
            notification=_stub(notification_pb2_grpc.NotificationServiceStub, notification_channel),
            analytics=_stub(analytics_pb2_grpc.AnalyticsServiceStub, analytics_channel),
            analytics_db=analytics_db,
            mail_dir=notification_settings(service_config("notification", data_dir)).mail_dir,
        )

"""The in-process shop (harness/shop.py) with its asynchronous half switched on.

Next to ``running_shop``'s servers it runs, on a real nats-server, exactly the workers
each service's main starts: the outbox relays of user, order and payment; the consumers
of order (UserUpdated), inventory (OrderCancelled), notification and analytics; plus the
notification and analytics gRPC servers. Each worker opens its service's SQLite file on
its own connection, as a second thread of that process would.

    async with running_shop(tmp_path) as shop, running_events(tmp_path, shop, url) as ev:
        ...
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from meshmart.analytics.v1 import analytics_pb2_grpc
from meshmart.notification.v1 import notification_pb2, notification_pb2_grpc

from harness.shop import TIMEOUT, Shop
from services.analytics import projection
from services.analytics.servicer import AnalyticsServicer
from services.analytics.servicer import service_spec as analytics_spec
from services.analytics.store import DB_FILE as ANALYTICS_DB_FILE
from services.analytics.store import MIGRATIONS as ANALYTICS_MIGRATIONS
from services.analytics.store import SalesReadModel
from services.inventory import events as inventory_events
from services.inventory.store import DB_FILE as INVENTORY_DB_FILE
from services.inventory.store import MIGRATIONS as INVENTORY_MIGRATIONS
from services.inventory.store import StockLedger
from services.kit.db import Database
from services.kit.events import EventBus, EventConsumer, EventSettings, consumers_for
from services.kit.outbox import OutboxRelay
from services.kit.testing import running_server
from services.notification.events import CONSUMER_NAME as NOTIFICATION
from services.notification.events import Notifier
from services.notification.mailbox import Mailbox
from services.notification.servicer import NotificationServicer
from services.notification.servicer import service_spec as notification_spec
from services.notification.store import DB_FILE as NOTIFICATION_DB_FILE
from services.notification.store import MIGRATIONS as NOTIFICATION_MIGRATIONS
from services.notification.store import NotificationStore
from services.order import events as order_events
from services.order.store import MIGRATIONS as ORDER_MIGRATIONS
from services.payment.store import MIGRATIONS as PAYMENT_MIGRATIONS
from services.user.store import DB_FILE as USER_DB_FILE
from services.user.store import MIGRATIONS as USER_MIGRATIONS

SETTINGS = EventSettings(max_deliveries=5, retry_delay_seconds=0.05, ack_wait_seconds=5.0)


@dataclass
class EventShop:
    bus: EventBus
    relays: dict[str, OutboxRelay]
    consumers: list[EventConsumer]
    notification: notification_pb2_grpc.NotificationServiceAsyncStub
    analytics: analytics_pb2_grpc.AnalyticsServiceAsyncStub
    notification_db: Database
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


@contextlib.asynccontextmanager
async def running_events(
    data_dir: Path, shop: Shop, nats_url: str, *, record: bool = False
) -> AsyncIterator[EventShop]:
    """The shop's events on ``nats_url`` (``record``: keep publish timings and lags)."""
    del shop  # the servers need nothing from here; named so the order of use is clear
    async with contextlib.AsyncExitStack() as stack:

        def database(name: str, migrations: Sequence[str]) -> Database:
            db = Database(data_dir / name, migrations)
            stack.callback(db.close)
            return db

        bus = EventBus(nats_url, name="event-shop")
        await bus.start()
        stack.push_async_callback(bus.close)

        relays = {
            name: OutboxRelay(
                database(file, migrations),
                bus,
                holder=f"{name}-test",
                poll_interval_seconds=0.02,
                record_timings=record,
            )
            for name, file, migrations in (
                ("user", USER_DB_FILE, USER_MIGRATIONS),
                ("order", "order.sqlite3", ORDER_MIGRATIONS),
                ("payment", "payment.sqlite3", PAYMENT_MIGRATIONS),
            )
        }

        notification_db = database(NOTIFICATION_DB_FILE, NOTIFICATION_MIGRATIONS)
        analytics_db = database(ANALYTICS_DB_FILE, ANALYTICS_MIGRATIONS)
        mail_dir = data_dir / "mail"
        order_db = database("order.sqlite3", ORDER_MIGRATIONS)
        inventory_db = database(INVENTORY_DB_FILE, INVENTORY_MIGRATIONS)
        consumers = [
            *consumers_for(
                bus,
                order_db,
                name=order_events.CONSUMER_NAME,
                handlers=order_events.consumed_events(),
                settings=SETTINGS,
                record_lag=record,
            ),
            *consumers_for(
                bus,
                inventory_db,
                name=inventory_events.CONSUMER_NAME,
                handlers=inventory_events.consumed_events(StockLedger(inventory_db)),
                settings=SETTINGS,
                record_lag=record,
            ),
            *consumers_for(
                bus,
                notification_db,
                name=NOTIFICATION,
                handlers=Notifier(Mailbox(mail_dir)).handlers(),
                settings=SETTINGS,
                record_lag=record,
            ),
            *consumers_for(
                bus,
                analytics_db,
                name=projection.CONSUMER_NAME,
                handlers=projection.handlers(),
                settings=SETTINGS,
                record_lag=record,
            ),
        ]
        for worker in [*relays.values(), *consumers]:
            await worker.start()
            stack.push_async_callback(worker.stop)

        notification_target = await stack.enter_async_context(
            running_server(
                [notification_spec(NotificationServicer(NotificationStore(notification_db)))]
            )
        )
        analytics_target = await stack.enter_async_context(
            running_server([analytics_spec(AnalyticsServicer(SalesReadModel(analytics_db)))])
        )
        notification_channel = await stack.enter_async_context(
            grpc.aio.insecure_channel(notification_target)
        )
        analytics_channel = await stack.enter_async_context(
            grpc.aio.insecure_channel(analytics_target)
        )
        yield EventShop(
            bus=bus,
            relays=relays,
            consumers=consumers,
            notification=_stub(notification_pb2_grpc.NotificationServiceStub, notification_channel),
            analytics=_stub(analytics_pb2_grpc.AnalyticsServiceStub, analytics_channel),
            notification_db=notification_db,
            analytics_db=analytics_db,
            mail_dir=mail_dir,
        )

"""NotificationService over gRPC: validate, read the store, map to protobuf."""

from __future__ import annotations

from typing import TypeAlias

import grpc
from meshmart.notification.v1 import notification_pb2, notification_pb2_grpc

from services.kit import validate
from services.kit.clock import timestamp
from services.kit.context import ensure_caller_may_act_for
from services.kit.server import ServiceSpec
from services.notification.store import Notification, NotificationStore

Context: TypeAlias = grpc.aio.ServicerContext
SERVICE_NAME = "meshmart.notification.v1.NotificationService"


def notification_to_proto(notification: Notification) -> notification_pb2.Notification:
    return notification_pb2.Notification(
        notification_id=notification.notification_id,
        user_id=notification.user_id,
        channel=notification.channel,
        subject=notification.subject,
        body=notification.body,
        event_id=notification.event_id,
        created_at=timestamp(notification.created_at),
    )


class NotificationServicer(notification_pb2_grpc.NotificationServiceServicer):
    def __init__(self, store: NotificationStore) -> None:
        self._store = store

    async def ListNotifications(
        self, request: notification_pb2.ListNotificationsRequest, context: Context
    ) -> notification_pb2.ListNotificationsResponse:
        user_id = request.user_id
        ensure_caller_may_act_for(context, user_id)
        page = await self._store.db.run(
            self._store.list_for_user,
            user_id,
            validate.page_size(request.page_size),
            request.page_token,
        )
        return notification_pb2.ListNotificationsResponse(
            notifications=[notification_to_proto(n) for n in page.notifications],
            next_page_token=page.next_page_token,
        )


def service_spec(servicer: NotificationServicer) -> ServiceSpec:
    return ServiceSpec(
        name=SERVICE_NAME,
        add=lambda server: notification_pb2_grpc.add_NotificationServiceServicer_to_server(
            servicer, server
        ),
    )

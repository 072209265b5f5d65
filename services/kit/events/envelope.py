"""The EventEnvelope every event travels in: built with the current trace context,
decoded and unpacked by consumers."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TypeVar

from google.protobuf.message import Message
from meshmart.common.v1 import common_pb2

from services.kit import context as rpc_context
from services.kit.clock import utc_now
from services.kit.events.streams import subject_for

EventEnvelope = common_pb2.EventEnvelope


def new_envelope(
    event_type: str,
    payload: Message,
    *,
    source: str,
    occurred_at: dt.datetime | None = None,
    event_id: str | None = None,
) -> common_pb2.EventEnvelope:
    """An envelope around ``payload``, carrying the current request's trace context."""
    subject_for(event_type)  # validates the type's shape
    envelope = common_pb2.EventEnvelope(
        id=event_id or str(uuid.uuid4()),
        type=event_type,
        source=source,
        traceparent=rpc_context.current_traceparent() or "",
    )
    envelope.occurred_at.FromDatetime(occurred_at or utc_now())
    envelope.payload.Pack(payload)
    return envelope


M = TypeVar("M", bound=Message)


def unpack(envelope: common_pb2.EventEnvelope, message_type: type[M]) -> M:
    """The payload as ``message_type``; ValueError when it holds something else."""
    message = message_type()
    if not envelope.payload.Unpack(message):
        raise ValueError(
            f"event {envelope.id} ({envelope.type}) carries {envelope.payload.type_url}, "
            f"not {message.DESCRIPTOR.full_name}"
        )
    return message


def decode_envelope(data: bytes) -> common_pb2.EventEnvelope:
    envelope = common_pb2.EventEnvelope()
    envelope.ParseFromString(data)
    if not envelope.id or not envelope.type:
        raise ValueError("not a meshmart EventEnvelope (no id or type)")
    return envelope

"""The JetStream streams as code: one per event domain, plus the dead letters.

An event type is "<domain>.<Event>" (e.g. "order.OrderPlaced"), its subject
"meshmart.<domain>.<Event>", and each domain has one stream (STREAMS below).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

SUBJECT_PREFIX = "meshmart"
DEAD_LETTER_PREFIX = f"{SUBJECT_PREFIX}.deadletter"

# A re-sent event (relay crashed after the publish ack, before marking the row sent) is
# dropped by JetStream if it comes back within this window. Restarts take seconds; an
# hour is a wide margin, and consumers dedupe by event id anyway beyond it.
DUPLICATE_WINDOW_SECONDS = 3600.0


@dataclass(frozen=True)
class StreamSpec:
    """One JetStream stream, as source control defines it."""

    name: str
    subjects: tuple[str, ...]
    description: str
    duplicate_window: float = DUPLICATE_WINDOW_SECONDS

    def config(self, replicas: int = 1) -> StreamConfig:
        return StreamConfig(
            name=self.name,
            description=self.description,
            subjects=list(self.subjects),
            # Kept (limits retention, no age limit): the analytics read model must be
            # rebuildable from the first event, and a new consumer starts from the start.
            retention=RetentionPolicy.LIMITS,
            discard=DiscardPolicy.OLD,
            max_age=0,
            storage=StorageType.FILE,
            num_replicas=replicas,
            duplicate_window=self.duplicate_window,
        )


USERS = StreamSpec("USERS", ("meshmart.user.>",), "meshmart user events (UserUpdated)")
ORDERS = StreamSpec(
    "ORDERS",
    ("meshmart.order.>",),
    "meshmart order events (OrderPlaced, OrderConfirmed, OrderCancelled)",
)
PAYMENTS = StreamSpec(
    "PAYMENTS",
    ("meshmart.payment.>",),
    "meshmart payment events (PaymentCaptured, PaymentRefunded)",
)
DEAD_LETTERS = StreamSpec(
    "DEADLETTER",
    (f"{DEAD_LETTER_PREFIX}.>",),
    "events a consumer gave up on: meshmart.deadletter.<consumer>.<type>",
)
STREAMS: tuple[StreamSpec, ...] = (USERS, ORDERS, PAYMENTS, DEAD_LETTERS)
_STREAM_OF_DOMAIN = {"user": USERS, "order": ORDERS, "payment": PAYMENTS}


def subject_for(event_type: str) -> str:
    """ "order.OrderPlaced" -> "meshmart.order.OrderPlaced"."""
    domain, _, name = event_type.partition(".")
    if not domain or not name or "." in name or not name.isidentifier():
        raise ValueError(f"event type must look like 'order.OrderPlaced', got {event_type!r}")
    return f"{SUBJECT_PREFIX}.{event_type}"


def stream_for(event_type: str) -> StreamSpec:
    domain = event_type.partition(".")[0]
    try:
        return _STREAM_OF_DOMAIN[domain]
    except KeyError:
        raise ValueError(f"no stream holds events of domain {domain!r} ({event_type})") from None


async def ensure_streams(
    js: JetStreamContext, streams: Sequence[StreamSpec] = STREAMS, replicas: int = 1
) -> None:
    """Create each stream, or bring an existing one to its definition (idempotent), with
    ``replicas`` copies (EventSettings.stream_replicas)."""
    for spec in streams:
        config = spec.config(replicas)
        try:
            await js.update_stream(config)
        except nats.js.errors.NotFoundError:
            try:
                await js.add_stream(config)
            except nats.js.errors.BadRequestError:
                # Another process created it between our two calls: bring it in line.
                await js.update_stream(config)

"""Events on NATS JetStream: streams as code, the envelope, the connection, consumers.

Producers never publish from request code: they write an EventEnvelope into their
outbox inside the transaction of the state change (services/kit/outbox.py), and the
OutboxRelay publishes it. Consumers (EventConsumer) pull from a durable JetStream
consumer and, for each message, commit their effect *and* the event id in one SQLite
transaction, then ack. So:

- a redelivery (lost ack, crash between commit and ack) finds the event id and changes
  nothing: effects happen once;
- a message whose handler keeps failing is retried with back-off a bounded number of
  times, then copied to the dead-letter stream and terminated, so one poison message
  never blocks the events behind it.

Everything is off when MESHMART_NATS_URL is unset (unit tests, `make run-local` without
NATS): events then wait in the outbox until a run with NATS publishes them.

- streams.py: StreamSpec, STREAMS (USERS, ORDERS, PAYMENTS, DEADLETTER), subject_for,
  stream_for, ensure_streams;
- envelope.py: new_envelope, decode_envelope, unpack;
- settings.py: EventSettings, load_event_settings (MESHMART_NATS_URL, MESHMART_EVENTS_*);
- bus.py: EventBus (the connection, publish with JetStream's ack), Backoff;
- consumer.py: EventConsumer, consumers_for, apply_once, read_stream, CONSUMER_MIGRATION;
- wiring.py: ServiceEvents, one process's bus and workers (``Service.events``: serve()
  starts it once SERVING).

Everything a service or test uses is importable from ``services.kit.events``.
"""

from services.kit.events.bus import MSG_ID_HEADER, TYPE_HEADER, Backoff, EventBus
from services.kit.events.consumer import (
    BACKLOG_POLL_SECONDS,
    CONSUMER_MIGRATION,
    ConsumerStats,
    EventConsumer,
    Handler,
    apply_once,
    consumers_for,
    read_stream,
)
from services.kit.events.envelope import EventEnvelope, decode_envelope, new_envelope, unpack
from services.kit.events.settings import EventSettings, load_event_settings
from services.kit.events.streams import (
    DEAD_LETTER_PREFIX,
    DEAD_LETTERS,
    DUPLICATE_WINDOW_SECONDS,
    ORDERS,
    PAYMENTS,
    STREAMS,
    SUBJECT_PREFIX,
    USERS,
    StreamSpec,
    ensure_streams,
    stream_for,
    subject_for,
)
from services.kit.events.wiring import ServiceEvents
from services.kit.worker import Worker

__all__ = [
    "BACKLOG_POLL_SECONDS",
    "CONSUMER_MIGRATION",
    "DEAD_LETTERS",
    "DEAD_LETTER_PREFIX",
    "DUPLICATE_WINDOW_SECONDS",
    "MSG_ID_HEADER",
    "ORDERS",
    "PAYMENTS",
    "STREAMS",
    "SUBJECT_PREFIX",
    "TYPE_HEADER",
    "USERS",
    "Backoff",
    "ConsumerStats",
    "EventBus",
    "EventConsumer",
    "EventEnvelope",
    "EventSettings",
    "Handler",
    "ServiceEvents",
    "StreamSpec",
    "Worker",
    "apply_once",
    "consumers_for",
    "decode_envelope",
    "ensure_streams",
    "load_event_settings",
    "new_envelope",
    "read_stream",
    "stream_for",
    "subject_for",
    "unpack",
]

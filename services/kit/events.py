"""Events on NATS JetStream: streams as code, the envelope, the connection, consumers.

Producers never publish from request code: they write an EventEnvelope into their
outbox inside the transaction of the state change (services/kit/outbox.py), and the
OutboxRelay publishes it. Consumers (EventConsumer here) pull from a durable JetStream
consumer and, for each message, commit their effect *and* the event id in one SQLite
transaction, then ack. So:

- a redelivery (lost ack, crash between commit and ack) finds the event id and changes
  nothing: effects happen once;
- a message whose handler keeps failing is retried with back-off a bounded number of
  times, then copied to the dead-letter stream and terminated, so one poison message
  never blocks the events behind it.

Everything is off when MESHMART_NATS_URL is unset (unit tests, `make run-local` without
NATS): events then wait in the outbox until a run with NATS publishes them.

Naming: an event type is "<domain>.<Event>" (e.g. "order.OrderPlaced"), its subject
"meshmart.<domain>.<Event>", and each domain has one stream (STREAMS below).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import nats
import nats.errors
import nats.js.errors
from google.protobuf.message import DecodeError, Message
from meshmart.common.v1 import common_pb2
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from services.kit import context as rpc_context
from services.kit.config import ServiceConfig, env_float, env_int, env_str
from services.kit.db import Database
from services.kit.logging import get_logger
from services.kit.metrics import (
    CONSUMER_LAG,
    CONSUMER_PENDING,
    EVENTS_CONSUMED,
    EVENTS_DEAD_LETTERED,
)
from services.kit.tracing import consumer_span

log = get_logger("meshmart.events")

EventEnvelope = common_pb2.EventEnvelope
SUBJECT_PREFIX = "meshmart"
DEAD_LETTER_PREFIX = f"{SUBJECT_PREFIX}.deadletter"
# Header JetStream deduplicates on (within the stream's duplicate window).
MSG_ID_HEADER = "Nats-Msg-Id"
TYPE_HEADER = "Meshmart-Event-Type"

# A re-sent event (relay crashed after the publish ack, before marking the row sent) is
# dropped by JetStream if it comes back within this window. Restarts take seconds; an
# hour is a wide margin, and consumers dedupe by event id anyway beyond it.
DUPLICATE_WINDOW_SECONDS = 3600.0


# --------------------------------------------------------------------------- streams


@dataclass(frozen=True)
class StreamSpec:
    """One JetStream stream, as source control defines it."""

    name: str
    subjects: tuple[str, ...]
    description: str
    duplicate_window: float = DUPLICATE_WINDOW_SECONDS

    def config(self) -> StreamConfig:
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
            num_replicas=1,
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


async def ensure_streams(js: JetStreamContext, streams: Sequence[StreamSpec] = STREAMS) -> None:
    """Create each stream, or bring an existing one to its definition (idempotent)."""
    for spec in streams:
        config = spec.config()
        try:
            await js.update_stream(config)
        except nats.js.errors.NotFoundError:
            try:
                await js.add_stream(config)
            except nats.js.errors.BadRequestError:
                # Another process created it between our two calls: bring it in line.
                await js.update_stream(config)


# --------------------------------------------------------------------------- envelope


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
    envelope.occurred_at.FromDatetime(occurred_at or dt.datetime.now(dt.UTC))
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


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class EventSettings:
    """How a service talks to NATS; ``nats_url`` None switches events off."""

    nats_url: str | None = None
    # Deliveries of one message before it goes to the dead-letter stream.
    max_deliveries: int = 5
    # Redelivery after this long without an ack (consumer crashed mid-message).
    ack_wait_seconds: float = 30.0
    # First back-off of a failed message (doubles per delivery, capped at 30s).
    retry_delay_seconds: float = 1.0
    publish_timeout_seconds: float = 2.0


def load_event_settings(env: Mapping[str, str] | None = None) -> EventSettings:
    url = env_str("MESHMART_NATS_URL", "", env=env)
    return EventSettings(
        nats_url=url or None,
        max_deliveries=env_int(
            "MESHMART_EVENTS_MAX_DELIVERIES", 5, minimum=1, maximum=100, env=env
        ),
        ack_wait_seconds=env_float(
            "MESHMART_EVENTS_ACK_WAIT_SECONDS", 30.0, minimum=0.5, maximum=3600.0, env=env
        ),
        retry_delay_seconds=env_float(
            "MESHMART_EVENTS_RETRY_DELAY_SECONDS", 1.0, minimum=0.0, maximum=60.0, env=env
        ),
        publish_timeout_seconds=env_float(
            "MESHMART_EVENTS_PUBLISH_TIMEOUT_SECONDS", 2.0, minimum=0.05, maximum=60.0, env=env
        ),
    )


# --------------------------------------------------------------------------- back-off


class Backoff:
    """Exponential back-off with jitter, for loops waiting on a broker that is down."""

    def __init__(self, first: float = 0.1, cap: float = 5.0) -> None:
        self._first = first
        self._cap = cap
        self._next = first

    def reset(self) -> None:
        self._next = self._first

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self._cap)
        # +-20% so that every process of a restarted broker does not retry in lockstep.
        return delay * random.uniform(0.8, 1.2)

    async def sleep(self) -> None:
        await asyncio.sleep(self.next_delay())


# --------------------------------------------------------------------------- connection


class EventBus:
    """One process's NATS connection and JetStream context.

    start() returns at once; the connection is made in the background (retrying forever
    while NATS is down), then the streams are ensured. Relays and consumers wait for it
    with ``await bus.jetstream()``. After a broker restart the client reconnects by
    itself and the streams are ensured again (the broker may have lost its store).
    """

    def __init__(
        self,
        url: str,
        *,
        name: str,
        streams: Sequence[StreamSpec] = STREAMS,
        reconnect_wait: float = 0.5,
        publish_timeout: float = 2.0,
    ) -> None:
        self.url = url
        self.name = name
        self._streams = tuple(streams)
        self._reconnect_wait = reconnect_wait
        self.publish_timeout = publish_timeout
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._ensure_task: asyncio.Task[None] | None = None
        self._error_logged = False
        self.errors_seen = 0  # errors the NATS client reported, e.g. each failed connect

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._connect(), name=f"nats-connect:{self.name}")

    async def jetstream(self) -> JetStreamContext:
        """The JetStream context, once connected and the streams exist."""
        await self._ready.wait()
        assert self._js is not None
        return self._js

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def _connect(self) -> None:
        log.info("events.connecting", url=self.url)
        # max_reconnect_attempts=-1: the first connect, too, retries until NATS is up, so
        # a service starts (and fills its outbox) while the broker is still down.
        nc = await nats.connect(
            self.url,
            name=self.name,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=self._reconnect_wait,
            connect_timeout=2,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        self._nc = nc
        self._js = nc.jetstream(timeout=self.publish_timeout)
        backoff = Backoff()
        while True:
            try:
                await ensure_streams(self._js, self._streams)
                break
            except (TimeoutError, nats.errors.Error) as error:
                log.warning("events.ensure_streams_failed", error=repr(error))
                await backoff.sleep()
        self._error_logged = False
        log.info(
            "events.connected",
            url=self.url,
            streams=[s.name for s in self._streams],
        )
        self._ready.set()

    async def ensure_streams(self) -> None:
        """Ensure the streams again (after a broker restart, or a publish that found none)."""
        js = await self.jetstream()
        await ensure_streams(js, self._streams)

    async def _on_error(self, error: Exception) -> None:
        # While NATS is down the client reports every failed attempt: say it once.
        self.errors_seen += 1
        if not self._error_logged:
            self._error_logged = True
            log.warning("events.nats_error", url=self.url, error=repr(error))

    async def _on_disconnected(self) -> None:
        log.warning("events.disconnected", url=self.url)

    async def _on_reconnected(self) -> None:
        self._error_logged = False
        log.info("events.reconnected", url=self.url)
        if self._ready.is_set() and (self._ensure_task is None or self._ensure_task.done()):
            self._ensure_task = asyncio.create_task(self._ensure_after_reconnect())

    async def _ensure_after_reconnect(self) -> None:
        try:
            await self.ensure_streams()
        except (TimeoutError, nats.errors.Error) as error:
            # Publishes that find no stream ensure it again themselves.
            log.warning("events.ensure_streams_failed", error=repr(error))

    async def publish(self, subject: str, data: bytes, *, msg_id: str, event_type: str) -> bool:
        """Publish with JetStream's ack; True when JetStream reports a duplicate.

        Raises (timeout, no stream, connection errors) when the ack did not come.
        """
        js = await self.jetstream()
        headers = {MSG_ID_HEADER: msg_id, TYPE_HEADER: event_type}
        try:
            ack = await js.publish(subject, data, timeout=self.publish_timeout, headers=headers)
        except nats.js.errors.NoStreamResponseError:
            await self.ensure_streams()
            ack = await js.publish(subject, data, timeout=self.publish_timeout, headers=headers)
        return bool(ack.duplicate)

    async def publish_pipelined(
        self, subject: str, data: bytes, *, msg_id: str, event_type: str
    ) -> asyncio.Future[bool]:
        """Send a publish now and return a future of its ack (True: a duplicate), so a
        caller can keep several in flight on this one connection, which NATS delivers to
        the stream in the order they were sent. The future fails with the publish's error,
        or TimeoutError after ``publish_timeout``.
        """
        js = await self.jetstream()
        headers = {MSG_ID_HEADER: msg_id, TYPE_HEADER: event_type}
        ack = await js.publish_async(subject, data, headers=headers)
        loop = asyncio.get_running_loop()
        result: asyncio.Future[bool] = loop.create_future()

        def settle(done: asyncio.Future[Any]) -> None:
            timer.cancel()
            if result.done():
                return
            if done.cancelled():
                result.cancel()
            elif (error := done.exception()) is not None:
                if isinstance(error, nats.js.errors.NoStreamResponseError):
                    # The broker lost its store (or never had it): ensure the streams again;
                    # the caller's retry then finds them.
                    self._ensure_soon()
                result.set_exception(error)
            else:
                result.set_result(bool(done.result().duplicate))

        def expire() -> None:
            if not ack.done():
                ack.cancel()
            if not result.done():
                late = TimeoutError(f"no ack for {msg_id} within {self.publish_timeout}s")
                result.set_exception(late)

        timer = loop.call_later(self.publish_timeout, expire)
        ack.add_done_callback(settle)
        return result

    def _ensure_soon(self) -> None:
        if self._ensure_task is None or self._ensure_task.done():
            self._ensure_task = asyncio.create_task(self._ensure_after_reconnect())

    async def stop(self) -> None:
        await self.close()

    async def close(self) -> None:
        for task in (self._task, self._ensure_task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._nc is not None and not self._nc.is_closed:
            await self._nc.close()
        self._ready.clear()


# --------------------------------------------------------------------------- consumers

CONSUMER_MIGRATION = """
-- Events this service has applied, by consumer: the dedupe record written in the same
-- transaction as the effect (services/kit/events.py).
CREATE TABLE processed_events (
    consumer     TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    stream       TEXT NOT NULL,
    stream_seq   INTEGER NOT NULL,
    processed_us INTEGER NOT NULL,
    PRIMARY KEY (consumer, event_id)
) WITHOUT ROWID;
"""

# How long a batch fetch waits when the consumer is behind (see EventConsumer._next).
BACKLOG_POLL_SECONDS = 0.05

# A handler applies one event inside the consumer's transaction. It must not await
# (the kit's rule for transactions) and raises to reject the event (it is retried).
Handler = Callable[[sqlite3.Connection, common_pb2.EventEnvelope], None]


class Worker(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class ConsumerStats:
    applied: int = 0
    duplicates: int = 0
    failures: int = 0
    dead_lettered: int = 0
    # Seconds from each event's occurred_at to its commit here (only with record_lag;
    # the benchmark reads them).
    lags: list[float] = field(default_factory=list)


class EventConsumer:
    """A durable JetStream pull consumer on one stream, applying events exactly once.

    ``name`` is the durable consumer's name (one per service and stream; two instances
    of a service share it and split the work). ``handlers`` maps event types (all of
    ``stream``) to handlers; the consumer's subject filter is exactly those types.
    """

    def __init__(
        self,
        bus: EventBus,
        db: Database,
        *,
        name: str,
        stream: StreamSpec,
        handlers: Mapping[str, Handler],
        settings: EventSettings = EventSettings(),
        batch: int = 64,
        fetch_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
        record_lag: bool = False,
    ) -> None:
        for event_type in handlers:
            if stream_for(event_type) != stream:
                raise ValueError(f"{event_type} is not an event of stream {stream.name}")
        self._bus = bus
        self._db = db
        self.name = name
        self.stream = stream
        self._handlers = dict(handlers)
        self._settings = settings
        self._batch = batch
        self._fetch_timeout = fetch_timeout
        self._clock = clock
        self._record_lag = record_lag
        self._task: asyncio.Task[None] | None = None
        self.stats = ConsumerStats()
        self._lag_histogram = CONSUMER_LAG.labels(name)
        self._pending_gauge = CONSUMER_PENDING.labels(name)

    def config(self) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self.name,
            description=f"meshmart consumer {self.name} of {self.stream.name}",
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self._settings.ack_wait_seconds,
            # Unlimited for JetStream: the consumer itself counts deliveries and moves a
            # poison message to the dead-letter stream (JetStream's own limit would just
            # stop delivering it, leaving it unacknowledged forever).
            max_deliver=-1,
            filter_subjects=sorted(subject_for(t) for t in self._handlers),
            max_ack_pending=1000,
        )

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"consumer:{self.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _subscribe(self, js: JetStreamContext) -> JetStreamContext.PullSubscription:
        # Create-or-update: the definition in source control wins at every start.
        await js.add_consumer(self.stream.name, self.config())
        return await js.pull_subscribe_bind(durable=self.name, stream=self.stream.name)

    async def _run(self) -> None:
        backoff = Backoff()
        failing = False
        while True:
            try:
                js = await self._bus.jetstream()
                sub = await self._subscribe(js)
                log.info(
                    "events.consumer_started",
                    consumer=self.name,
                    stream=self.stream.name,
                    types=sorted(self._handlers),
                )
                caught_up = False
                while True:
                    try:
                        msgs = await self._next(sub, caught_up)
                    except TimeoutError:
                        caught_up = True  # nothing new within the poll
                        continue
                    # num_pending: what the stream still holds for us after this one.
                    caught_up = len(msgs) < self._batch and not msgs[-1].metadata.num_pending
                    for msg in msgs:
                        await self._process(js, msg)
                    if failing:
                        failing = False
                        log.info("events.consumer_resumed", consumer=self.name)
                    backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # Broker down or restarting: keep the durable position, try again.
                if not failing:
                    failing = True
                    log.warning("events.consumer_failing", consumer=self.name, error=repr(error))
                await backoff.sleep()

    async def _next(self, sub: JetStreamContext.PullSubscription, caught_up: bool) -> list[Msg]:
        """The next messages: one long poll when caught up, else whatever is there.

        nats-py's batch fetch, once it has to wait, holds the first message until the
        whole batch is there or the poll expires, which at a trickle of events means up
        to ``fetch_timeout`` of lag. So: caught up, wait for ONE message (returned the
        moment it arrives); behind, take a batch of what is available (a short poll).
        """
        if caught_up:
            return await sub.fetch(1, timeout=self._fetch_timeout)
        return await sub.fetch(self._batch, timeout=BACKLOG_POLL_SECONDS)

    async def _process(self, js: JetStreamContext, msg: Msg) -> None:
        meta = msg.metadata
        deliveries = meta.num_delivered
        try:
            envelope = decode_envelope(msg.data)
        except (DecodeError, ValueError) as error:
            # Will never decode, however often it is delivered.
            await self._dead_letter(js, msg, None, f"undecodable: {error}")
            return
        if deliveries > self._settings.max_deliveries:
            # Delivered past the limit without a verdict: the process died handling it
            # (a crash loop is the worst poison). Do not run the handler again.
            await self._dead_letter(
                js, msg, envelope, f"delivered {deliveries} times without completing"
            )
            return
        try:
            # A span of the trace the event was published in (services/kit/tracing.py).
            with (
                consumer_span(
                    f"consume {envelope.type}",
                    envelope.traceparent or None,
                    {
                        "messaging.system": "nats",
                        "messaging.consumer.group.name": self.name,
                        "meshmart.event_id": envelope.id,
                    },
                ) as traceparent,
                rpc_context.request_scope(request_id=envelope.id, traceparent=traceparent),
            ):
                applied = self._apply(envelope, meta.sequence.stream)
        except Exception as error:
            self.stats.failures += 1
            EVENTS_CONSUMED.labels(self.name, envelope.type, "failed").inc()
            if deliveries >= self._settings.max_deliveries:
                await self._dead_letter(js, msg, envelope, repr(error))
                return
            delay = min(self._settings.retry_delay_seconds * 2 ** (deliveries - 1), 30.0)
            log.warning(
                "events.handler_failed",
                consumer=self.name,
                event_id=envelope.id,
                type=envelope.type,
                delivery=deliveries,
                retry_in=round(delay, 3),
                error=repr(error),
            )
            await msg.nak(delay=delay)
            return
        if meta.num_pending is not None:
            self._pending_gauge.set(meta.num_pending)
        if applied:
            self.stats.applied += 1
            EVENTS_CONSUMED.labels(self.name, envelope.type, "applied").inc()
        else:
            self.stats.duplicates += 1
            EVENTS_CONSUMED.labels(self.name, envelope.type, "duplicate").inc()
            log.info(
                "events.duplicate_ignored",
                consumer=self.name,
                event_id=envelope.id,
                type=envelope.type,
                delivery=deliveries,
            )
        await self._ack(msg)

    def _apply(self, envelope: common_pb2.EventEnvelope, stream_seq: int) -> bool:
        """Effect + processed id in one transaction; False if it was applied before."""
        now = self._clock()
        with self._db.transaction() as conn:
            applied = apply_once(
                conn,
                consumer=self.name,
                handlers=self._handlers,
                envelope=envelope,
                stream=self.stream.name,
                stream_seq=stream_seq,
                now=now,
            )
        if not applied:
            return False
        # From the producer's commit (occurred_at) to ours: what a reader waits.
        occurred = envelope.occurred_at.seconds + envelope.occurred_at.nanos / 1e9
        lag = self._clock() - occurred
        if occurred > 0:
            self._lag_histogram.observe(max(lag, 0.0))
        if self._record_lag:
            self.stats.lags.append(lag)
        return True

    async def _ack(self, msg: Msg) -> None:
        # After the commit: if this ack is lost (or we die right here), the redelivery
        # finds the event id and is acknowledged without a second effect.
        await msg.ack()

    async def _dead_letter(
        self,
        js: JetStreamContext,
        msg: Msg,
        envelope: common_pb2.EventEnvelope | None,
        reason: str,
    ) -> None:
        meta = msg.metadata
        event_type = envelope.type if envelope is not None else "undecodable"
        subject = f"{DEAD_LETTER_PREFIX}.{self.name}.{event_type}"
        headers = {
            # One dead letter per original message, however often this runs.
            MSG_ID_HEADER: f"dlq.{self.name}.{meta.stream}.{meta.sequence.stream}",
            TYPE_HEADER: event_type,
            "Meshmart-Consumer": self.name,
            "Meshmart-Original-Subject": msg.subject,
            "Meshmart-Original-Stream": meta.stream,
            "Meshmart-Original-Sequence": str(meta.sequence.stream),
            "Meshmart-Deliveries": str(meta.num_delivered),
            "Meshmart-Error": " ".join(reason.split())[:300],
        }
        # Raises if the broker does not ack: then the message is not terminated and
        # comes back, so nothing is dropped on the floor.
        await js.publish(subject, msg.data, timeout=self._bus.publish_timeout, headers=headers)
        await msg.term()
        self.stats.dead_lettered += 1
        EVENTS_DEAD_LETTERED.labels(self.name, event_type).inc()
        log.error(
            "events.dead_lettered",
            consumer=self.name,
            event_id=envelope.id if envelope is not None else "",
            type=event_type,
            stream_seq=meta.sequence.stream,
            deliveries=meta.num_delivered,
            reason=reason,
        )


def apply_once(
    conn: sqlite3.Connection,
    *,
    consumer: str,
    handlers: Mapping[str, Handler],
    envelope: common_pb2.EventEnvelope,
    stream: str,
    stream_seq: int,
    now: float,
) -> bool:
    """Apply ``envelope`` with its handler and record its id, on the caller's transaction;
    False (and nothing done) if ``consumer`` applied it before. Also what a replay uses."""
    seen = conn.execute(
        "SELECT 1 FROM processed_events WHERE consumer = ? AND event_id = ?",
        (consumer, envelope.id),
    ).fetchone()
    if seen is not None:
        return False
    handler = handlers.get(envelope.type)
    if handler is not None:
        handler(conn, envelope)
    conn.execute(
        "INSERT INTO processed_events (consumer, event_id, event_type, stream, stream_seq,"
        " processed_us) VALUES (?, ?, ?, ?, ?, ?)",
        (consumer, envelope.id, envelope.type, stream, stream_seq, int(now * 1_000_000)),
    )
    return True


async def read_stream(
    js: JetStreamContext,
    stream: StreamSpec,
    event_types: Sequence[str],
    *,
    batch: int = 256,
) -> AsyncIterator[tuple[int, common_pb2.EventEnvelope]]:
    """Every event of ``event_types`` in ``stream`` from its first message, in order, as
    (stream sequence, envelope); ends at the last message present when it started.

    Uses an ephemeral consumer without acks (a replay changes no durable position).
    """
    info = await js.add_consumer(
        stream.name,
        ConsumerConfig(
            description="meshmart replay",
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.NONE,
            filter_subjects=sorted(subject_for(t) for t in event_types),
            inactive_threshold=60.0,
            mem_storage=True,
        ),
    )
    name = info.name
    assert name is not None
    remaining = int(info.num_pending or 0)
    try:
        sub = await js.pull_subscribe_bind(consumer=name, stream=stream.name)
        while remaining > 0:
            for msg in await sub.fetch(min(batch, remaining), timeout=5.0):
                remaining -= 1
                try:
                    envelope = decode_envelope(msg.data)
                except (DecodeError, ValueError):
                    continue  # what the live consumer dead-letters is skipped here too
                yield msg.metadata.sequence.stream, envelope
        await sub.unsubscribe()
    finally:
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            await js.delete_consumer(stream.name, name)


def consumers_for(
    bus: EventBus,
    db: Database,
    *,
    name: str,
    handlers: Mapping[str, Handler],
    settings: EventSettings = EventSettings(),
    record_lag: bool = False,
) -> list[EventConsumer]:
    """One EventConsumer per stream the handled event types live in (durable ``name``)."""
    by_stream: dict[str, dict[str, Handler]] = {}
    specs: dict[str, StreamSpec] = {}
    for event_type, handler in handlers.items():
        spec = stream_for(event_type)
        specs[spec.name] = spec
        by_stream.setdefault(spec.name, {})[event_type] = handler
    return [
        EventConsumer(
            bus,
            db,
            name=name,
            stream=specs[stream],
            handlers=group,
            settings=settings,
            record_lag=record_lag,
        )
        for stream, group in sorted(by_stream.items())
    ]


# --------------------------------------------------------------------------- per service


class ServiceEvents:
    """Everything event-related one service process runs: the bus and its workers
    (outbox relay, consumers). ``start`` as serve()'s on_start hook; ``close`` after
    serve() returns (so events committed while draining are still published next run).
    """

    def __init__(self, bus: EventBus | None, workers: Sequence[Worker] = ()) -> None:
        self.bus = bus
        self.workers = list(workers)

    @classmethod
    def from_env(
        cls,
        config: ServiceConfig,
        build: Callable[[EventBus, EventSettings], Sequence[Worker]],
        env: Mapping[str, str] | None = None,
    ) -> ServiceEvents:
        """Events of ``config``'s service; off (and saying so) without MESHMART_NATS_URL.

        ``build`` creates the workers once the bus exists (not called when off).
        """
        settings = load_event_settings(env)
        if settings.nats_url is None:
            return cls(None)
        bus = EventBus(
            settings.nats_url,
            name=config.instance_id,
            publish_timeout=settings.publish_timeout_seconds,
        )
        return cls(bus, build(bus, settings))

    @property
    def enabled(self) -> bool:
        return self.bus is not None

    async def start(self) -> None:
        if self.bus is None:
            log.warning(
                "events.disabled",
                reason="MESHMART_NATS_URL is not set",
                effect="events are kept in the outbox (published by a later run with NATS);"
                " nothing is consumed",
            )
            return
        await self.bus.start()
        for worker in self.workers:
            await worker.start()

    async def close(self) -> None:
        for worker in reversed(self.workers):
            await worker.stop()
        if self.bus is not None:
            await self.bus.close()

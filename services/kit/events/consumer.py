"""EventConsumer: a durable JetStream pull consumer applying each event exactly once
(effect and event id in one SQLite transaction, then ack); poison messages go to the
dead-letter stream after a bounded number of deliveries. Also the replay (read_stream,
apply_once) a read model is rebuilt with."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import nats.errors
from google.protobuf.message import DecodeError
from meshmart.common.v1 import common_pb2
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from services.kit import context as rpc_context
from services.kit.db import Connection, Database
from services.kit.events.bus import MSG_ID_HEADER, TYPE_HEADER, Backoff, EventBus
from services.kit.events.envelope import decode_envelope
from services.kit.events.settings import EventSettings
from services.kit.events.streams import DEAD_LETTER_PREFIX, StreamSpec, stream_for, subject_for
from services.kit.logging import get_logger
from services.kit.metrics import (
    CONSUMER_LAG,
    CONSUMER_PENDING,
    EVENTS_CONSUMED,
    EVENTS_DEAD_LETTERED,
)
from services.kit.tracing import consumer_span
from services.kit.worker import BackgroundWorker

log = get_logger("meshmart.events")

DEFAULT_SETTINGS = EventSettings()

CONSUMER_MIGRATION = """
-- Events this service has applied, by consumer: the dedupe record written in the same
-- transaction as the effect (services/kit/events/consumer.py).
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

# The end of a W3C traceparent whose trace-flags say "not sampled".
_NOT_SAMPLED = "-00"

# A handler applies one event inside the consumer's transaction. It must not await
# (the kit's rule for transactions) and raises to reject the event (it is retried).
Handler = Callable[[Connection, common_pb2.EventEnvelope], None]


@dataclass
class ConsumerStats:
    applied: int = 0
    duplicates: int = 0
    failures: int = 0
    dead_lettered: int = 0
    # Seconds from each event's occurred_at to its commit here (only with record_lag;
    # the benchmark reads them).
    lags: list[float] = field(default_factory=list)


class EventConsumer(BackgroundWorker):
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
        settings: EventSettings = DEFAULT_SETTINGS,
        batch: int = 64,
        fetch_timeout_seconds: float = 5.0,
        clock: Callable[[], float] = time.time,
        record_lag: bool = False,
    ) -> None:
        for event_type in handlers:
            if stream_for(event_type) != stream:
                raise ValueError(f"{event_type} is not an event of stream {stream.name}")
        super().__init__(task_name=f"consumer:{name}")
        self._bus = bus
        self._db = db
        self.name = name
        self.stream = stream
        self._handlers = dict(handlers)
        self._settings = settings
        self._batch = batch
        self._fetch_timeout = fetch_timeout_seconds
        self._clock = clock
        self._record_lag = record_lag
        self.stats = ConsumerStats()
        self._lag_histogram = CONSUMER_LAG.labels(name)
        self._pending_gauge = CONSUMER_PENDING.labels(name)
        self._consumed: dict[tuple[str, str], Any] = {}

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
                    await self._process(js, msgs)
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
        to ``fetch_timeout_seconds`` of lag. So: caught up, wait for ONE message (returned the
        moment it arrives); behind, take a batch of what is available (a short poll).
        """
        if caught_up:
            return await sub.fetch(1, timeout=self._fetch_timeout)
        return await sub.fetch(self._batch, timeout=BACKLOG_POLL_SECONDS)

    async def _process(self, js: JetStreamContext, msgs: list[Msg]) -> None:
        """Apply a fetched batch as one group commit (Database.run_each: each event a unit
        in a savepoint of its own, so a failing handler undoes only its event), then ack
        what it committed.

        One database round trip and one COMMIT per batch instead of per event; the acks go
        out back to back after the commit (one socket write). Per event it is what it was:
        effect and id recorded together before the ack, a failure retried with back-off,
        then dead-lettered.
        """
        ready: list[tuple[Msg, common_pb2.EventEnvelope]] = []
        for msg in msgs:
            deliveries = msg.metadata.num_delivered
            try:
                envelope = decode_envelope(msg.data)
            except (DecodeError, ValueError) as error:
                # Will never decode, however often it is delivered.
                await self._dead_letter(js, msg, None, f"undecodable: {error}")
                continue
            if deliveries > self._settings.max_deliveries:
                # Delivered past the limit without a verdict: the process died handling
                # it (a crash loop is the worst poison). Do not run the handler again.
                await self._dead_letter(
                    js, msg, envelope, f"delivered {deliveries} times without completing"
                )
                continue
            ready.append((msg, envelope))
        if not ready:
            return
        now = self._clock()
        outcomes = await self._db.run_each([
            functools.partial(self._apply, envelope, msg.metadata.sequence.stream, now)
            for msg, envelope in ready
        ])
        self._observe_lag(ready, outcomes)
        committed: list[Msg] = []
        for (msg, envelope), outcome in zip(ready, outcomes, strict=True):
            if isinstance(outcome, Exception):
                await self._failed(js, msg, envelope, outcome)
            elif outcome:
                self.stats.applied += 1
                self._counted(envelope.type, "applied").inc()
                committed.append(msg)
            else:
                self.stats.duplicates += 1
                self._counted(envelope.type, "duplicate").inc()
                log.info(
                    "events.duplicate_ignored",
                    consumer=self.name,
                    event_id=envelope.id,
                    type=envelope.type,
                    delivery=msg.metadata.num_delivered,
                )
                committed.append(msg)
        pending = ready[-1][0].metadata.num_pending
        if pending is not None:
            self._pending_gauge.set(pending)
        for msg in committed:
            await self._ack(msg)

    def _counted(self, event_type: str, outcome: str) -> Any:
        """EVENTS_CONSUMED's child for this consumer, ``event_type`` and ``outcome``."""
        key = (event_type, outcome)
        child = self._consumed.get(key)
        if child is None:
            child = self._consumed[key] = EVENTS_CONSUMED.labels(self.name, event_type, outcome)
        return child

    async def _failed(
        self, js: JetStreamContext, msg: Msg, envelope: common_pb2.EventEnvelope, error: Exception
    ) -> None:
        """The handler (or the commit) failed: retry later with back-off, or dead-letter."""
        deliveries = msg.metadata.num_delivered
        self.stats.failures += 1
        self._counted(envelope.type, "failed").inc()
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

    def _apply(self, envelope: common_pb2.EventEnvelope, stream_seq: int, now: float) -> bool:
        """One event, a unit of the batch's group commit (Database.run_each): its effect
        and processed id in one transaction() (a savepoint of the batch's transaction,
        rolled back alone if the handler raises); True if applied, False if applied
        before."""
        with self._traced(envelope), self._db.transaction() as conn:
            return apply_once(
                conn,
                consumer=self.name,
                handlers=self._handlers,
                envelope=envelope,
                stream=self.stream.name,
                stream_seq=stream_seq,
                now=now,
            )

    def _observe_lag(
        self,
        ready: list[tuple[Msg, common_pb2.EventEnvelope]],
        outcomes: list[bool | Exception],
    ) -> None:
        """From each applied event's producer commit (occurred_at) to our commit's answer:
        what a reader waits."""
        committed = self._clock()
        for (_, envelope), outcome in zip(ready, outcomes, strict=True):
            if outcome is not True:
                continue
            occurred = envelope.occurred_at.seconds + envelope.occurred_at.nanos / 1e9
            if occurred > 0:
                self._lag_histogram.observe(max(committed - occurred, 0.0))
            if self._record_lag:
                self.stats.lags.append(committed - occurred)

    def _traced(self, envelope: common_pb2.EventEnvelope) -> contextlib.ExitStack:
        """The event's request scope (its log lines carry its trace), inside a CONSUMER
        span of the trace it was published in (services/kit/tracing.py). An envelope
        whose trace was not sampled gets no span: the sampler (parent-based) would only
        make a span that is never recorded; its scope carries the envelope's own
        traceparent, so the handler's calls and log lines stay in that trace."""
        scope = contextlib.ExitStack()
        parent = envelope.traceparent or None
        if parent is not None and parent.endswith(_NOT_SAMPLED):
            traceparent: str | None = parent
        else:
            traceparent = scope.enter_context(consumer_span(
                f"consume {envelope.type}",
                parent,
                {
                    "messaging.system": "nats",
                    "messaging.consumer.group.name": self.name,
                    "meshmart.event_id": envelope.id,
                },
            ))
        scope.enter_context(
            rpc_context.request_scope(request_id=envelope.id, traceparent=traceparent)
        )
        return scope

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
        await js.publish(
            subject, msg.data, timeout=self._bus.publish_timeout_seconds, headers=headers
        )
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
    conn: Connection,
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
    settings: EventSettings = DEFAULT_SETTINGS,
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

"""Transactional outbox: an event leaves a service only if its state change committed.

A service adds OUTBOX_MIGRATION to its own migrations and, inside the very
``db.transaction()`` that changes its state, writes the event with ``Outbox.add`` (or
``add_event``). Both commit or neither does: no event about a change that was rolled
back, no change whose event is lost.

``OutboxRelay`` (a background task of the service) publishes the pending rows to
JetStream strictly in commit order, pipelined on its one connection (up to ``window``
publishes in flight, stored in the order sent, their acks taken in that order), with the
event id as ``Nats-Msg-Id``. A row is marked sent only after JetStream acknowledged it
and every row before it. So:

- broker down: the relay backs off and retries the same row; nothing is skipped;
- relay (process) killed after a publish ack but before marking the row: the next run
  publishes it again, JetStream recognises the id inside its duplicate window and
  stores nothing new (and consumers dedupe by event id besides);
- several processes on one database (payment runs two instances on one file, or one
  PostgreSQL database): a lease
  row lets one relay publish at a time, which keeps the order; the other takes over
  when the lease expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass

from google.protobuf.message import Message
from meshmart.common.v1 import common_pb2
from nats.js.api import PubAck

from services.kit.db import Connection, Database, DatabaseError
from services.kit.events import Backoff, EventBus, new_envelope, subject_for
from services.kit.logging import get_logger
from services.kit.metrics import OUTBOX_BACKLOG, OUTBOX_PUBLISH_FAILURES, OUTBOX_PUBLISHED
from services.kit.worker import BackgroundWorker

log = get_logger("meshmart.outbox")

OUTBOX_MIGRATION = """
-- Events written in the transaction of the state change they report, published in seq
-- order by the OutboxRelay (services/kit/outbox.py).
CREATE TABLE outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id   TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    subject    TEXT NOT NULL,
    envelope   BLOB NOT NULL,          -- serialized meshmart.common.v1.EventEnvelope
    created_us INTEGER NOT NULL,
    sent_us    INTEGER,                -- NULL until JetStream acknowledged it
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX outbox_pending ON outbox (seq) WHERE sent_us IS NULL;
-- Which relay may publish (one at a time keeps the order across processes).
CREATE TABLE outbox_lease (
    singleton  INTEGER PRIMARY KEY CHECK (singleton = 1),
    holder     TEXT NOT NULL,
    expires_us INTEGER NOT NULL
);
"""


def _now_us() -> int:
    return time.time_ns() // 1000


def add_event(conn: Connection, envelope: common_pb2.EventEnvelope) -> None:
    """Write ``envelope`` into the outbox on ``conn``, which must be inside the state
    change's ``db.transaction()``."""
    if not conn.in_transaction:
        raise RuntimeError(
            "add_event must run inside db.transaction(), with the state change it reports"
        )
    conn.execute(
        "INSERT INTO outbox (event_id, event_type, subject, envelope, created_us)"
        " VALUES (?, ?, ?, ?, ?)",
        (
            envelope.id,
            envelope.type,
            subject_for(envelope.type),
            envelope.SerializeToString(),
            _now_us(),
        ),
    )


class Outbox:
    """What a service's store holds to write events: the source name and the relay to
    wake (so a committed event is published at once instead of at the next poll)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._listeners: list[Callable[[], None]] = []

    def add(
        self,
        conn: Connection,
        event_type: str,
        payload: Message,
        *,
        occurred_at: dt.datetime | None = None,
    ) -> common_pb2.EventEnvelope:
        envelope = new_envelope(event_type, payload, source=self.source, occurred_at=occurred_at)
        add_event(conn, envelope)
        # Safe before the COMMIT: transactions never span an await, so the relay can
        # only look once this transaction has ended (and finds nothing if it rolled back).
        for listener in self._listeners:
            listener()
        return envelope

    def subscribe(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)


@dataclass(frozen=True)
class PendingEvent:
    seq: int
    event_id: str
    event_type: str
    subject: str
    envelope: bytes


@dataclass
class RelayStats:
    published: int = 0
    duplicates: int = 0  # re-sent events JetStream recognised (after a crash)
    failures: int = 0
    # Seconds each publish-with-ack took (benchmarks read it; off by default).
    publish_seconds: list[float] | None = None


class OutboxRelay(BackgroundWorker):
    """Publishes the outbox of ``db`` through ``bus``, in order, at least once (and, with
    JetStream's duplicate window, effectively once)."""

    def __init__(
        self,
        db: Database,
        bus: EventBus,
        *,
        holder: str,
        outbox: Outbox | None = None,
        batch_size: int = 256,
        window: int = 64,
        poll_interval_seconds: float = 1.0,
        lease_seconds: float = 10.0,
        retention_seconds: float = 86400.0,
        record_timings: bool = False,
    ) -> None:
        super().__init__(task_name=f"outbox-relay:{holder}")
        self._db = db
        self._bus = bus
        self.holder = holder
        self._batch_size = batch_size
        self._window = window
        self._poll_interval = poll_interval_seconds
        self._lease_us = int(lease_seconds * 1_000_000)
        self._retention_us = int(retention_seconds * 1_000_000)
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_prune = 0.0
        self._lease_fresh_until = 0.0  # monotonic time until which the lease is ours
        self.stats = RelayStats(publish_seconds=[] if record_timings else None)
        # Prometheus: the backlog is counted at scrape time; published/failures here.
        self._backlog_handle = OUTBOX_BACKLOG.track(db)
        self._published = OUTBOX_PUBLISHED.labels(db.label)
        self._publish_failures = OUTBOX_PUBLISH_FAILURES.labels(db.label)
        if outbox is not None:
            outbox.subscribe(self.wake)

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()  # where wake() sets the event from
        await super().start()

    async def _stopped(self) -> None:
        self._lease_fresh_until = 0.0
        await self._db.run(self._release_lease)

    def wake(self) -> None:
        """Publish now rather than at the next poll (callable from any thread)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    # -- the loop ---------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = Backoff(first=0.1, cap=5.0)
        failing = False
        while True:
            self._wake.clear()
            if not await self._holds_lease():
                # Another process publishes; take over if its lease runs out.
                await self._idle(self._lease_us / 2_000_000)
                continue
            try:
                sent = await self.publish_pending()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.stats.failures += 1
                self._publish_failures.inc()
                if not failing:
                    failing = True
                    log.warning(
                        "outbox.publish_failed",
                        error=repr(error),
                        pending=await self._db.run(self.pending_count),
                        action="retrying with back-off; events stay in the outbox",
                    )
                await backoff.sleep()
                continue
            if failing:
                failing = False
                log.info("outbox.publish_resumed", pending=await self._db.run(self.pending_count))
            backoff.reset()
            if sent < self._batch_size:
                await self._idle(self._poll_interval)

    async def _holds_lease(self) -> bool:
        """Take or renew the lease, at most every ``lease_seconds / 10``: a relay that
        renewed it that recently still holds it for 90 % of its length, so it need not
        write the lease row again before each batch (a write transaction per batch)."""
        now = time.monotonic()
        if now < self._lease_fresh_until:
            return True
        held = await self._db.run(self._take_lease)
        self._lease_fresh_until = now + self._lease_us / 10_000_000 if held else 0.0
        return held

    async def _idle(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    async def publish_pending(self) -> int:
        """Publish one batch of pending rows in order; returns how many were sent.

        Up to ``window`` publishes are in flight at once on the one connection (NATS
        stores them in the order sent); their acks are taken in that order. Raises at the
        first row JetStream did not acknowledge, after marking the rows before it as sent:
        the next attempt starts again at that row, and whatever after it JetStream stored
        meanwhile comes back as a recognised duplicate.
        """
        await self._bus.jetstream()  # wait for the connection before reading rows
        rows = await self._db.run(self._pending, self._batch_size)
        acked: list[int] = []
        try:
            for start in range(0, len(rows), self._window):
                await self._publish_window(rows[start : start + self._window], acked)
        except BaseException as error:
            if rows and len(acked) < len(rows) and not isinstance(error, asyncio.CancelledError):
                await self._db.run(self._record_failure, rows[len(acked)].seq, error)
            raise
        finally:
            await self._db.run(self._mark_sent, acked)
        return len(acked)

    async def _publish_window(self, rows: list[PendingEvent], acked: list[int]) -> None:
        sent: list[tuple[PendingEvent, float, asyncio.Future[PubAck]]] = []
        try:
            for row in rows:
                future = await self._bus.publish_pipelined(
                    row.subject, row.envelope, msg_id=row.event_id, event_type=row.event_type
                )
                sent.append((row, time.perf_counter(), future))
            # One deadline for the window's acks (a timer per window, not per publish).
            timeout = self._bus.publish_timeout_seconds
            before = len(acked)
            try:
                async with asyncio.timeout(timeout):
                    for row, started, future in sent:
                        duplicate = await self._bus.acked(future)
                        if self.stats.publish_seconds is not None:
                            self.stats.publish_seconds.append(time.perf_counter() - started)
                        self._acknowledged(row, duplicate)
                        acked.append(row.seq)
            except TimeoutError:
                late = sent[len(acked) - before][0].event_id
                raise TimeoutError(f"no ack for {late} within {timeout}s") from None
        finally:
            for _, _, future in sent:
                future.cancel()  # no-op for the settled ones

    def _acknowledged(self, row: PendingEvent, duplicate: bool) -> None:
        """JetStream has ``row`` (stored now, or recognised as already stored)."""
        self.stats.published += 1
        self._published.inc()
        if duplicate:
            self.stats.duplicates += 1
            log.info("outbox.duplicate_acknowledged", event_id=row.event_id, seq=row.seq)

    # -- storage ----------------------------------------------------------------------

    def _pending(self, limit: int) -> list[PendingEvent]:
        rows = (
            self._db.read()
            .execute(
                "SELECT seq, event_id, event_type, subject, envelope FROM outbox"
                " WHERE sent_us IS NULL ORDER BY seq LIMIT ?",
                (limit,),
            )
            .fetchall()
        )
        return [PendingEvent(r[0], r[1], r[2], r[3], bytes(r[4])) for r in rows]

    def pending_count(self) -> int:
        row = self._db.read().execute("SELECT count(*) FROM outbox WHERE sent_us IS NULL")
        return int(row.fetchone()[0])

    def _mark_sent(self, seqs: list[int]) -> None:
        """Mark ``seqs`` sent; and forget the rows past the retention, at most every
        minute (in the same trip to the database's thread)."""
        if seqs:
            now = _now_us()
            with self._db.transaction() as conn:
                conn.executemany(
                    "UPDATE outbox SET sent_us = ?, attempts = attempts + 1 WHERE seq = ?",
                    [(now, seq) for seq in seqs],
                )
        self._prune()

    def _record_failure(self, seq: int, error: BaseException) -> None:
        with contextlib.suppress(*DatabaseError), self._db.transaction() as conn:
            conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE seq = ?",
                (repr(error)[:500], seq),
            )

    def _take_lease(self) -> bool:
        now = _now_us()
        with self._db.transaction() as conn:
            row = conn.execute("SELECT holder, expires_us FROM outbox_lease").fetchone()
            if row is not None and row[0] != self.holder and row[1] > now:
                return False
            conn.execute(
                "INSERT INTO outbox_lease (singleton, holder, expires_us) VALUES (1, ?, ?)"
                " ON CONFLICT (singleton) DO UPDATE SET holder = excluded.holder,"
                " expires_us = excluded.expires_us",
                (self.holder, now + self._lease_us),
            )
            return True

    def _release_lease(self) -> None:
        with contextlib.suppress(*DatabaseError), self._db.transaction() as conn:
            conn.execute("DELETE FROM outbox_lease WHERE holder = ?", (self.holder,))

    def _prune(self) -> None:
        """Forget rows sent longer ago than the retention (every minute at most)."""
        now = time.monotonic()
        if now - self._last_prune < 60:
            return
        self._last_prune = now
        with self._db.transaction() as conn:
            conn.execute(
                "DELETE FROM outbox WHERE sent_us IS NOT NULL AND sent_us < ?",
                (_now_us() - self._retention_us,),
            )
